/* safetensors.h - read (mmap) and write (atomically) safetensors files.
 *
 * Format: 8-byte little-endian header size N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *  "__metadata__": {"key": "string value", ...}}, then the data block.
 * The reader validates everything and never trusts the file: sizes, JSON
 * shape, dtypes, shape x dtype == byte span, offsets inside the data block,
 * no overlap, no gaps. Tensor data is exposed as pointers into the mapping. */
#ifndef MG_SAFETENSORS_H
#define MG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I32, ST_I64, ST_U8, ST_I8 } st_dtype_t;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    st_dtype_t dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;    /* end - begin */
    size_t offset;    /* begin, relative to the data block */
    const void *data; /* into the mapping; valid until st_close */
} st_tensor_t;

typedef struct {
    char *key, *value;
} st_meta_t;

typedef struct {
    void *map; /* the whole file, mapped read-only */
    size_t map_size;
    int n_tensors;
    st_tensor_t *tensors; /* in file order (ascending offset) */
    int n_meta;
    st_meta_t *meta;
} st_file_t;

/* Maps and validates a file. NULL with a one-line reason in err. */
st_file_t *st_open(const char *path, char *err);
/* Same, over bytes in memory (not copied; must outlive the result). */
st_file_t *st_parse(const void *buf, size_t size, char *err);
void st_close(st_file_t *f);
const st_tensor_t *st_find(const st_file_t *f, const char *name);
const char *st_meta(const st_file_t *f, const char *key); /* NULL if absent */
size_t st_dtype_size(st_dtype_t d);
const char *st_dtype_name(st_dtype_t d);

/* Writer: collects tensors (data is borrowed, not copied, until save) and
 * metadata, then writes the file atomically: temporary file in the same
 * directory, fsync, rename over the target, fsync of the directory. A crash
 * at any moment leaves either the old file or the new one, never a mix. */
typedef struct st_writer st_writer_t;
st_writer_t *st_writer_new(void);
int st_writer_add(st_writer_t *w, const char *name, st_dtype_t dtype, int ndim,
                  const int64_t *shape, const void *data, char *err);
int st_writer_meta(st_writer_t *w, const char *key, const char *value, char *err);
int st_writer_save(st_writer_t *w, const char *path, char *err);
void st_writer_free(st_writer_t *w);

#endif
