/* safetensors.c - strict safetensors reader (mmap, validates every byte it
 * trusts) and writer (atomic, through util/atomic.h).
 * The file is read hostile-first: sizes are checked before use, the JSON
 * header is pre-scanned so cJSON never sees deep nesting or long arrays, and
 * the tensors must tile the data block exactly. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/atomic.h"
#include "util/common.h"
#include "util/utf8.h"

/* Tensor bytes are exposed and written as-is, and the format is
 * little-endian, so a big-endian host would silently swap every value. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors.c assumes a little-endian host");
#endif

/* Same cap as the reference implementation: no real model needs a larger
 * header, and it bounds what a hostile file can make us allocate. */
#define ST_MAX_HEADER 100000000ULL
/* 2^53: JSON numbers are doubles here, and every integer below this one is
 * exact, while a larger literal may round (2^53 + 1 reads as 2^53), so
 * integers must stay below it. */
#define ST_MAX_INT 9007199254740992ULL
/* The deepest valid header: {"name": {"shape": [..]}}. */
#define ST_MAX_DEPTH 3

static const char *const dtype_names[] = {"F32", "F16", "BF16", "F64", "I32", "I64", "U8", "I8"};
static const size_t dtype_sizes[] = {4, 2, 2, 8, 4, 8, 1, 1};
#define ST_N_DTYPES ((int)(sizeof dtype_sizes / sizeof dtype_sizes[0]))

size_t st_dtype_size(st_dtype_t d) {
    return (unsigned)d < (unsigned)ST_N_DTYPES ? dtype_sizes[d] : 0;
}

const char *st_dtype_name(st_dtype_t d) {
    return (unsigned)d < (unsigned)ST_N_DTYPES ? dtype_names[d] : "?";
}

static int dtype_from_name(const char *s, st_dtype_t *out) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (st_dtype_t)i;
            return 0;
        }
    return -1;
}

/* Names come from the file, so before quoting one in an error message make
 * it short and free of control characters: err must stay a single line. */
