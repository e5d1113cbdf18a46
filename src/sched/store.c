/* The data directory: input files of accepted jobs, result files, sweeping. */
#include "sched/sched_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int pm_mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return pm_errorf(PM_EINVAL, "directory path '%s' is empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return pm_errorf(PM_EIO, "cannot create directory %s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return pm_errorf(PM_EIO, "%s exists but is not a directory", path);
    return 0;
}

void pm_input_path(const char *data_dir, const char *id, int is_mask, char *buf, size_t len)
{
    snprintf(buf, len, "%s/inputs/%s.%s", data_dir, id, is_mask ? "mask" : "image");
}

void pm_result_relpath(const char *id, enum pm_format f, double when, char *buf, size_t len)
{
    time_t t = (time_t)when;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "outputs/%04d/%02d/%02d/%s.%s", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, id,
             pm_format_ext(f));
}

/* Walks `abs` (whose path below the data dir is `rel`); returns files deleted. */
static int sweep_dir(const char *abs, const char *rel, int depth, pm_keep_fn keep, void *user)
{
    if (depth > 8)
        return 0;
    DIR *d = opendir(abs);
    if (!d)
        return 0;
    int deleted = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[4096], child_rel[4096];
        if (snprintf(child, sizeof child, "%s/%s", abs, e->d_name) >= (int)sizeof child ||
            snprintf(child_rel, sizeof child_rel, "%s/%s", rel, e->d_name) >= (int)sizeof child_rel)
            continue;
        struct stat st;
        if (lstat(child, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            deleted += sweep_dir(child, child_rel, depth + 1, keep, user);
            rmdir(child); /* fails, harmlessly, unless it is now empty */
        } else if (!keep(user, rel, e->d_name)) {
            if (unlink(child) == 0)
                deleted++;
        }
    }
    closedir(d);
    return deleted;
}

int pm_store_sweep(const char *data_dir, const char *sub, pm_keep_fn keep, void *user)
{
    char abs[4096];
    snprintf(abs, sizeof abs, "%s/%s", data_dir, sub);
    return sweep_dir(abs, sub, 0, keep, user);
}
