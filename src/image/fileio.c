/* Whole-file reads and atomic whole-file writes. */
#include "image/image_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_error(const char *what, const char *path, int e)
{
    int code = (e == ENOENT || e == ENOTDIR) ? PM_ENOENT : PM_EIO;
    return pm_errorf(code, "cannot %s %s: %s", what, path, strerror(e));
}

/* Caller owns *out_data (pm_free), also when *out_len is 0. */
int pm_read_file(const char *path, size_t max_bytes, uint8_t **out_data, size_t *out_len)
{
    if (!path || !out_data || !out_len)
        return pm_errorf(PM_EINVAL, "pm_read_file: path, out_data and out_len must not be NULL");
    *out_data = NULL;
    *out_len = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return open_error("open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = open_error("stat", path, errno);
        goto close_fd;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = pm_errorf(PM_EIO, "cannot read %s: it is a directory", path);
        goto close_fd;
    }
    size_t cap = 64 * 1024;
    if (S_ISREG(st.st_mode)) {
        if (max_bytes && (uint64_t)st.st_size > max_bytes) {
            char have[32], allow[32];
            pm_img_fmt_bytes(have, sizeof have, (uint64_t)st.st_size);
            pm_img_fmt_bytes(allow, sizeof allow, max_bytes);
            rc = pm_errorf(PM_ETOOBIG, "%s is %s; the limit is %s", path, have, allow);
            goto close_fd;
        }
        cap = (size_t)st.st_size + 1; /* +1 so the read that sees EOF needs no growth */
    }
    uint8_t *buf = pm_malloc(cap);
    if (!buf) {
        rc = pm_errorf(PM_ENOMEM, "out of memory reading %s", path);
        goto close_fd;
    }
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap * 2;
            uint8_t *nb = pm_realloc(buf, ncap);
            if (!nb) {
                rc = pm_errorf(PM_ENOMEM, "out of memory reading %s", path);
                goto free_buf;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = pm_errorf(PM_EIO, "cannot read %s: %s", path, strerror(errno));
            goto free_buf;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (max_bytes && len > max_bytes) {
            char allow[32];
            pm_img_fmt_bytes(allow, sizeof allow, max_bytes);
            rc = pm_errorf(PM_ETOOBIG, "%s is larger than the limit of %s", path, allow);
            goto free_buf;
        }
    }
    close(fd);
    *out_data = buf;
    *out_len = len;
    return 0;

free_buf:
    pm_free(buf);
close_fd:
    close(fd);
    return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes to "<dir>/.<name>.XXXXXX", fsyncs, renames over `path` and fsyncs
 * the directory. The temporary file is removed on every failure path. New
 * files get mode 0644; an existing file keeps its mode. */
int pm_write_file_atomic(const char *path, const void *data, size_t len)
{
    if (!path || !*path || (!data && len))
        return pm_errorf(PM_EINVAL, "pm_write_file_atomic: path must be a file name and data non-NULL");
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return pm_errorf(PM_EINVAL, "cannot write to %s: the path names a directory, not a file", path);
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    int rc = 0;

    /* "<dir>/" + "." + base + ".XXXXXX" + NUL; dir is "." when path has no slash. */
    size_t tlen = dirlen + 2 + 1 + strlen(base) + 8;
    char *tmp = pm_malloc(tlen);
    char *dir = pm_malloc(dirlen + 2);
    if (!tmp || !dir) {
        rc = pm_errorf(PM_ENOMEM, "out of memory writing %s", path);
        goto free_names;
    }
    if (slash) {
        memcpy(dir, path, dirlen);
        dir[dirlen] = '\0';
        if (dirlen == 0)
            strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    memcpy(tmp, path, (size_t)(base - path));
    tmp[base - path] = '\0';
    strcat(tmp, ".");
    strcat(tmp, base);
    strcat(tmp, ".XXXXXX");

    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        rc = pm_errorf(e == ENOENT || e == ENOTDIR ? PM_ENOENT : PM_EIO,
                       "cannot create a file in %s to write %s: %s", dir, path, strerror(e));
        goto free_names;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);

    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        mode = st.st_mode & 07777;
    if (fchmod(fd, mode) != 0) {
        rc = pm_errorf(PM_EIO, "cannot set the mode of %s: %s", tmp, strerror(errno));
        goto close_temp;
    }
    if (write_all(fd, data, len) != 0) {
        rc = pm_errorf(PM_EIO, "cannot write %s: %s; nothing was written", path, strerror(errno));
        goto close_temp;
    }
    if (fsync(fd) != 0) {
        rc = pm_errorf(PM_EIO, "cannot flush %s to disk: %s; nothing was written", path, strerror(errno));
        goto close_temp;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = pm_errorf(PM_EIO, "cannot close %s: %s; nothing was written", path, strerror(errno));
        goto remove_temp;
    }
    if (rename(tmp, path) != 0) {
        rc = pm_errorf(PM_EIO, "cannot replace %s: %s; nothing was written", path, strerror(errno));
        goto remove_temp;
    }
    /* Make the rename itself durable; not every file system supports this. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    goto free_names;

close_temp:
    close(fd);
remove_temp:
    unlink(tmp);
free_names:
    pm_free(tmp);
    pm_free(dir);
    return rc;
}