#define ST_SHOW_LEN 64
static const char *show(char buf[ST_SHOW_LEN + 4], const char *s) {
    size_t i = 0;
    for (; s[i] && i < ST_SHOW_LEN; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = 0;
    return buf;
}

/* a NUL-terminated name or metadata string */
static int st_utf8_valid(const char *s) { return utf8_valid((const unsigned char *)s, strlen(s)); }

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* One pass over the raw header before cJSON sees it: the spec demands
 * UTF-8, JSON forbids raw control characters (and we refuse \u0000), and no
 * valid header nests
 * deeper than 3 or has an array longer than ST_MAX_DIMS. Rejecting those
 * here keeps cJSON's recursion and per-node allocations small. */
static int scan_header(const unsigned char *h, size_t n, char *err) {
    size_t i = 0;
    while (i < n && is_ws(h[i]))
        i++;
    if (i == n || h[i] != '{') return mg_fail(err, "header is not a JSON object");
    int depth = 0, in_str = 0, esc = 0;
    char kind[ST_MAX_DEPTH + 1];
    int items[ST_MAX_DEPTH + 1];
    while (i < n) {
        unsigned char c = h[i];
        if (c >= 0x80) {
            size_t k = utf8_seq(h + i, n - i);
            if (!k) return mg_fail(err, "header is not valid UTF-8 (byte %zu)", i);
            i += k;
            esc = 0;
            continue;
        }
        if (c < 0x20 && (in_str || !is_ws(c)))
            return mg_fail(err, "header is not valid JSON (control character at byte %zu)", i);
        i++;
        if (in_str) {
            if (esc) {
                esc = 0;
                /* cJSON would cut the string at the NUL, so a name could
                 * silently differ from what other readers see. */
                if (c == 'u' && n - i >= 4 && memcmp(h + i, "0000", 4) == 0)
                    return mg_fail(err, "header has an escaped NUL in a string (byte %zu)", i - 2);
            } else if (c == '\\') {
                esc = 1;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (depth == ST_MAX_DEPTH)
                return mg_fail(err, "header JSON nests too deep (byte %zu)", i - 1);
            depth++;
            kind[depth] = (char)c;
            items[depth] = 1;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        } else if (c == ',' && depth > 0 && kind[depth] == '[') {
            if (++items[depth] > ST_MAX_DIMS)
                return mg_fail(err, "header has an array longer than %d (byte %zu)", ST_MAX_DIMS,
                               i - 1);
        }
    }
    return 0;
}

/* A non-negative integer from a JSON number, which cJSON stores as a double. */
static int json_uint(const cJSON *n, uint64_t *out) {
    if (!cJSON_IsNumber(n)) return -1;
    double d = n->valuedouble;
    if (!(d >= 0.0) || d >= (double)ST_MAX_INT) return -1; /* also catches NaN */
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return -1;
    *out = u;
    return 0;
}

/* Reader state that the public struct does not show. pub comes first so
 * the two pointers convert to each other. */
typedef struct {
    st_file_t pub;
    int owns_map; /* st_open mapped the file, so st_close unmaps it */
    /* Every name, key and value back to back in one block: a per-string
     * allocation would cost far more than the string in a header holding
     * millions of them. Decoded JSON strings are never longer than their
     * quoted form, so header size + 1 bytes always suffice. */
    char *strings;
    size_t strings_used, strings_cap;
} st_file_priv_t;

static char *keep_str(st_file_priv_t *p, const char *s) {
    size_t n = strlen(s) + 1;
    if (n > p->strings_cap - p->strings_used) return NULL;
    char *d = p->strings + p->strings_used;
    memcpy(d, s, n);
    p->strings_used += n;
    return d;
}

/* A tensor entry while parsing: begin/end before they become pointers. */
typedef struct {
    uint64_t begin, end;
} st_span_t;

static int parse_tensor(st_file_priv_t *p, const cJSON *item, st_tensor_t *t, st_span_t *sp,
                        char *err) {
    char nb[ST_SHOW_LEN + 4], kb[ST_SHOW_LEN + 4];
    const char *name = show(nb, item->string);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    if (!cJSON_IsObject(item)) return mg_fail(err, "tensor '%s': entry is not a JSON object", name);
    for (const cJSON *f = item->child; f; f = f->next) {
        const cJSON **slot = strcmp(f->string, "dtype") == 0          ? &dtype
                             : strcmp(f->string, "shape") == 0        ? &shape
                             : strcmp(f->string, "data_offsets") == 0 ? &offs
                                                                      : NULL;
        if (!slot)
            return mg_fail(err, "tensor '%s': unexpected key '%s'", name, show(kb, f->string));
        if (*slot) return mg_fail(err, "tensor '%s': duplicate key '%s'", name, f->string);
        *slot = f;
    }
    if (!dtype || !shape || !offs)
        return mg_fail(err, "tensor '%s': missing '%s'", name,
                       !dtype   ? "dtype"
                       : !shape ? "shape"
                                : "data_offsets");
    if (!cJSON_IsString(dtype)) return mg_fail(err, "tensor '%s': dtype is not a string", name);
    if (dtype_from_name(dtype->valuestring, &t->dtype))
        return mg_fail(err, "tensor '%s': unknown dtype '%s'", name, show(kb, dtype->valuestring));
    if (!cJSON_IsArray(shape)) return mg_fail(err, "tensor '%s': shape is not an array", name);
    /* numel is the product of the dims; track overflow against SIZE_MAX. */
    uint64_t numel = 1;
    int nd = 0, overflow = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        uint64_t v;
        if (nd == ST_MAX_DIMS)
            return mg_fail(err, "tensor '%s': more than %d dims", name, ST_MAX_DIMS);
        if (json_uint(d, &v))
            return mg_fail(err, "tensor '%s': shape[%d] is not an integer in [0, 2^53)", name, nd);
        t->shape[nd++] = (int64_t)v;
        if (v && numel > SIZE_MAX / v)
            overflow = 1;
        else
            numel *= v;
    }
    t->ndim = nd;
    /* A zero dim makes numel 0 whatever the other dims were. */
    for (int i = 0; i < nd; i++)
        if (t->shape[i] == 0) numel = 0, overflow = 0;
    if (overflow || numel > SIZE_MAX / st_dtype_size(t->dtype))
        return mg_fail(err, "tensor '%s': shape product overflows", name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return mg_fail(err, "tensor '%s': data_offsets is not an array of 2 numbers", name);
    if (json_uint(offs->child, &sp->begin) || json_uint(offs->child->next, &sp->end))
        return mg_fail(err, "tensor '%s': data_offsets are not integers in [0, 2^53)", name);
    if (sp->end < sp->begin)
        return mg_fail(err, "tensor '%s': data_offsets end %llu before begin %llu", name,
                       (unsigned long long)sp->end, (unsigned long long)sp->begin);
    size_t want = (size_t)numel * st_dtype_size(t->dtype);
    if (sp->end - sp->begin != want)
        return mg_fail(err, "tensor '%s': data_offsets span %llu bytes but %s shape needs %zu",
                       name, (unsigned long long)(sp->end - sp->begin), dtype_names[t->dtype],
                       want);
    t->name = keep_str(p, item->string);
    if (!t->name) return mg_fail(err, "tensor '%s': string block full (internal error)", name);
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts a scratch copy of the names and returns the first repeated one. */
static const char *find_duplicate(const char **names, int n) {
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

static int parse_meta(st_file_priv_t *p, const cJSON *item, char *err) {
    st_file_t *f = &p->pub;
    char kb[ST_SHOW_LEN + 4];
    if (!cJSON_IsObject(item)) return mg_fail(err, "__metadata__ is not a JSON object");
    int n = cJSON_GetArraySize(item);
    if (n == 0) return 0;
    f->meta = mg_calloc((size_t)n, sizeof *f->meta);
    if (!f->meta) return mg_fail(err, "out of memory");
    for (const cJSON *m = item->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return mg_fail(err, "__metadata__ '%s' is not a string", show(kb, m->string));
        st_meta_t *e = &f->meta[f->n_meta];
        e->key = keep_str(p, m->string);
        e->value = keep_str(p, m->valuestring);
        if (!e->key || !e->value)
            return mg_fail(err, "__metadata__: string block full (internal error)");
        f->n_meta++;
    }
    /* st_meta would silently pick one of two equal keys. */
    const char **keys = mg_malloc((size_t)n * sizeof *keys);
    if (!keys) return mg_fail(err, "out of memory");
    for (int i = 0; i < n; i++)
        keys[i] = f->meta[i].key;
    const char *dup = find_duplicate(keys, n);
    if (dup) mg_fail(err, "__metadata__: duplicate key '%s'", show(kb, dup));
    mg_free(keys);
    return dup ? -1 : 0;
}

/* Orders tensors by where they sit; zero-sized tensors sharing an offset
 * are ordered by name so the result does not depend on qsort. */
static int cmp_offset(const void *a, const void *b) {
    const st_tensor_t *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

st_file_t *st_parse(const void *buf, size_t size, char *err) {
    const unsigned char *b = buf;
    char *hdr = NULL;
    cJSON *root = NULL;
    st_file_priv_t *p = NULL;
    st_span_t *spans = NULL;
    const char **names = NULL;
    char nb[ST_SHOW_LEN + 4], nb2[ST_SHOW_LEN + 4];
    if (!b || size < 8) {
        mg_fail(err, "file too short: %zu bytes, a safetensors file needs at least 8",
                b ? size : 0);
        goto fail;
    }
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)b[i] << (8 * i);
    if (n == 0) {
        mg_fail(err, "header size is 0");
        goto fail;
    }
    if (n > ST_MAX_HEADER) {
        mg_fail(err, "header size %llu exceeds the %llu-byte limit", (unsigned long long)n,
                ST_MAX_HEADER);
        goto fail;
    }
    if (n > size - 8) {
        mg_fail(err, "header size %llu exceeds the %zu bytes after the size field",
                (unsigned long long)n, size - 8);
        goto fail;
    }
    if (scan_header(b + 8, (size_t)n, err)) goto fail;
    /* A NUL-terminated copy, so cJSON cannot read past the header whatever
     * its length handling does; the scan above ruled out NUL bytes. */
    hdr = mg_malloc((size_t)n + 1);
    if (!hdr) {
        mg_fail(err, "out of memory for a %llu-byte header", (unsigned long long)n);
        goto fail;
    }
    memcpy(hdr, b + 8, (size_t)n);
    hdr[n] = 0;
    const char *end = NULL;
    root = cJSON_ParseWithOpts(hdr, &end, 0);
    if (!root) {
        if (end && end >= hdr && end <= hdr + n)
            mg_fail(err, "header is not valid JSON (near byte %zu)", (size_t)(end - hdr));
        else
            mg_fail(err, "header is not valid JSON");
        goto fail;
    }
    /* Writers pad the header with spaces to align the data block. */
    for (const char *q = end; q < hdr + n; q++)
        if (!is_ws((unsigned char)*q)) {
            mg_fail(err, "header has trailing bytes after the JSON object (byte %zu)",
                    (size_t)(q - hdr));
            goto fail;
        }
    if (!cJSON_IsObject(root)) {
        mg_fail(err, "header is not a JSON object");
        goto fail;
    }
    /* cJSON holds its own copies of every string now. */
    mg_free(hdr);
    hdr = NULL;
    int n_items = cJSON_GetArraySize(root);
    p = mg_calloc(1, sizeof *p);
    if (p) p->strings = mg_malloc((size_t)n + 1);
    names = mg_calloc((size_t)n_items + 1, sizeof *names);
    spans = mg_calloc((size_t)n_items + 1, sizeof *spans);
    if (!p || !p->strings || !names || !spans) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    p->strings_cap = (size_t)n + 1;
    st_file_t *f = &p->pub;
    f->map = (void *)buf;
    f->map_size = size;
    f->tensors = mg_calloc((size_t)n_items + 1, sizeof *f->tensors);
    if (!f->tensors) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    int n_names = 0, seen_meta = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        names[n_names++] = it->string;
        if (strcmp(it->string, "__metadata__") == 0) {
            if (seen_meta++) continue; /* reported as a duplicate below */
            if (parse_meta(p, it, err)) goto fail;
        } else {
            st_tensor_t *t = &f->tensors[f->n_tensors];
            if (parse_tensor(p, it, t, &spans[f->n_tensors], err)) goto fail;
            t->offset = (size_t)spans[f->n_tensors].begin;
            t->nbytes = (size_t)(spans[f->n_tensors].end - spans[f->n_tensors].begin);
            f->n_tensors++;
        }
    }
    const char *dup = find_duplicate(names, n_names);
    if (dup) {
        mg_fail(err, "duplicate key '%s' in header", show(nb, dup));
        goto fail;
    }
    /* The data block must be tiled exactly: sorted by offset, each tensor
     * starts where the previous one ended and the last ends at the file's
     * end. That one rule rejects overlaps, gaps and trailing bytes. */
    size_t data_len = size - 8 - (size_t)n;
    const unsigned char *data = b + 8 + n;
    for (int i = 0; i < f->n_tensors; i++)
        if (spans[i].end > data_len) {
            mg_fail(err, "tensor '%s': data_offsets [%llu, %llu] beyond the %zu-byte data block",
                    show(nb, f->tensors[i].name), (unsigned long long)spans[i].begin,
                    (unsigned long long)spans[i].end, data_len);
            goto fail;
        }
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_offset);
    size_t pos = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        st_tensor_t *t = &f->tensors[i];
        if (t->offset < pos) {
            mg_fail(err, "tensor '%s' overlaps tensor '%s'", show(nb, t->name),
                    show(nb2, f->tensors[i - 1].name));
            goto fail;
        }
        if (t->offset > pos) {
            mg_fail(err, "gap of %zu bytes in the data block before tensor '%s'", t->offset - pos,
                    show(nb, t->name));
            goto fail;
        }
        t->data = data + t->offset;
        pos = t->offset + t->nbytes;
    }
    if (pos != data_len) {
        mg_fail(err, "%zu trailing bytes in the data block not covered by any tensor",
                data_len - pos);
        goto fail;
    }
    mg_free(spans);
    mg_free(names);
    mg_free(hdr);
    cJSON_Delete(root);
    return f;
fail:
    if (p) st_close(&p->pub);
    mg_free(spans);
    mg_free(names);
    mg_free(hdr);
    cJSON_Delete(root);
    return NULL;
}

st_file_t *st_open(const char *path, char *err) {
    void *map = MAP_FAILED;
    size_t size = 0;
    /* a FIFO named *.safetensors must not hang list, load or generate */
    int fd = mg_open_regular(path, &size, err);
    if (fd < 0) goto fail;
    if (size < 8) { /* mmap of an empty file fails; give the real reason */
        mg_fail(err, "'%s': file too short: %zu bytes, a safetensors file needs at least 8", path,
                size);
        goto fail;
    }
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        mg_fail(err, "cannot map '%s': %s", path, strerror(errno));
        goto fail;
    }
    close(fd); /* the mapping keeps the file alive */
    fd = -1;
    char why[MG_ERR_LEN];
    st_file_t *f = st_parse(map, size, why);
    if (!f) {
        mg_fail(err, "'%s': %s", path, why);
        goto fail;
    }
    ((st_file_priv_t *)f)->owns_map = 1;
    return f;
fail:
    if (map != MAP_FAILED) munmap(map, size);
    if (fd >= 0) close(fd);
    return NULL;
}

