/* test_safetensors.c - round trips, header layout, atomic save and a battery
 * of hostile inputs for src/io/safetensors.c. Files go to a mkdtemp dir. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "util/common.h"

static char g_dir[64];

static const char *tpath(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

/* Removes the entries of dir (and of its subdirectories, one level). */
static void clear_dir(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 2) {
            chmod(p, 0700);
            clear_dir(p, depth + 1);
            rmdir(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
}

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static int group_setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/test_st_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    clear_dir(g_dir, 0);
    return rmdir(g_dir);
}

/* Each test must give back every byte it took from the counted allocator,
 * error paths included. */
static size_t g_mem0;
static int mem_setup(void **state) {
    (void)state;
    g_mem0 = mg_mem_current();
    return 0;
}
static int mem_teardown(void **state) {
    (void)state;
    assert_int_equal(mg_mem_current(), g_mem0);
    return 0;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ---- fixtures ---- */

typedef struct {
    const char *name;
    st_dtype_t dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    unsigned char *data;
} fixture_t;

static float f_scalar = 3.25f;
static float f_mat[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 65504};
static uint16_t h_vec[5] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000};
static uint16_t bf_col[3] = {0x3f80, 0xbf80, 0x4049};
static double d_vec[2] = {3.141592653589793, -1e300};
static int32_t i_vec[4] = {INT32_MIN, -1, 0, INT32_MAX};
static int64_t l_arr[2] = {INT64_MIN, INT64_MAX};
static uint8_t u_vec[7] = {0, 1, 2, 127, 128, 254, 255};
static int8_t c_vec[3] = {-128, 0, 127};

static const fixture_t fixtures[] = {
    {"model.wte", ST_F32, 2, {2, 3}, sizeof f_mat, (unsigned char *)f_mat},
    {"h16", ST_F16, 1, {5}, sizeof h_vec, (unsigned char *)h_vec},
    {"bf", ST_BF16, 2, {3, 1}, sizeof bf_col, (unsigned char *)bf_col},
    {"u8_odd", ST_U8, 1, {7}, sizeof u_vec, (unsigned char *)u_vec},
    {"d", ST_F64, 1, {2}, sizeof d_vec, (unsigned char *)d_vec},
    {"i32", ST_I32, 1, {4}, sizeof i_vec, (unsigned char *)i_vec},
    {"i64 \"quoted\"\\name", ST_I64, 3, {1, 1, 2}, sizeof l_arr, (unsigned char *)l_arr},
    {"i8", ST_I8, 1, {3}, sizeof c_vec, (unsigned char *)c_vec},
    {"scalar", ST_F32, 0, {0}, sizeof f_scalar, (unsigned char *)&f_scalar},
    {"empty", ST_F32, 2, {0, 4}, 0, NULL},
    {"ação.日本", ST_U8, 1, {1}, 1, (unsigned char *)u_vec + 3},
};
#define N_FIX ((int)(sizeof fixtures / sizeof fixtures[0]))

static const char *meta_kv[][2] = {
    {"format", "pt"},
    {"quote\"s", "he said \"hi\" \\ back\\slash"},
    {"multi", "line one\nline two\r\n\ttabbed"},
    {"unicode", "ação — 日本語 🚀"},
    {"ctrl", "bell\x07"
             "esc\x1b"},
    {"empty", ""},
};
#define N_META ((int)(sizeof meta_kv / sizeof meta_kv[0]))

static st_writer_t *fixture_writer(void) {
    char err[MG_ERR_LEN] = "";
    st_writer_t *w = st_writer_new();
    assert_non_null(w);
    for (int i = 0; i < N_META; i++)
        assert_int_equal(st_writer_meta(w, meta_kv[i][0], meta_kv[i][1], err), 0);
    for (int i = 0; i < N_FIX; i++) {
        const fixture_t *x = &fixtures[i];
        int rc = st_writer_add(w, x->name, x->dtype, x->ndim, x->shape, x->data, err);
        if (rc) fail_msg("add %s: %s", x->name, err);
    }
    return w;
}

static void save_fixture(const char *path) {
    char err[MG_ERR_LEN] = "";
    st_writer_t *w = fixture_writer();
    if (st_writer_save(w, path, err)) fail_msg("save: %s", err);
    st_writer_free(w);
}

/* ---- tests ---- */

