/* Small helpers shared by the cmocka test programs. */
#ifndef BPV_TESTUTIL_H
#define BPV_TESTUTIL_H

#include <stddef.h>

/* Reads a whole file; returns a malloc'd NUL-terminated buffer (the caller
 * frees it) and its length, or NULL if it cannot be read. */
char *tu_read_file(const char *path, size_t *len);
/* Writes a file; returns 0 on success. */
int tu_write_file(const char *path, const char *data, size_t len);
/* Runs argv (argv[0] is a path) with stdin from /dev/null, capturing
 * standard output and error into malloc'd strings the caller frees (either
 * pointer may be NULL to discard). Returns the exit status, or -1 if the
 * process did not exit normally (a crash). */
int tu_run(char *const argv[], char **out, size_t *out_len, char **err);

/* Runs the bpviz command under test (BPV_CLI_PATH) with the arguments that
 * follow `err`, up to a NULL; like tu_run otherwise. */
int tu_bpviz(char **out, char **err, ...);
/* Runs a shell command made with printf-style arguments; returns its exit
 * status, or -1 if it did not exit normally. */
int tu_sh(const char *fmt, ...);

/* A scratch folder for one test program, for cmocka's group setup and
 * teardown: the setup creates /tmp/bpv-test-XXXXXX, the teardown removes it
 * with all it holds. */
int tu_tmpdir_setup(void **state);
int tu_tmpdir_teardown(void **state);
const char *tu_tmpdir(void);
/* "TMPDIR/name" in one of 8 static buffers used in turn, so a few paths can
 * be alive at once without freeing. */
char *tu_tmp_path(const char *name);

/* Asserts that two snapshots hold the same step with bit-identical numbers:
 * loss, samples, every value, grad, chained partial and param after the
 * update. */
struct bpv_snapshot;
void tu_same_snapshot(const struct bpv_snapshot *a, const struct bpv_snapshot *b);

#endif