void st_close(st_file_t *f) {
    if (!f) return;
    st_file_priv_t *p = (st_file_priv_t *)f;
    mg_free(f->tensors);
    mg_free(f->meta);
    mg_free(p->strings);
    if (p->owns_map) munmap(f->map, f->map_size);
    mg_free(p);
}

const st_tensor_t *st_find(const st_file_t *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file_t *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* ---- writer ---- */

typedef struct {
    char *name;
    st_dtype_t dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* borrowed until save */
} st_wtensor_t;

struct st_writer {
    st_wtensor_t *t;
    int n, cap;
    st_meta_t *meta;
    int n_meta, cap_meta;
};

st_writer_t *st_writer_new(void) { return mg_calloc(1, sizeof(st_writer_t)); }

void st_writer_free(st_writer_t *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++)
        mg_free(w->t[i].name);
    mg_free(w->t);
    for (int i = 0; i < w->n_meta; i++) {
        mg_free(w->meta[i].key);
        mg_free(w->meta[i].value);
    }
    mg_free(w->meta);
    mg_free(w);
}

/* Returns the array grown so index `n` fits (the same one if it already
 * does), or NULL with the array untouched when out of memory. */
static void *grow(void *arr, int *cap, int n, size_t elem) {
    if (n < *cap) return arr;
    if (*cap > INT_MAX / 2) return NULL;
    int nc = *cap ? *cap * 2 : 16;
    void *q = mg_realloc(arr, (size_t)nc * elem);
    if (q) *cap = nc;
    return q;
}

