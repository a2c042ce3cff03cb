/* atomic.h - atomic file writes: a temp file beside the target ("PATH.tmp.<pid>"),
 * fsync'ed, then renamed over the target, so that a reader (or a crash, or
 * a full disk) sees the old file or the new one, never a part of either. */
#ifndef MG_ATOMIC_H
#define MG_ATOMIC_H

#include <stddef.h>

/* "PATH.tmp.<pid>" into buf (n bytes); -1 if it does not fit. */
int mg_atomic_tmp(const char *path, char *buf, size_t n);
/* Makes the written, closed temp file tmp the file path: fsync of tmp,
 * rename, fsync of the directory. On failure tmp is removed and path is
 * untouched. */
int mg_atomic_commit(const char *tmp, const char *path, char *err);
/* Writes len bytes as the new content of path (temp + fsync + rename). */
int mg_write_atomic(const char *path, const void *data, size_t len, char *err);
/* The pid of a temp file's name ("X.tmp.<pid>", digits only), or 0. */
long mg_atomic_tmp_pid(const char *name);

#endif
