/* A main() for the fuzz targets in builds without libFuzzer: runs the
 * target once on each file named on the command line (folders are read one
 * level deep), like a libFuzzer binary given files. Exit status 0 when every
 * input ran; a bug aborts (under the sanitizers, with a report). */
#define _XOPEN_SOURCE 700 /* realpath */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return 1;
    /* exactly n bytes, so ASan sees any read past the input */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) return 1;
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    /* resolve paths first: the targets may change the working folder */
    char **paths = calloc((size_t)argc, sizeof *paths);
    for (int i = 1; i < argc; i++) paths[i] = realpath(argv[i], NULL);
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int failed = 0, ran = 0;
    for (int i = 1; i < argc; i++) {
        if (!paths[i]) {
            fprintf(stderr, "%s: not found\n", argv[i]);
            failed++;
            continue;
        }
        struct stat st;
        if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(paths[i]);
            if (!d) {
                perror(paths[i]);
                failed++;
                continue;
            }
            char **names = NULL;
            size_t n = 0;
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.') continue;
                names = realloc(names, (n + 1) * sizeof *names);
                names[n++] = strdup(e->d_name);
            }
            closedir(d);
            qsort(names, n, sizeof *names, name_cmp);
            for (size_t k = 0; k < n; k++) {
                size_t l = strlen(paths[i]) + strlen(names[k]) + 2;
                char *p = malloc(l);
                snprintf(p, l, "%s/%s", paths[i], names[k]);
                failed += run_file(p);
                ran++;
                free(p);
                free(names[k]);
            }
            free(names);
        } else {
            failed += run_file(paths[i]);
            ran++;
        }
    }
    for (int i = 1; i < argc; i++) free(paths[i]);
    free(paths);
    printf("ran %d input%s, %d unreadable\n", ran, ran == 1 ? "" : "s", failed);
    return failed ? 1 : 0;
}