int st_writer_add(st_writer_t *w, const char *name, st_dtype_t dtype, int ndim,
                  const int64_t *shape, const void *data, char *err) {
    char nb[ST_SHOW_LEN + 4];
    char *copy = NULL;
    if (!w || !name) {
        mg_fail(err, "st_writer_add: no writer or no name");
        goto fail;
    }
    if (!st_utf8_valid(name)) {
        mg_fail(err, "tensor name '%s' is not valid UTF-8", show(nb, name));
        goto fail;
    }
    /* The reader would take this name for the metadata block. */
    if (strcmp(name, "__metadata__") == 0) {
        mg_fail(err, "'__metadata__' is reserved and cannot name a tensor");
        goto fail;
    }
    if ((unsigned)dtype >= (unsigned)ST_N_DTYPES) {
        mg_fail(err, "tensor '%s': invalid dtype %d", show(nb, name), (int)dtype);
        goto fail;
    }
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape)) {
        mg_fail(err, "tensor '%s': ndim %d out of range 0..%d", show(nb, name), ndim, ST_MAX_DIMS);
        goto fail;
    }
    size_t numel = 1;
    int overflow = 0, zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] >= ST_MAX_INT) {
            mg_fail(err, "tensor '%s': dim %d is %lld, not in [0, 2^53)", show(nb, name), i,
                    (long long)shape[i]);
            goto fail;
        }
        size_t v = (size_t)shape[i];
        if (v == 0)
            zero = 1;
        else if (numel > SIZE_MAX / v)
            overflow = 1;
        else
            numel *= v;
    }
    if (zero) numel = 0, overflow = 0;
    if (overflow || numel >= ST_MAX_INT / st_dtype_size(dtype)) {
        mg_fail(err, "tensor '%s': shape too large", show(nb, name));
        goto fail;
    }
    size_t nbytes = numel * st_dtype_size(dtype);
    if (nbytes && !data) {
        mg_fail(err, "tensor '%s': no data", show(nb, name));
        goto fail;
    }
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) {
            mg_fail(err, "duplicate tensor name '%s'", show(nb, name));
            goto fail;
        }
    copy = mg_strdup(name);
    st_wtensor_t *arr = copy ? grow(w->t, &w->cap, w->n, sizeof *w->t) : NULL;
    if (!arr) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    w->t = arr;
    st_wtensor_t *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->nbytes = nbytes;
    t->data = data;
    return 0;
