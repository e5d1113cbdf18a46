/* A directory as a checkpoint: the Hugging Face hub's layout
 * (models--org--name/{refs/main, snapshots/<commit>/<files>}, the files
 * being links into blobs/) and model folders (a snapshot, a ModelScope
 * download, any folder) holding one weights file, recognised by content. */
#include "ckpt/ckpt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LISTED 4

int pm_ckpt_sniff_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return PM_CKPT_KIND_NONE;
    uint8_t b[16];
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    return n > 0 ? pm_ckpt_sniff(b, (size_t)n) : PM_CKPT_KIND_NONE;
}

/* In a Hugging Face repository folder, the snapshot to use into out: the
 * commit refs/main names, else the newest snapshot. 1 if found, 0 if dir is
 * no such folder. */
static int hf_snapshot(const char *dir, char *out, size_t n)
{
    char p[4096];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/snapshots", dir) >= (int)sizeof p || stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    char ref[128] = "";
    snprintf(p, sizeof p, "%s/refs/main", dir);
    FILE *f = fopen(p, "re");
    if (f) {
        if (!fgets(ref, sizeof ref, f))
            ref[0] = '\0';
        fclose(f);
        ref[strcspn(ref, "\r\n")] = '\0';
        if (ref[0] && !strchr(ref, '/') && strcmp(ref, ".") != 0 && strcmp(ref, "..") != 0 &&
            snprintf(out, n, "%s/snapshots/%s", dir, ref) < (int)n && stat(out, &st) == 0 && S_ISDIR(st.st_mode))
            return 1;
    }
    snprintf(p, sizeof p, "%s/snapshots", dir);
    DIR *d = opendir(p);
    if (!d)
        return 0;
    struct dirent *e;
    time_t best = 0;
    int found = 0;
    while ((e = readdir(d))) {
        char q[4096];
        if (e->d_name[0] == '.' || snprintf(q, sizeof q, "%s/%s", p, e->d_name) >= (int)sizeof q)
            continue;
        if (stat(q, &st) == 0 && S_ISDIR(st.st_mode) && (!found || st.st_mtime > best) &&
            snprintf(out, n, "%s", q) < (int)n) {
            best = st.st_mtime;
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* Looks at the regular files of dir (links followed): out gets the one
 * weights file; names of all of them are listed for messages. */
static int pick_file(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    if (!d)
        return pm_errorf(errno == ENOENT ? PM_ENOENT : PM_EIO, "cannot read folder %s: %s", dir, strerror(errno));
    char names[MAX_LISTED][256], best[4096] = "";
    int count = 0, best_kind = 0, ties = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char q[4096];
        struct stat st;
        if (e->d_name[0] == '.' || snprintf(q, sizeof q, "%s/%s", dir, e->d_name) >= (int)sizeof q ||
            stat(q, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        int kind = pm_ckpt_sniff_file(q);
        if (kind == PM_CKPT_KIND_NONE)
            continue;
        if (count < MAX_LISTED)
            snprintf(names[count], sizeof names[count], "%s", e->d_name);
        count++;
        /* safetensors first: a snapshot often has the same weights as both */
        int rank = kind == PM_CKPT_KIND_SAFETENSORS ? 2 : 1;
        if (rank > best_kind) {
            best_kind = rank;
            ties = 1;
            snprintf(best, sizeof best, "%s", q);
        } else if (rank == best_kind) {
            ties++;
        }
    }
    closedir(d);
    if (count == 0)
        return pm_errorf(PM_ENOENT, "%s is a directory without a weights file (no PyTorch, TorchScript or safetensors file in it); give the checkpoint file or its folder",
                         dir);
    if (ties > 1) {
        char list[4 * 260] = "";
        size_t k = 0;
        for (int i = 0; i < count && i < MAX_LISTED && k < sizeof list; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", names[i]);
        return pm_errorf(PM_EINVAL, "%s is a directory holding %d weights files (%s%s); give the one to use (--model %s/FILE)",
                         dir, count, list, count > MAX_LISTED ? ", ..." : "", dir);
    }
    if (snprintf(out, n, "%s", best) >= (int)n)
        return pm_errorf(PM_EINVAL, "the path %s is too long", best);
    return 0;
}

int pm_ckpt_resolve(const char *path, char *out, size_t n)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (snprintf(out, n, "%s", path) >= (int)n)
            return pm_errorf(PM_EINVAL, "the path %.200s... is too long", path);
        return 0; /* a file, or nothing: open() says which */
    }
    char snap[4096];
    if (hf_snapshot(path, snap, sizeof snap))
        return pick_file(snap, out, n);
    return pick_file(path, out, n);
}
