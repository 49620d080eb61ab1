/* `cmake --install` into a temporary prefix, then use what it installed the
 * way a user would: build samples/api_demo.c with pkg-config (shared) and
 * with find_package(bpviz) (shared and static), run them, read the man
 * pages, and check that the documentation and completions list every option
 * of `bpviz --help` and the shared library exports exactly the header's
 * functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char prefix[64];
static char lib[160];

static int setup(void **state) {
    (void)state;
    strcpy(prefix, "/tmp/bpv-install-XXXXXX");
    if (!mkdtemp(prefix)) return -1;
    snprintf(lib, sizeof lib, "%s/%s", prefix, BPV_INSTALL_LIBDIR);
    return tu_sh("'%s' --install '%s' --prefix '%s' >'%s/install.log' 2>&1", BPV_CMAKE_COMMAND,
                 BPV_BINARY_DIR, prefix, prefix);
}

static int teardown(void **state) {
    (void)state;
    return tu_sh("rm -rf '%s'", prefix) == 0 ? 0 : -1;
}

static bool exists(const char *rel) {
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", prefix, rel);
    return stat(path, &st) == 0;
}

static void test_files(void **state) {
    (void)state;
    const char *files[] = {"bin/bpviz",
                           "include/bpviz/bpviz.h",
                           "share/man/man1/bpviz.1",
                           "share/man/man5/bpviz-lang.5",
                           "share/bash-completion/completions/bpviz",
                           "share/zsh/site-functions/_bpviz"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (!exists(files[i])) fail_msg("not installed: %s", files[i]);
    const char *libfiles[] = {"libbpviz.a",
                              "libbpviz.so",
                              "pkgconfig/bpviz.pc",
                              "cmake/bpviz/bpvizConfig.cmake",
                              "cmake/bpviz/bpvizConfigVersion.cmake",
                              "cmake/bpviz/bpvizTargets.cmake"};
    for (size_t i = 0; i < sizeof libfiles / sizeof libfiles[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/%s", BPV_INSTALL_LIBDIR, libfiles[i]);
        if (!exists(rel)) fail_msg("not installed: %s", rel);
    }
    /* the installed command runs */
    assert_int_equal(tu_sh("'%s/bin/bpviz' --version | grep -q '^bpviz '", prefix), 0);
}

/* pkg-config: the .pc file finds the prefix it was installed to. */
static void test_pkg_config(void **state) {
    (void)state;
    assert_int_equal(
        tu_sh("PKG_CONFIG_PATH='%s/pkgconfig' pkg-config --exists --print-errors bpviz", lib), 0);
    assert_int_equal(tu_sh("PKG_CONFIG_PATH='%s/pkgconfig' pkg-config --print-requires-private "
                           "bpviz | tr -d ' ' | sort | tr '\\n' , | grep -qx 'fontconfig,libcgraph,libgvc,sleef,'",
                           lib),
                     0);
    assert_int_equal(
        tu_sh("cd '%s' && PKG_CONFIG_PATH='%s/pkgconfig' '%s' %s -std=c11 -Wall -Wextra "
              "-Werror '%s/samples/api_demo.c' $(PKG_CONFIG_PATH='%s/pkgconfig' "
              "pkg-config --cflags --libs bpviz) -Wl,-rpath,'%s' -o demo_pc",
              prefix, lib, BPV_C_COMPILER, BPV_SAN_FLAGS, BPV_SOURCE_DIR, lib, lib),
        0);
    /* linked against the installed shared library, not a copy */
    assert_int_equal(tu_sh("ldd '%s/demo_pc' | grep -q '%s/libbpviz.so'", prefix, lib), 0);
    assert_int_equal(tu_sh("cd '%s' && ./demo_pc pc.svg | grep -q 'y = 0.622459' && "
                           "grep -q '</svg>' pc.svg",
                           prefix),
                     0);
}

/* find_package(bpviz): bpviz::bpviz (shared) and bpviz::bpviz_static. */
static void test_cmake_package(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/consumer/CMakeLists.txt", prefix);
    assert_int_equal(tu_sh("mkdir -p '%s/consumer'", prefix), 0);
    char text[1024];
    snprintf(text, sizeof text,
             "cmake_minimum_required(VERSION 3.25)\n"
             "project(consumer C)\n"
             "find_package(bpviz 0.1 REQUIRED)\n"
             "add_executable(demo_shared %s/samples/api_demo.c)\n"
             "target_link_libraries(demo_shared PRIVATE bpviz::bpviz)\n"
             "add_executable(demo_static %s/samples/api_demo.c)\n"
             "target_link_libraries(demo_static PRIVATE bpviz::bpviz_static)\n",
             BPV_SOURCE_DIR, BPV_SOURCE_DIR);
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    assert_int_equal(tu_sh("cd '%s/consumer' && '%s' -S . -B build -DCMAKE_PREFIX_PATH='%s' "
                           "-DCMAKE_C_COMPILER='%s' -DCMAKE_C_FLAGS='%s' "
                           "-DCMAKE_EXE_LINKER_FLAGS='%s' >cmake.log 2>&1 && "
                           "'%s' --build build >>cmake.log 2>&1",
                           prefix, BPV_CMAKE_COMMAND, prefix, BPV_C_COMPILER, BPV_SAN_FLAGS,
                           BPV_SAN_FLAGS, BPV_CMAKE_COMMAND),
                     0);
    assert_int_equal(tu_sh("cd '%s/consumer' && ./build/demo_shared a.svg | grep -q 'wrote a.svg' "
                           "&& ./build/demo_static b.svg | grep -q 'wrote b.svg' && cmp -s a.svg "
                           "b.svg",
                           prefix),
                     0);
    /* the static one carries no dependency on libbpviz.so */
    assert_int_equal(tu_sh("ldd '%s/consumer/build/demo_static' | grep -q libbpviz", prefix), 1);
}

