/* outdir.h - the rules of a training run's --out folder: one run at a time
 * (an advisory flock on OUT/.minigpt-train.lock, released by the kernel when
 * the process dies, so a dead run's lock never blocks), writable, not
 * holding another run unless asked, no leftovers of killed runs, and a log
 * with one entry per step. */
#ifndef MG_OUTDIR_H
#define MG_OUTDIR_H

#include <stddef.h>

/* Locks dir (which must exist) for this process and checks that files can
 * be created in it. *fd gets the lock's descriptor (keep it open for the
 * run; outdir_unlock releases it). */
int outdir_lock(const char *dir, int *fd, char *err);
void outdir_unlock(int fd);
/* Whether name is a file of a training run: its log, plot, tokenizer, or
 * a checkpoint (mini_gpt, best_model, checkpoint_*) or its .optim state. */
int outdir_is_run_file(const char *name);
/* The first run file in dir into name (n bytes): 1 if there is one, else 0. */
int outdir_find_run(const char *dir, char *name, size_t n);
/* Removes what killed runs leave: temp files "*.tmp.<pid>" whose process
 * is gone, and X.optim.safetensors whose X.safetensors was never written. */
void outdir_clean_stale(const char *dir);
/* --overwrite: removes every run file of dir. */
int outdir_clear_run(const char *dir, char *err);
/* Rewrites (atomically) the log at path keeping the entries of steps up to
 * step, so that a resumed run appends after them; a missing log becomes an
 * empty one. step < 0: an empty log (a new run). */
int outdir_log_keep(const char *path, long step, char *err);

#endif
