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

#endif