/* The shared library exports the header's functions and nothing else. */
static void test_exports(void **state) {
    (void)state;
    assert_int_equal(tu_sh("grep -oE '\\bbpv_[a-z0-9_]+\\(' '%s/include/bpviz/bpviz.h' | tr -d '(' "
                           "| sort -u > '%s/header.txt' && nm -D --defined-only '%s/libbpviz.so' "
                           "| awk '$2 == \"T\" {print $3}' | sed 's/@.*//' | sort -u > "
                           "'%s/exported.txt' && diff '%s/header.txt' '%s/exported.txt'",
                           prefix, prefix, lib, prefix, prefix, prefix),
                     0);
}

/* The man pages render without warnings, and the man page and both
 * completions name every option `bpviz --help` lists. */
static void test_docs_in_step(void **state) {
    (void)state;
    assert_int_equal(tu_sh("cd '%s/share/man' && LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "
                           "man1/bpviz.1 man5/bpviz-lang.5 2>&1 | grep . && exit 1 || exit 0",
                           prefix),
                     0);
    char *out = NULL;
    char *argv[] = {BPV_CLI_PATH, "--help", NULL};
    assert_int_equal(tu_run(argv, &out, NULL, NULL), 0);
    char man[256], bash[256], zsh[256];
    snprintf(man, sizeof man, "%s/share/man/man1/bpviz.1", prefix);
    snprintf(bash, sizeof bash, "%s/share/bash-completion/completions/bpviz", prefix);
    snprintf(zsh, sizeof zsh, "%s/share/zsh/site-functions/_bpviz", prefix);
    size_t len;
    char *m = tu_read_file(man, &len), *b = tu_read_file(bash, &len), *z = tu_read_file(zsh, &len);
    assert_non_null(m);
    assert_non_null(b);
    assert_non_null(z);
    int n = 0;
    for (char *p = out; (p = strstr(p, "\n  -")); p++) {
        /* "  -o FILE", "  --step N|last", "  -h, --help" */
        for (char *q = p + 3; *q == '-';) {
            char opt[32], roff[64];
            size_t k = strcspn(q, " ,\n");
            snprintf(opt, sizeof opt, "%.*s", (int)k, q);
            /* the man page writes each '-' as "\-" */
            size_t r = 0;
            for (const char *c = opt; *c && r + 3 < sizeof roff; c++) {
                if (*c == '-') roff[r++] = '\\';
                roff[r++] = *c;
            }
            roff[r] = '\0';
            if (!strstr(m, roff)) fail_msg("bpviz.1 lacks %s", opt);
            if (!strstr(b, opt)) fail_msg("the bash completion lacks %s", opt);
            if (!strstr(z, opt)) fail_msg("the zsh completion lacks %s", opt);
            n++;
            q += k;
            if (strncmp(q, ", ", 2) != 0) break;
            q += 2;
        }
    }
    assert_true(n >= 15);
    free(out);
    free(m);
    free(b);
    free(z);
}

/* python/bpviz_torch.py lands in BPV_INSTALL_PYTHONDIR (lib/python3.X/
 * dist-packages on Debian, which python3 searches under /usr and /usr/local),
 * and imports from there with the PYTHONPATH line docs/torch.md gives for
 * other prefixes; the import needs torch, so that part needs a python3 with it. */
static void test_python_module(void **state) {
    (void)state;
    char rel[256];
    snprintf(rel, sizeof rel, "%s/bpviz_torch.py", BPV_INSTALL_PYTHONDIR);
    if (!exists(rel)) fail_msg("not installed: %s", rel);
    if (!*BPV_PYTHON || tu_sh("'%s' -c 'import torch' >/dev/null 2>&1", BPV_PYTHON) != 0) {
        print_message("python3 with torch not found: the import of bpviz_torch is not tried\n");
        return;
    }
    assert_int_equal(tu_sh("cd / && PYTHONPATH='%s/%s' '%s' -c 'import bpviz_torch, sys; "
                           "sys.exit(not bpviz_torch.__file__.startswith(sys.argv[1]))' '%s/'",
                           prefix, BPV_INSTALL_PYTHONDIR, BPV_PYTHON, prefix),
                     0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files),         cmocka_unit_test(test_pkg_config),
        cmocka_unit_test(test_cmake_package), cmocka_unit_test(test_exports),
        cmocka_unit_test(test_docs_in_step),  cmocka_unit_test(test_python_module),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
