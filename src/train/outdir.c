/* outdir.c - lock, checks, clean-up and log of the --out folder (see outdir.h). */
#define _DEFAULT_SOURCE /* flock */
#include "train/outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/atomic.h"
#include "util/common.h"

#define LOCK_NAME ".minigpt-train.lock"

int outdir_lock(const char *dir, int *fd, char *err) {
    char path[4096], probe[4200];
    *fd = -1;
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_NAME);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f < 0)
        return mg_fail(err, "cannot write in the output directory '%s': %s", dir, strerror(errno));
    /* a checker that only peeks may hold it for an instant: retry briefly */
    int got = -1;
    for (int i = 0; i < 20 && (got = flock(f, LOCK_EX | LOCK_NB)) != 0 && errno == EWOULDBLOCK; i++)
        usleep(50000);
    if (got != 0) {
        char pid[32] = "";
        ssize_t n = pread(f, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(f);
        return mg_fail(
            err,
            "'%s' is in use by another training (pid %s): wait for it to end or give another --out",
            dir, *pid ? pid : "unknown");
    }
    char me[32];
    int len = snprintf(me, sizeof me, "%ld\n", (long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, me, (size_t)len, 0) != len) {
        close(f);
        return mg_fail(err, "cannot write in the output directory '%s': %s", dir, strerror(errno));
    }
    /* the lock file may have existed: prove that the folder takes new files */
    snprintf(probe, sizeof probe, "%s/.minigpt-probe.tmp.%ld", dir, (long)getpid());
    int p = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (p < 0 || close(p) != 0 || unlink(probe) != 0) {
        mg_fail(err, "cannot write in the output directory '%s': %s", dir, strerror(errno));
        if (p >= 0) unlink(probe);
        close(f);
        return -1;
    }
    *fd = f;
    return 0;
}

void outdir_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing releases the flock */
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int outdir_is_run_file(const char *name) {
    if (!strcmp(name, "train_log.jsonl") || !strcmp(name, "loss_curve.svg") ||
        !strcmp(name, "tokenizer.json"))
        return 1;
    if (!has_suffix(name, ".safetensors")) return 0;
    return !strncmp(name, "mini_gpt.", 9) || !strncmp(name, "best_model.", 11) ||
           !strncmp(name, "checkpoint_step_", 16) || !strncmp(name, "checkpoint_epoch_", 17);
}

int outdir_find_run(const char *dir, char *name, size_t n) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)))
        if (outdir_is_run_file(e->d_name)) {
            snprintf(name, n, "%s", e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

void outdir_clean_stale(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        long pid = mg_atomic_tmp_pid(e->d_name);
        int stale = pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        if (!stale && has_suffix(e->d_name, ".optim.safetensors")) {
            /* X.optim.safetensors without X.safetensors: the model save never came */
            snprintf(path, sizeof path, "%s/%.*s.safetensors", dir,
                     (int)(strlen(e->d_name) - strlen(".optim.safetensors")), e->d_name);
            stale = access(path, F_OK) != 0 && errno == ENOENT;
        }
        if (!stale) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

int outdir_clear_run(const char *dir, char *err) {
    DIR *d = opendir(dir);
    if (!d) return mg_fail(err, "cannot read the output directory '%s': %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    int rc = 0;
    while ((e = readdir(d))) {
        if (!outdir_is_run_file(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = mg_fail(err, "--overwrite: cannot remove '%s': %s", path, strerror(errno));
            break;
        }
    }
    closedir(d);
    return rc;
}

int outdir_log_keep(const char *path, long step, char *err) {
    size_t len = 0, kept = 0;
    char *old = NULL;
    if (step >= 0 && access(path, F_OK) == 0 && !(old = mg_read_file(path, &len, err))) return -1;
    /* entries are one JSON object a line, starting {"step":N */
    for (size_t i = 0; i < len;) {
        char *nl = memchr(old + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - old) + 1 : len;
        long s;
        if (nl && sscanf(old + i, "{\"step\":%ld", &s) == 1 && s <= step) {
            memmove(old + kept, old + i, end - i);
            kept += end - i;
        }
        i = end;
    }
    int rc = mg_write_atomic(path, old ? old : "", kept, err);
    mg_free(old);
    return rc;
}