static void test_dtype_helpers(void **state) {
    (void)state;
    static const size_t sizes[] = {4, 2, 2, 8, 4, 8, 1, 1};
    static const char *names[] = {"F32", "F16", "BF16", "F64", "I32", "I64", "U8", "I8"};
    for (int d = ST_F32; d <= ST_I8; d++) {
        assert_int_equal(st_dtype_size((st_dtype_t)d), sizes[d]);
        assert_string_equal(st_dtype_name((st_dtype_t)d), names[d]);
    }
}

static void test_roundtrip(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const char *path = tpath("rt.safetensors");
    save_fixture(path);
    st_file_t *f = st_open(path, err);
    if (!f) fail_msg("open: %s", err);
    assert_int_equal(f->n_tensors, N_FIX);
    assert_int_equal(f->n_meta, N_META);
    size_t off = 0;
    for (int i = 0; i < N_FIX; i++) {
        const fixture_t *x = &fixtures[i];
        const st_tensor_t *t = st_find(f, x->name);
        assert_non_null(t);
        /* written in the order added, and the reader orders by offset */
        assert_ptr_equal(t, &f->tensors[i]);
        assert_int_equal(t->dtype, x->dtype);
        assert_int_equal(t->ndim, x->ndim);
        for (int d = 0; d < x->ndim; d++)
            assert_int_equal(t->shape[d], x->shape[d]);
        assert_int_equal(t->nbytes, x->nbytes);
        assert_int_equal(t->offset, off);
        off += t->nbytes;
        if (x->nbytes) assert_memory_equal(t->data, x->data, x->nbytes);
    }
    assert_null(st_find(f, "missing"));
    assert_null(st_find(f, "__metadata__"));
    for (int i = 0; i < N_META; i++) {
        const char *v = st_meta(f, meta_kv[i][0]);
        assert_non_null(v);
        assert_string_equal(v, meta_kv[i][1]);
    }
    assert_null(st_meta(f, "nope"));
    /* the data block ends the file */
    const st_tensor_t *last = &f->tensors[N_FIX - 1];
    assert_ptr_equal((const char *)last->data + last->nbytes, (const char *)f->map + f->map_size);
    st_close(f);
    st_close(NULL);
}

static void test_header_layout(void **state) {
    (void)state;
    const char *path = tpath("layout.safetensors");
    save_fixture(path);
    size_t len = 0;
    char err[MG_ERR_LEN] = "";
    unsigned char *b = (unsigned char *)mg_read_file(path, &len, err);
    assert_non_null(b);
    assert_true(len >= 8);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)b[i] << (8 * i);
    assert_true(n > 0 && n <= len - 8);
    assert_int_equal((8 + n) % 8, 0); /* data block 8-byte aligned */
    /* padding is spaces only, and the JSON itself parses independently */
    char *json = mg_malloc(n + 1);
    memcpy(json, b + 8, n);
    json[n] = 0;
    size_t jl = n;
    while (jl && json[jl - 1] == ' ')
        jl--;
    assert_true(n - jl < 8);
    assert_int_equal(json[jl - 1], '}');
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    assert_true(cJSON_IsObject(root));
    assert_string_equal(root->child->string, "__metadata__"); /* metadata first */
    const cJSON *meta = root->child;
    assert_int_equal(cJSON_GetArraySize(meta), N_META);
    for (int i = 0; i < N_META; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, meta_kv[i][0]);
        assert_true(cJSON_IsString(v));
        assert_string_equal(v->valuestring, meta_kv[i][1]);
    }
    uint64_t pos = 0;
    int i = 0;
    for (const cJSON *t = meta->next; t; t = t->next, i++) {
        assert_true(i < N_FIX);
        assert_string_equal(t->string, fixtures[i].name);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        assert_string_equal(dt->valuestring, st_dtype_name(fixtures[i].dtype));
        assert_int_equal(cJSON_GetArraySize(sh), fixtures[i].ndim);
        for (int d = 0; d < fixtures[i].ndim; d++)
            assert_int_equal((int64_t)cJSON_GetArrayItem(sh, d)->valuedouble, fixtures[i].shape[d]);
        assert_int_equal(cJSON_GetArraySize(of), 2);
        uint64_t lo = (uint64_t)cJSON_GetArrayItem(of, 0)->valuedouble;
        uint64_t hi = (uint64_t)cJSON_GetArrayItem(of, 1)->valuedouble;
        assert_int_equal(lo, pos); /* contiguous */
        assert_int_equal(hi - lo, fixtures[i].nbytes);
        if (hi > lo) assert_memory_equal(b + 8 + n + lo, fixtures[i].data, hi - lo);
        pos = hi;
    }
    assert_int_equal(i, N_FIX);
    assert_int_equal(pos, len - 8 - n); /* buffer fully covered */
    cJSON_Delete(root);
    mg_free(json);
    mg_free(b);
}

