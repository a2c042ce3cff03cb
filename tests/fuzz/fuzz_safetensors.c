/* fuzz_safetensors.c - libFuzzer target: st_parse must reject or accept any
 * byte string without crashing, and an accepted file's tensors and metadata
 * must all be readable (ASan checks every byte touched is in bounds). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/safetensors.h"
#include "util/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[MG_ERR_LEN];
    err[0] = 0;
    st_file_t *f = st_parse(data, size, err);
    if (!f) {
        /* a rejection always says why, on one line */
        if (!err[0] || memchr(err, '\n', strnlen(err, MG_ERR_LEN))) __builtin_trap();
        return 0;
    }
    /* volatile so the reads are not optimized away */
    volatile unsigned sum = 0;
    size_t covered = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const st_tensor_t *t = &f->tensors[i];
        const unsigned char *p = t->data;
        for (size_t j = 0; j < t->nbytes; j++)
            sum += p[j];
        if (st_dtype_size(t->dtype) == 0 || t->ndim < 0 || t->ndim > ST_MAX_DIMS) __builtin_trap();
        if (st_find(f, t->name) != t) __builtin_trap(); /* names are unique */
        covered += t->nbytes;
    }
    for (int i = 0; i < f->n_meta; i++) {
        sum += (unsigned)strlen(f->meta[i].key) + (unsigned)strlen(f->meta[i].value);
        if (!st_meta(f, f->meta[i].key)) __builtin_trap();
    }
    /* the tensors tile the data block, which ends the input */
    if (f->n_tensors) {
        const st_tensor_t *last = &f->tensors[f->n_tensors - 1];
        if ((const uint8_t *)last->data + last->nbytes != data + size) __builtin_trap();
    }
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)data[i] << (8 * i);
    if (8 + n + covered != size) __builtin_trap();
    st_close(f);
    return 0;
}