fail:
    mg_free(copy);
    return -1;
}

int st_writer_meta(st_writer_t *w, const char *key, const char *value, char *err) {
    char kb[ST_SHOW_LEN + 4];
    char *k = NULL, *v = NULL;
    if (!w || !key || !value) {
        mg_fail(err, "st_writer_meta: no writer, key or value");
        goto fail;
    }
    if (!st_utf8_valid(key) || !st_utf8_valid(value)) {
        mg_fail(err, "metadata '%s': key or value is not valid UTF-8", show(kb, key));
        goto fail;
    }
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            mg_fail(err, "duplicate metadata key '%s'", show(kb, key));
            goto fail;
        }
    k = mg_strdup(key);
    v = mg_strdup(value);
    st_meta_t *arr = (k && v) ? grow(w->meta, &w->cap_meta, w->n_meta, sizeof *w->meta) : NULL;
    if (!arr) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    w->meta = arr;
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta].value = v;
    w->n_meta++;
    return 0;
fail:
    mg_free(k);
    mg_free(v);
    return -1;
}

/* Growable byte buffer for the header; oom is sticky so callers check once. */
typedef mg_buf_t sbuf_t;

static void sb_put(sbuf_t *s, const char *d, size_t n) { mg_buf_put(s, d, n); }

