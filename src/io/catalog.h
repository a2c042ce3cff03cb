/* catalog.h - what checkpoints a directory holds, read from their headers
 * only (st_open maps the file and validates the header; weights are never
 * read), so that `list` and `load` can show, filter and choose them.
 *
 * A file that cannot be read is still an entry (ok = 0, with the reason):
 * a broken checkpoint should be seen, not silently skipped. */
#ifndef MG_CATALOG_H
#define MG_CATALOG_H

#include <math.h>
#include <stddef.h>
#include <time.h>

#include "io/safetensors.h"
#include "model/gpt.h"
#include "util/common.h"

typedef struct {
    char *path; /* DIR/name, or the path given to catalog_file */
    char *name; /* the file name */
    int ok;     /* 0: unreadable, reason in why; the fields below are then unset */
    char why[MG_ERR_LEN];
    int best;       /* the lowest loss of the catalog (at most one entry) */
    long long size; /* bytes on disk */
    time_t created; /* creation_timestamp, else the file's mtime */
    int created_from_mtime;
    long long mtime_ns; /* breaks creation-time ties (timestamps have 1 s steps) */
    long step;
    int epoch;
    double train_loss, val_loss; /* NAN when null or missing */
    gpt_config_t cfg;
    long long params; /* computed from cfg */
    char tok_type[16];
    int tok_vocab, tok_merges; /* -1 when the tokenizer does not say */
    int n_tensors;
    long long tensor_bytes;
    /* whether a metadata value (the tokenizer excepted) contains the
     * search given to the scan: decided while the header is mapped, so
     * that no metadata is kept (a file's metadata can be any size) */
    int meta_hit;
} catalog_entry_t;

typedef struct {
    char *dir;
    int n;
    catalog_entry_t *e; /* sorted: see catalog_scan */
} catalog_t;

/* Every *.safetensors file of dir (not *.optim.safetensors, not temporary
 * *.tmp.* files), sorted best first: lowest loss (catalog_loss), then
 * higher step, then name; entries without a loss after those with one;
 * unreadable entries last. NULL with a reason if dir cannot be read.
 * search (may be NULL) is the text a later catalog_filter_t.search will
 * look for: the metadata is searched while each file is read, then let go.
 * Memory is the entries (a few hundred bytes each) plus one file's header
 * at a time, whatever the size of the metadata. */
catalog_t *catalog_scan(const char *dir, const char *search, char *err);
/* A catalog of one file (which may be unreadable). NULL only when out of memory. */
catalog_t *catalog_file(const char *path, const char *search, char *err);
void catalog_free(catalog_t *c);

/* val loss, else train loss; NAN if neither (or unreadable). */
double catalog_loss(const catalog_entry_t *e);
/* "L4 H4 d256 ctx256 V4096", with the MLP and its hidden size after when it
 * is not GPT-2's GELU: "L4 H4 d256 ctx256 V4096 swiglu672" */
void catalog_shape(const gpt_config_t *cfg, char *buf, size_t n);

typedef struct {
    const char *search; /* NULL: off; case-insensitive substring of the name or a metadata
                           value; the metadata is searched only for the scan's search */
    double max_loss;    /* NAN: off; catalog_loss must be <= it */
    long min_step;      /* < 0: off */
} catalog_filter_t;

#define CATALOG_NO_FILTER ((catalog_filter_t){NULL, NAN, -1})

/* 1 if the entry passes every filter that is on. Unreadable entries pass
 * only a name search (they have no loss or step). */
int catalog_match(const catalog_entry_t *e, const catalog_filter_t *f);

typedef enum { CATALOG_BEST, CATALOG_LATEST } catalog_pick_t;
/* The readable matching entry with the lowest loss (the catalog's order)
 * or the newest (creation time, then step, then file mtime, then the final
 * model mini_gpt): its index, or
 * -1 if none matches. */
int catalog_pick(const catalog_t *c, const catalog_filter_t *f, catalog_pick_t how);

#endif