static void test_empty_writer(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const char *path = tpath("empty.safetensors");
    st_writer_t *w = st_writer_new();
    assert_int_equal(st_writer_save(w, path, err), 0);
    st_writer_free(w);
    st_file_t *f = st_open(path, err);
    if (!f) fail_msg("%s", err);
    assert_int_equal(f->n_tensors, 0);
    assert_int_equal(f->n_meta, 0);
    assert_int_equal(f->map_size % 8, 0);
    st_close(f);
}

static void test_atomic_replace(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const char *path = tpath("replace.safetensors");
    write_bytes(path, "old contents", 12);
    save_fixture(path);
    assert_int_equal(count_tmp_files(g_dir), 0);
    st_writer_t *w = st_writer_new();
    float v[3] = {7, 8, 9};
    int64_t shape[1] = {3};
    assert_int_equal(st_writer_add(w, "only", ST_F32, 1, shape, v, err), 0);
    assert_int_equal(st_writer_save(w, path, err), 0);
    /* the writer keeps its contents; saving twice is fine */
    assert_int_equal(st_writer_save(w, path, err), 0);
    st_writer_free(w);
    assert_int_equal(count_tmp_files(g_dir), 0);
    st_file_t *f = st_open(path, err);
    if (!f) fail_msg("%s", err);
    assert_int_equal(f->n_tensors, 1);
    assert_memory_equal(st_find(f, "only")->data, v, sizeof v);
    st_close(f);
}

static void assert_file_is(const char *path, const char *want) {
    size_t len = 0;
    char err[MG_ERR_LEN];
    char *b = mg_read_file(path, &len, err);
    assert_non_null(b);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(b, want, len);
    mg_free(b);
}

static void test_save_failures(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    st_writer_t *w = fixture_writer();

    /* nonexistent directory */
    strcpy(err, "");
    char path[256];
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", g_dir);
    assert_int_equal(st_writer_save(w, path, err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));

    /* a file used as a directory */
    write_bytes(tpath("plainfile"), "x", 1);
    snprintf(path, sizeof path, "%s/plainfile/x.safetensors", g_dir);
    strcpy(err, "");
    assert_int_equal(st_writer_save(w, path, err), -1);
    assert_true(err[0] != 0);

    /* target is a directory: the rename fails and the temp file goes */
    snprintf(path, sizeof path, "%s/adir", g_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    strcpy(err, "");
    assert_int_equal(st_writer_save(w, path, err), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(count_tmp_files(g_dir), 0);
    rmdir(path);

    /* unwritable directory; root ignores permissions, so only as a user */
    if (geteuid() != 0) {
        snprintf(path, sizeof path, "%s/ro", g_dir);
        assert_int_equal(mkdir(path, 0700), 0);
        char target[300];
        snprintf(target, sizeof target, "%s/keep.safetensors", path);
        write_bytes(target, "precious", 8);
        assert_int_equal(chmod(path, 0500), 0);
        strcpy(err, "");
        assert_int_equal(st_writer_save(w, target, err), -1);
        assert_non_null(strstr(err, target));
        assert_non_null(strstr(err, strerror(EACCES)));
        assert_int_equal(chmod(path, 0700), 0);
        assert_file_is(target, "precious");
        assert_int_equal(count_tmp_files(path), 0);
    }
    st_writer_free(w);
}

/* A write that fails midway (file size limit standing in for a full disk)
 * must leave the old file alone and no temp file behind. */
static void test_save_write_error(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const char *path = tpath("keep.safetensors");
    write_bytes(path, "precious", 8);
    size_t n = 1 << 16;
    unsigned char *big = mg_calloc(n, 1);
    int64_t shape[1] = {(int64_t)n};
    st_writer_t *w = st_writer_new();
    assert_int_equal(st_writer_add(w, "big", ST_U8, 1, shape, big, err), 0);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = st_writer_save(w, path, err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);

    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(EFBIG)));
    assert_file_is(path, "precious");
    assert_int_equal(count_tmp_files(g_dir), 0);
    st_writer_free(w);
    mg_free(big);
}

