/* outfile.h - files written atomically: the bytes go to a temporary file
 * beside the target, are fsynced, and only then renamed over it (and the
 * directory synced), so a crash or an error leaves the old file or the new
 * one, never a half-written mix. Used by the converters (src/io/hf.c,
 * src/io/gguf.c); safetensors.c keeps its own writer. */
#ifndef MG_OUTFILE_H
#define MG_OUTFILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    char *path, *tmp; /* mg_malloc'd */
    int failed;       /* a write failed: commit refuses */
} io_out_t;

/* Opens a new temporary file for path. 0, or -1 with err. */
int io_out_open(io_out_t *o, const char *path, char *err);
/* Appends n bytes (errors are remembered and reported by commit). */
void io_out_write(io_out_t *o, const void *p, size_t n);
/* fsync + rename over path + directory sync; always closes o. */
int io_out_commit(io_out_t *o, char *err);
/* Drops the temporary file (after an error); safe on a closed o. */
void io_out_abort(io_out_t *o);
/* The whole file in one call. */
int io_write_file(const char *path, const void *data, size_t n, char *err);
/* fsync of a directory (after renames inside it); EINVAL is ignored. */
int io_sync_dir(const char *dir, char *err);

#endif
