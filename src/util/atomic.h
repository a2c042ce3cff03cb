/* atomic.h - atomic file writes: a temp file beside the target ("PATH.tmp.<pid>"),
 * fsync'ed, then renamed over the target, so that a reader (or a crash, or
 * a full disk) sees the old file or the new one, never a part of either.
 * The trainer's start-up removes dead processes' temp files by that name
 * (mg_atomic_tmp_pid). The only writer of whole files in minigpt: the
 * checkpoints, the converters' outputs (src/io/hf.c, src/io/gguf.c) and the
 * run's small files all go through here. */
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
/* fsync of the directory dir (after renames inside it); a filesystem that
 * cannot fsync a directory (EINVAL) is no error. */
int mg_atomic_sync_dir(const char *dir, char *err);

/* A file written in pieces: open, write any number of times, then close
 * (commit) or abort. path is borrowed: it must outlive the writer. */
typedef struct {
    int fd;           /* the temp file; -1 when closed */
    const char *path; /* the target */
    char tmp[4200];   /* its temp name, mg_atomic_tmp */
    int failed;       /* errno of the first failed write: close refuses */
} mg_atomic_file_t;

/* Creates path's temp file. 0, or -1 with err (nothing left behind). */
int mg_atomic_open(mg_atomic_file_t *f, const char *path, char *err);
/* Appends n bytes; an error is remembered and reported by the close. */
void mg_atomic_write(mg_atomic_file_t *f, const void *p, size_t n);
/* close + mg_atomic_commit: the temp file becomes path. On any failure the
 * temp file is removed and path is untouched. Always ends f. */
int mg_atomic_close(mg_atomic_file_t *f, char *err);
/* Drops the temp file (after an error); safe on an ended or a zeroed f
 * ({0}: a writer that was never opened). */
void mg_atomic_abort(mg_atomic_file_t *f);

#endif