static void test_writer_rejects(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    float x[4] = {0};
    int64_t s1[1] = {4}, neg[1] = {-1}, huge[2] = {INT64_MAX, 2};
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    st_writer_t *w = st_writer_new();
    assert_int_equal(st_writer_add(w, "a", ST_F32, 1, s1, x, err), 0);
#define REJECT(call)                                                                               \
    do {                                                                                           \
        strcpy(err, "");                                                                           \
        assert_int_equal((call), -1);                                                              \
        assert_true(err[0] != 0 && strchr(err, '\n') == NULL);                                     \
    } while (0)
    REJECT(st_writer_add(w, "a", ST_F32, 1, s1, x, err));            /* duplicate */
    REJECT(st_writer_add(w, "__metadata__", ST_F32, 1, s1, x, err)); /* reserved */
    REJECT(st_writer_add(w, "b", (st_dtype_t)42, 1, s1, x, err));    /* dtype */
    REJECT(st_writer_add(w, "b", ST_F32, 9, nine, x, err));          /* ndim */
    REJECT(st_writer_add(w, "b", ST_F32, -1, s1, x, err));           /* ndim */
    REJECT(st_writer_add(w, "b", ST_F32, 1, neg, x, err));           /* negative dim */
    REJECT(st_writer_add(w, "b", ST_F32, 2, huge, x, err));          /* overflow */
    REJECT(st_writer_add(w, "b", ST_F32, 1, s1, NULL, err));         /* no data */
    REJECT(st_writer_add(w, "bad\xff", ST_F32, 1, s1, x, err));      /* not UTF-8 */
    REJECT(st_writer_add(w, NULL, ST_F32, 1, s1, x, err));
    assert_int_equal(st_writer_meta(w, "k", "v", err), 0);
    REJECT(st_writer_meta(w, "k", "again", err)); /* duplicate */
    REJECT(st_writer_meta(w, "k2", "\xc3\x28", err));
    REJECT(st_writer_meta(w, "k3", NULL, err));
    /* the rejected calls left the writer as it was */
    const char *path = tpath("rejects.safetensors");
    assert_int_equal(st_writer_save(w, path, err), 0);
    st_writer_free(w);
    st_file_t *f = st_open(path, err);
    assert_non_null(f);
    assert_int_equal(f->n_tensors, 1);
    assert_int_equal(f->n_meta, 1);
    st_close(f);
#undef REJECT
}

/* ---- hostile input ---- */

/* Builds size field + header + data_len zero bytes into an exact-size heap
 * block, so any read past the end is caught under ASan. */
static unsigned char *mkfile(uint64_t hlen, const char *hdr, size_t hdr_bytes, size_t data_len,
                             size_t *size) {
    *size = 8 + hdr_bytes + data_len;
    unsigned char *b = malloc(*size ? *size : 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, hdr, hdr_bytes);
    memset(b + 8 + hdr_bytes, 0x5a, data_len);
    return b;
}

static st_file_t *parse_json(const char *hdr, size_t data_len, char *err) {
    size_t size;
    unsigned char *b = mkfile(strlen(hdr), hdr, strlen(hdr), data_len, &size);
    st_file_t *f = st_parse(b, size, err);
    /* free only what failed; a success is checked by the caller */
    if (!f) free(b);
    return f;
}

static void free_parsed(st_file_t *f) {
    void *b = f->map;
    st_close(f);
    free(b);
}

static void expect_reject(const char *hdr, size_t data_len) {
    char err[MG_ERR_LEN];
    strcpy(err, "");
    st_file_t *f = parse_json(hdr, data_len, err);
    if (f) {
        free_parsed(f);
        fail_msg("accepted hostile header: %s", hdr);
    }
    if (!err[0] || strchr(err, '\n')) fail_msg("bad err for %s: '%s'", hdr, err);
}

static void expect_accept(const char *hdr, size_t data_len, int n_tensors) {
    char err[MG_ERR_LEN] = "";
    st_file_t *f = parse_json(hdr, data_len, err);
    if (!f) fail_msg("rejected %s: %s", hdr, err);
    assert_int_equal(f->n_tensors, n_tensors);
    free_parsed(f);
}

