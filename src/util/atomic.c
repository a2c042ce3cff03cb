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
    while (strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");
    t += 5;
    if (!*t || strspn(t, "0123456789") != strlen(t) || strlen(t) > 9) return 0;
    return strtol(t, NULL, 10);
}

/* fsync of the directory holding path, where the rename lives. Some
 * filesystems cannot fsync a directory (EINVAL): nothing more to do there. */
static int sync_dir(const char *path, char *err) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        rc = mg_fail(err, "cannot save '%s': fsync of directory '%s' failed: %s", path, dir, strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
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
    return sync_dir(path, err);
fail:
    unlink(tmp);
    return -1;
}

int mg_write_atomic(const char *path, const void *data, size_t len, char *err) {
    char tmp[4200];
    if (mg_atomic_tmp(path, tmp, sizeof tmp)) return mg_fail(err, "path too long: '%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) return mg_fail(err, "cannot save '%s': cannot create '%s': %s", path, tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            mg_fail(err, "cannot save '%s': write to '%s' failed: %s", path, tmp,
                    strerror(w < 0 ? errno : ENOSPC));
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) != 0) {
        mg_fail(err, "cannot save '%s': close of '%s' failed: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return mg_atomic_commit(tmp, path, err);
}