static void sb_cstr(sbuf_t *s, const char *d) { sb_put(s, d, strlen(d)); }

static void sb_uint(sbuf_t *s, uint64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(s, tmp, (size_t)n);
}

/* A JSON string literal; UTF-8 passes through (validated on add). */
static void sb_json_str(sbuf_t *s, const char *str) {
    sb_put(s, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
        char tmp[8];
        if (*c == '"' || *c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)*c;
            sb_put(s, tmp, 2);
        } else if (*c == '\n') {
            sb_put(s, "\\n", 2);
        } else if (*c == '\t') {
            sb_put(s, "\\t", 2);
        } else if (*c == '\r') {
            sb_put(s, "\\r", 2);
        } else if (*c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", *c);
            sb_put(s, tmp, 6);
        } else {
            sb_put(s, (const char *)c, 1);
        }
    }
    sb_put(s, "\"", 1);
}

/* Metadata first (for people reading the header), then tensors in the order
 * added with contiguous offsets, then spaces so the data starts 8-aligned. */
static int build_header(const st_writer_t *w, sbuf_t *s, char *err) {
    sb_cstr(s, "{");
    if (w->n_meta) {
        sb_cstr(s, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_cstr(s, ",");
            sb_json_str(s, w->meta[i].key);
            sb_cstr(s, ":");
            sb_json_str(s, w->meta[i].value);
        }
        sb_cstr(s, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_wtensor_t *t = &w->t[i];
        if (i || w->n_meta) sb_cstr(s, ",");
        sb_json_str(s, t->name);
        sb_cstr(s, ":{\"dtype\":\"");
        sb_cstr(s, dtype_names[t->dtype]);
        sb_cstr(s, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_cstr(s, ",");
            sb_uint(s, (uint64_t)t->shape[d]);
        }
        sb_cstr(s, "],\"data_offsets\":[");
        sb_uint(s, off);
        sb_cstr(s, ",");
        if (t->nbytes >= ST_MAX_INT - off)
            return mg_fail(err, "total tensor data reaches 2^53 bytes");
        off += t->nbytes;
        sb_uint(s, off);
        sb_cstr(s, "]}");
    }
    sb_cstr(s, "}");
    while (!s->oom && (8 + s->len) % 8)
        sb_cstr(s, " ");
    if (s->oom) return mg_fail(err, "out of memory building the safetensors header");
    if (s->len > ST_MAX_HEADER)
        return mg_fail(err, "header of %zu bytes exceeds the reader's limit", s->len);
    return 0;
}

int st_writer_save(st_writer_t *w, const char *path, char *err) {
    int rc = -1;
    sbuf_t h = {0};
    mg_atomic_file_t f = {0};
    if (!w || !path || !*path) {
        mg_fail(err, "st_writer_save: no writer or empty path");
        goto done;
    }
    if (build_header(w, &h, err)) goto done;
    /* beside the target, so that the rename is atomic (see util/atomic.h) */
    if (mg_atomic_open(&f, path, err)) goto done;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    mg_atomic_write(&f, lenbuf, 8);
    mg_atomic_write(&f, h.data, h.len);
    for (int i = 0; i < w->n; i++)
        mg_atomic_write(&f, w->t[i].data, w->t[i].nbytes);
    rc = mg_atomic_close(&f, err); /* close, fsync, rename, fsync of the directory */
done:
    mg_free(h.data);
    return rc;
}