#define T4(name, dtype, shape, b, e)                                                               \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_hostile_headers(void **state) {
    (void)state;
    static const struct {
        const char *hdr;
        size_t data;
    } bad[] = {
        {"", 0},
        {"   ", 0},
        {"[]", 0},
        {"[1,2]", 0},
        {"\"x\"", 0},
        {"42", 0},
        {"null", 0},
        {"{", 0},
        {"{abc}", 0},
        {"{\"a\":}", 0},
        {"{\"a\":1,}", 0},
        {"{} x", 0},
        {"{}{}", 0},
        {"{\"a\":1}", 0}, /* entry not an object */
        {"{\"a\":[]}", 0},
        {"{\"a\":\"F32\"}", 0},
        {"{\"a\":{}}", 0},                                /* missing everything */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4}, /* missing data_offsets */
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
        {"{" T4("a", "F8", "[1]", 0, 1) "}", 1}, /* unknown dtype */
        {"{" T4("a", "f32", "[1]", 0, 4) "}", 4},
        {"{" T4("a", "BOOL", "[1]", 0, 1) "}", 1},
        {"{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
        {"{" T4("a", "F32", "[-1]", 0, 4) "}", 4},  /* negative dim */
        {"{" T4("a", "F32", "[1.5]", 0, 6) "}", 6}, /* fractional dim */
        {"{" T4("a", "F32", "[1.5]", 0, 4) "}", 4},
        {"{" T4("a", "F32", "[\"1\"]", 0, 4) "}", 4},
        {"{" T4("a", "F32", "[true]", 0, 4) "}", 4},
        {"{" T4("a", "F32", "[null]", 0, 4) "}", 4},
        {"{" T4("a", "F32", "[1e300]", 0, 4) "}", 4},
        {"{" T4("a", "U8", "[9007199254740994]", 0, 4) "}", 4}, /* > 2^53 */
        {"{" T4("a", "U8", "[9007199254740993]", 0, 4) "}", 4}, /* reads as 2^53 */
        {"{" T4("a", "U8", "[9007199254740992]", 0, 4) "}", 4},
        {"{\"a\\u0000b\":{}}", 0}, /* escaped NUL */
        {"{\"__metadata__\":{\"k\":\"v\\u0000\"}}", 0},
        {"{\"\\ud800\":{}}", 0},                                         /* lone surrogate */
        {"{" T4("a", "F32", "[4294967296,4294967296,16]", 0, 0) "}", 0}, /* product overflow */
        {"{" T4("a", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1},         /* 9 dims */
        {"{" T4("a", "F32", "[[1]]", 0, 4) "}", 4},
        {"{" T4("a", "F32", "[1]", -4, 0) "}", 4}, /* negative offset */
        {"{" T4("a", "F32", "[1]", 0.5, 4.5) "}", 5},
        {"{" T4("a", "F32", "[1]", 0.5, 4.5) "}", 4},
        {"{" T4("a", "F32", "[1]", 0, 4.000001) "}", 4},
        {"{" T4("a", "F32", "[1]", 4, 0) "}", 4}, /* end < begin */
        {"{" T4("a", "F32", "[2]", 0, 4) "}", 4}, /* shape/offset mismatch */
        {"{" T4("a", "F32", "[1]", 0, 8) "}", 8},
        {"{" T4("a", "F16", "[3]", 0, 4) "}", 4},
        {"{" T4("a", "F32", "[1]", 0, 4) "}", 3}, /* beyond the data block */
        {"{" T4("a", "F32", "[1]", 4, 8) "}", 4},
        {"{" T4("a", "F32", "[1]", 9007199254740992, 9007199254740996) "}", 4},
        {"{" T4("a", "F32", "[1]", 1e300, 1e300) "}", 4},
        {"{" T4("a", "F32", "[2]", 0, 8) "," T4("b", "F32", "[2]", 4, 12) "}", 12}, /* overlap */
        {"{" T4("a", "F32", "[1]", 0, 4) "," T4("b", "F32", "[1]", 0, 4) "}", 4},
        {"{" T4("a", "F32", "[2]", 0, 8) "," T4("z", "U8", "[0]", 4, 4) "}",
         8}, /* empty inside a */
        {"{" T4("a", "F32", "[1]", 0, 4) "," T4("b", "F32", "[1]", 8, 12) "}", 12}, /* gap */
        {"{" T4("a", "F32", "[1]", 4, 8) "}", 8}, /* gap at start */
        {"{" T4("a", "F32", "[1]", 0, 4) "}", 5}, /* trailing byte */
        {"{}", 1},                                /* no tensors, data left */
        {"{\"__metadata__\":{}}", 3},
        {"{" T4("a", "F32", "[1]", 0, 4) "," T4("a", "F32", "[1]", 4, 8) "}", 8}, /* duplicate */
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0},
        {"{\"__metadata__\":[]}", 0},
        {"{\"__metadata__\":\"x\"}", 0},
        {"{\"__metadata__\":null}", 0},
        {"{\"__metadata__\":{\"k\":1}}", 0},
        {"{\"__metadata__\":{\"k\":null}}", 0},
        {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0},
        {"{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0},
        {"{\"__metadata__\":{\"k\":[\"a\"]}}", 0},
        {"{\"a\xff\":{}}", 0},           /* invalid UTF-8 */
        {"{\"\xc0\x80\":1}", 0},         /* overlong */
        {"{\"\xed\xa0\x80\":1}", 0},     /* surrogate */
        {"{\"\xf4\x90\x80\x80\":1}", 0}, /* > U+10FFFF */
        {"{\"a\xe6\x97\":1}", 0},        /* truncated sequence */
        {"{\"a\tb\":1}", 0},             /* raw control char in string */
        {"{\x01}", 0},
        {"{\"a\":{\"b\":{\"c\":{}}}}", 0}, /* too deep */
        {"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         0},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,2,3,4,5,6,7,8,9,10,11,12],\"data_offsets\":[0,4]}"
         "}",
         4},
        {"{\"a\":NaN}", 0},
        {"{\"a\":Infinity}", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i].hdr, bad[i].data);

    /* a NUL inside the header (strlen-based helpers cannot build it) */
    {
        static const char hdr[] = "{\"a\0\":{}}";
        char err[MG_ERR_LEN] = "";
        size_t size;
        unsigned char *b = mkfile(sizeof hdr - 1, hdr, sizeof hdr - 1, 0, &size);
        assert_null(st_parse(b, size, err));
        assert_true(err[0] != 0);
        free(b);
    }

    /* the same validation accepts what it should */
    expect_accept("{}", 0, 0);
    expect_accept("{}      ", 0, 0);
    expect_accept(" \n\t{ }\r\n ", 0, 0);
    expect_accept("{\"__metadata__\":{}}", 0, 0);
    expect_accept("{\"__metadata__\":{\"k\":\"v\\u00e7\\n\"}}", 0, 0);
    expect_accept("{" T4("a", "F32", "[1]", 0, 4) "}", 4, 1);
    expect_accept("{" T4("a", "F32", "[]", 0, 4) "}", 4, 1);                  /* scalar */
    expect_accept("{" T4("a", "F32", "[0,3]", 0, 0) "}", 0, 1);               /* empty */
    expect_accept("{" T4("a", "F32", "[0,1e15]", 0, 0) "}", 0, 1);            /* integral double */
    expect_accept("{" T4("a", "U8", "[0,9007199254740991]", 0, 0) "}", 0, 1); /* 2^53 - 1 */
    expect_accept("{\"__metadata__\":{\"k\":\"\\\\u0000\"}}", 0,
                  0); /* an escaped backslash, then u0000 */
    expect_accept("{" T4("a", "U8", "[1,1,1,1,1,1,1,1]", 0, 1) "}", 1, 1);
    expect_accept("{" T4("a", "F32", "[2]", 0, 8) "," T4("z", "U8", "[0]", 8, 8) "}", 8, 2);
    expect_accept("{" T4("z", "U8", "[0]", 0, 0) "," T4("a", "F32", "[2]", 0, 8) "}", 8, 2);
    expect_accept("{" T4("", "U8", "[1]", 0, 1) "}", 1, 1); /* empty name */
}

