/* atomic.c - temp + fsync + rename writes (see atomic.h). */
#define _POSIX_C_SOURCE 200809L
#include "util/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/common.h"

int mg_atomic_tmp(const char *path, char *buf, size_t n) {
    int w = snprintf(buf, n, "%s.tmp.%ld", path, (long)getpid());
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

long mg_atomic_tmp_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    while (strstr(t + 1, ".tmp."))
        t = strstr(t + 1, ".tmp.");
    t += 5;
    if (!*t || strspn(t, "0123456789") != strlen(t) || strlen(t) > 9) return 0;
    return strtol(t, NULL, 10);
}

int mg_atomic_sync_dir(const char *dir, char *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        rc = mg_fail(err, "fsync of directory '%s' failed: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
}

/* fsync of the directory holding path, where the rename lives. */
static int sync_parent(const char *path, char *err) {
    char dir[4096], why[MG_ERR_LEN];
    if (mg_atomic_sync_dir(mg_parent_dir(path, dir, sizeof dir), why))
        return mg_fail(err, "cannot save '%s': %s", path, why);
    return 0;
}

int mg_atomic_commit(const char *tmp, const char *path, char *err) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        mg_fail(err, "cannot save '%s': cannot reopen '%s': %s", path, tmp, strerror(errno));
        goto fail;
    }
    /* data on disk before the rename makes it the file: otherwise a crash
     * can leave the new name pointing at missing blocks */
    int s = fsync(fd);
    close(fd);
    if (s != 0) {
        mg_fail(err, "cannot save '%s': fsync of '%s' failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        mg_fail(err, "cannot save '%s': rename from '%s' failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    return sync_parent(path, err);
fail:
    unlink(tmp);
    return -1;
}

int mg_atomic_open(mg_atomic_file_t *f, const char *path, char *err) {
    f->fd = -1;
    f->path = path;
    f->failed = 0;
    f->tmp[0] = '\0';
    if (mg_atomic_tmp(path, f->tmp, sizeof f->tmp)) {
        f->tmp[0] = '\0';
        return mg_fail(err, "path too long: '%s'", path);
    }
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (f->fd < 0) {
        mg_fail(err, "cannot save '%s': cannot create '%s': %s", path, f->tmp, strerror(errno));
        f->tmp[0] = '\0'; /* not ours to remove */
        return -1;
    }
    return 0;
}

void mg_atomic_write(mg_atomic_file_t *f, const void *p, size_t n) {
    const char *c = p;
    while (n && !f->failed) {
        /* write() may write less than asked (signals, sizes over 2 GiB) */
        ssize_t k = write(f->fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            f->failed = k < 0 ? errno : ENOSPC;
            break;
        }
        c += k;
        n -= (size_t)k;
    }
}

int mg_atomic_close(mg_atomic_file_t *f, char *err) {
    if (f->failed) {
        mg_fail(err, "cannot save '%s': write to '%s' failed: %s", f->path, f->tmp,
                strerror(f->failed));
        goto fail;
    }
    int c = close(f->fd);
    f->fd = -1;
    if (c != 0) {
        mg_fail(err, "cannot save '%s': close of '%s' failed: %s", f->path, f->tmp,
                strerror(errno));
        goto fail;
    }
    char tmp[sizeof f->tmp];
    strcpy(tmp, f->tmp);
    f->tmp[0] = '\0'; /* the commit removes it on failure */
    return mg_atomic_commit(tmp, f->path, err);
fail:
    mg_atomic_abort(f);
    return -1;
}

/* f is live while it names a temp file: a zeroed f is not, and its fd 0
 * is not closed */
void mg_atomic_abort(mg_atomic_file_t *f) {
    if (!f->tmp[0]) return;
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    unlink(f->tmp);
    f->tmp[0] = '\0';
}

int mg_write_atomic(const char *path, const void *data, size_t len, char *err) {
    mg_atomic_file_t f;
    if (mg_atomic_open(&f, path, err)) return -1;
    mg_atomic_write(&f, data, len);
    return mg_atomic_close(&f, err);
}
