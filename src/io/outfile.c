/* outfile.c - atomic file writes (see outfile.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <unistd.h>

#include "util/common.h"

int io_sync_dir(const char *dir, char *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return mg_fail(err, "cannot open directory '%s': %s", dir, strerror(errno));
    int rc = fsync(fd) != 0 && errno != EINVAL ? -1 : 0;
    if (rc) mg_fail(err, "cannot sync directory '%s': %s", dir, strerror(errno));
    close(fd);
    return rc;
}

int io_out_open(io_out_t *o, const char *path, char *err) {
    memset(o, 0, sizeof o[0]);
    size_t n = strlen(path);
    o->path = mg_strdup(path);
    o->tmp = mg_malloc(n + 32);
    if (!o->path || !o->tmp) {
        io_out_abort(o);
        return mg_fail(err, "out of memory");
    }
    snprintf(o->tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
        mg_fail(err, "cannot write '%s': %s", o->tmp, strerror(errno));
        mg_free(o->tmp);
        o->tmp = NULL;
        io_out_abort(o);
        return -1;
    }
    if (!(o->f = fdopen(fd, "wb"))) {
        close(fd);
        io_out_abort(o);
        return mg_fail(err, "cannot write '%s': %s", path, strerror(errno));
    }
    return 0;
}

void io_out_write(io_out_t *o, const void *p, size_t n) {
    if (!o->failed && n && fwrite(p, 1, n, o->f) != n) o->failed = errno ? errno : EIO;
}

int io_out_commit(io_out_t *o, char *err) {
    int rc = -1;
    if (fflush(o->f) != 0 && !o->failed) o->failed = errno ? errno : EIO;
    if (!o->failed && fsync(fileno(o->f)) != 0) o->failed = errno ? errno : EIO;
    if (o->failed) {
        mg_fail(err, "cannot write '%s': %s", o->path, strerror(o->failed));
        goto done;
    }
    if (fclose(o->f) != 0) {
        o->f = NULL;
        mg_fail(err, "cannot write '%s': %s", o->path, strerror(errno));
        goto done;
    }
    o->f = NULL;
    if (rename(o->tmp, o->path) != 0) {
        mg_fail(err, "cannot write '%s': %s", o->path, strerror(errno));
        goto done;
    }
    mg_free(o->tmp);
    o->tmp = NULL;
    char *d = mg_strdup(o->path);
    rc = d ? io_sync_dir(dirname(d), err) : 0;
    mg_free(d);
done:
    io_out_abort(o);
    return rc;
}

void io_out_abort(io_out_t *o) {
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    mg_free(o->tmp);
    mg_free(o->path);
    memset(o, 0, sizeof o[0]);
}

int io_write_file(const char *path, const void *data, size_t n, char *err) {
    io_out_t o;
    if (io_out_open(&o, path, err) != 0) return -1;
    io_out_write(&o, data, n);
    return io_out_commit(&o, err);
}