static void test_header_sizes(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    static const uint64_t lens[] = {0, 3, 1000, 100000001ULL, 1ULL << 40, UINT64_MAX, 1ULL << 63};
    const char *hdr = "{\"x\":1}";
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t size;
        unsigned char *b = mkfile(lens[i], hdr, strlen(hdr), 0, &size);
        strcpy(err, "");
        assert_null(st_parse(b, size, err));
        assert_true(err[0] != 0);
        free(b);
    }
    strcpy(err, "");
    assert_null(st_parse(NULL, 0, err));
    assert_true(err[0] != 0);
    assert_null(st_parse("", 0, err));
    assert_null(st_parse("\x02\0\0\0\0\0\0", 7, err));
    assert_null(st_parse("\x02\0\0\0\0\0\0", 7, NULL)); /* err is optional */
}

/* Every proper prefix of a valid file must be rejected, never read past. */
static void test_truncations(void **state) {
    (void)state;
    const char *path = tpath("trunc.safetensors");
    save_fixture(path);
    size_t len = 0;
    char err[MG_ERR_LEN] = "";
    char *full = mg_read_file(path, &len, err);
    assert_non_null(full);
    for (size_t n = 0; n < len; n++) {
        unsigned char *b = malloc(n ? n : 1);
        memcpy(b, full, n);
        strcpy(err, "");
        st_file_t *f = st_parse(b, n, err);
        if (f) fail_msg("accepted a %zu-byte prefix of %zu", n, len);
        if (!err[0]) fail_msg("no reason for a %zu-byte prefix", n);
        free(b);
    }
    /* and a byte too many is trailing data */
    unsigned char *b = malloc(len + 1);
    memcpy(b, full, len);
    b[len] = 0;
    assert_null(st_parse(b, len + 1, err));
    st_file_t *f = st_parse(b, len, err);
    assert_non_null(f);
    assert_int_equal(f->n_tensors, N_FIX);
    st_close(f);
    free(b);
    mg_free(full);
}

/* Files from other writers: JSON order differs from offset order, and the
 * header is not padded to 8. */
static void test_foreign_order(void **state) {
    (void)state;
    char err[MG_ERR_LEN] = "";
    const char *hdr = "{" T4("b", "U8", "[3]", 4,
                             7) ",\"__metadata__\":{\"x\":\"y\"}," T4("a", "I32", "[1]", 0, 4) "}";
    size_t size;
    unsigned char *b = mkfile(strlen(hdr), hdr, strlen(hdr), 7, &size);
    for (int i = 0; i < 7; i++)
        b[8 + strlen(hdr) + i] = (unsigned char)i;
    st_file_t *f = st_parse(b, size, err);
    if (!f) fail_msg("%s", err);
    assert_int_equal(f->n_tensors, 2);
    assert_string_equal(f->tensors[0].name, "a");
    assert_string_equal(f->tensors[1].name, "b");
    assert_ptr_equal(st_find(f, "b")->data, b + 8 + strlen(hdr) + 4);
    assert_int_equal(((const unsigned char *)st_find(f, "b")->data)[2], 6);
    assert_string_equal(st_meta(f, "x"), "y");
    st_close(f);
    free(b);
}

static void test_open_errors(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    strcpy(err, "");
    assert_null(st_open(tpath("does-not-exist"), err));
    assert_non_null(strstr(err, "does-not-exist"));
    strcpy(err, "");
    assert_null(st_open(g_dir, err)); /* a directory */
    assert_true(err[0] != 0);
    write_bytes(tpath("short"), "abc", 3);
    strcpy(err, "");
    assert_null(st_open(tpath("short"), err));
    assert_true(err[0] != 0);
    write_bytes(tpath("zero"), "", 0);
    strcpy(err, "");
    assert_null(st_open(tpath("zero"), err));
    assert_true(err[0] != 0);
    /* a parse error names the file */
    write_bytes(tpath("notjson"), "\x04\0\0\0\0\0\0\0{{{{", 12);
    strcpy(err, "");
    assert_null(st_open(tpath("notjson"), err));
    assert_non_null(strstr(err, "notjson"));
}

/* Error messages quote names from the file; they must stay on one line. */
static void test_error_one_line(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    strcpy(err, "");
    expect_reject("{" T4("line\\nbreak", "X", "[1]", 0, 1) "}", 1);
    assert_null(parse_json("{" T4("line\\nbreak", "X", "[1]", 0, 1) "}", 1, err));
    assert_non_null(strstr(err, "line?break"));
    assert_null(strchr(err, '\n'));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, mem_setup, mem_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_dtype_helpers),    T(test_roundtrip),      T(test_header_layout),
        T(test_empty_writer),     T(test_atomic_replace), T(test_save_failures),
        T(test_save_write_error), T(test_writer_rejects), T(test_hostile_headers),
        T(test_header_sizes),     T(test_truncations),    T(test_foreign_order),
        T(test_open_errors),      T(test_error_one_line),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
