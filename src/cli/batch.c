/* Folders of photos for `pixmend inpaint --batch` and `pixmend colorize --batch`. */
#include "cli/batch.h"
#include "base/base.h"
#include "monitor/monitor.h"
#include "pipeline/resample.h"
#include "sched/admit.h"
#include "sched/memlaw.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


enum { ST_PENDING = 0, ST_DONE, ST_SKIPPED, ST_FAILED };

typedef struct item {
    char *name;       /* file name in IMAGES_DIR (owned) */
    char *mask;       /* pairing mode: the mask's path (owned); NULL otherwise */
    int st;
    char why[384];    /* skipped or failed: the reason */
} item;

typedef struct batch {
    const pm_batch_spec *bs;
    int inpaint;
    item *items;
    int n, ignored;
    pm_image one_mask;      /* one mask for every image (decoded once), or empty */
    struct stat one_mask_st;
    void *state;            /* the model, loaded once */
    pm_memlaw law;
    pthread_mutex_t lock;   /* guards everything below */
    pthread_cond_t freed;
    uint64_t reserved;      /* predictions of the running images */
    int to_run, finished, ndone, nskipped, nfailed;
    double t0;
    int bar;                /* the progress bar is drawn */
} batch;

static int usage_error(const pm_batch_spec *bs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const pm_batch_spec *bs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pixmend %s --batch: ", bs->cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* --------------------------------------------------------------- options */

int pm_batch_options(const pm_command *cmd, const pm_optdef *defs, const pm_args *a, pm_batch_spec *bs)
{
    static const char *const only[] = {"jobs", "mem-budget", "overwrite"};
    if (!pm_cli_get(defs, a, "batch")) {
        for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
            if (pm_cli_get(defs, a, only[i])) {
                pm_cli_error(cmd, "--%s works only with --batch (folders of images)", only[i]);
                return 2;
            }
        return 0;
    }
    if (!pm_cli_get(defs, a, "output")) {
        pm_cli_error(cmd, "missing -o OUT_DIR, the folder for the results");
        return 2;
    }
    bs->cmd = cmd;
    bs->jobs = 1;
    if (pm_cli_opt_int(cmd, defs, a, "jobs", 1, 64, &bs->jobs))
        return 2;
    if (pm_cli_opt_int(cmd, defs, a, "quality", 1, 100, &bs->quality))
        return 2;
    bs->overwrite = pm_cli_get(defs, a, "overwrite") != NULL;
    bs->quiet = pm_cli_get(defs, a, "quiet") != NULL;
    bs->mask_resize = pm_cli_get(defs, a, "mask-resize") != NULL;
    bs->mem_budget = pm_memory_share(PM_DEFAULT_BUDGET_SHARE);
    const char *s = pm_cli_get(defs, a, "mem-budget");
    if (s && pm_cli_mem_budget(cmd, s, &bs->mem_budget))
        return 2;
    return 0;
}

/* --------------------------------------------------------------- folders */

static int join(char *buf, size_t len, const char *dir, const char *name)
{
    size_t d = strlen(dir);
    int slash = d > 0 && dir[d - 1] == '/';
    return snprintf(buf, len, "%s%s%s", dir, slash ? "" : "/", name) < (int)len ? 0 : PM_EINVAL;
}

static size_t base_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

static int by_name(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The image files (.png .jpg .jpeg .webp, not hidden) of `dir`, sorted; the
 * caller owns *names and each name (free_names). *ignored counts the other
 * regular files. */
static int list_dir(const char *dir, char ***names, int *n, int *ignored)
{
    *names = NULL;
    *n = 0;
    if (ignored)
        *ignored = 0;
    DIR *d = opendir(dir);
    if (!d)
        return pm_errorf(PM_EIO, "cannot read the folder %s: %s", dir, strerror(errno));
    int cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        struct stat st;
        if (e->d_name[0] == '.' || join(path, sizeof path, dir, e->d_name) || stat(path, &st) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (pm_format_from_name(e->d_name) == PM_FMT_UNKNOWN) {
            if (ignored)
                (*ignored)++;
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = pm_realloc(*names, (size_t)cap * sizeof *grown);
            if (!grown) {
                rc = pm_errorf(PM_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            *names = grown;
        }
        if (!((*names)[*n] = pm_strdup(e->d_name))) {
            rc = pm_errorf(PM_ENOMEM, "out of memory listing %s", dir);
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(*names, (size_t)*n, sizeof **names, by_name);
    return rc;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        pm_free(names[i]);
    pm_free(names);
}

static int stat_dir(const pm_batch_spec *bs, const char *what, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? usage_error(bs, "%s %s does not exist", what, path)
                               : usage_error(bs, "%s %s cannot be read: %s", what, path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return usage_error(bs, "%s %s is not a folder", what, path);
    return 0;
}

/* 1 when `path` (resolved) is `dir` (resolved) or inside it. */
static int inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return 1;
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* OUT_DIR resolved even when it does not exist yet (its parent must). */
static int resolve_out(const pm_batch_spec *bs, char *out, size_t len)
{
    if (realpath(bs->out_dir, out))
        return 0;
    char parent[PATH_MAX], real[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", bs->out_dir);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    const char *leaf = slash ? slash + 1 : parent;
    if (slash == parent)
        snprintf(real, sizeof real, "/");
    else if (slash) {
        *slash = '\0';
        if (!realpath(parent, real))
            return usage_error(bs, "cannot create OUT_DIR %s: the folder above it, %s, does not exist; create it first",
                               bs->out_dir, parent);
    } else if (!getcwd(real, sizeof real))
        return usage_error(bs, "cannot resolve the current folder: %s", strerror(errno));
    if (snprintf(out, len, "%s/%s", strcmp(real, "/") ? real : "", leaf) >= (int)len)
        return usage_error(bs, "OUT_DIR %s: the path is too long", bs->out_dir);
    return 0;
}

/* Checks IMAGES_DIR, MASKS and OUT_DIR as the usage errors in batch.h say;
 * *single = 1 when MASKS is one file. Prints the one line and returns 2. */
static int check_paths(const pm_batch_spec *bs, int *single)
{
    char img_real[PATH_MAX], out_real[PATH_MAX], mask_real[PATH_MAX];
    if (stat_dir(bs, "IMAGES_DIR", bs->images))
        return 2;
    *single = 0;
    if (bs->masks) {
        struct stat st;
        if (stat(bs->masks, &st) != 0)
            return usage_error(bs, "%s does not exist; give a folder of masks (one per image, by base name) or one "
                                   "mask file for every image", bs->masks);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            return usage_error(bs, "%s is neither a folder of masks nor a mask file", bs->masks);
        *single = S_ISREG(st.st_mode);
    }
    if (!realpath(bs->images, img_real))
        return usage_error(bs, "cannot resolve IMAGES_DIR %s: %s", bs->images, strerror(errno));
    if (resolve_out(bs, out_real, sizeof out_real))
        return 2;
    if (inside(out_real, img_real))
        return usage_error(bs, "OUT_DIR %s is inside IMAGES_DIR %s: the results would be read as images next time; "
                               "choose a folder outside it", bs->out_dir, bs->images);
    if (bs->masks && !*single && realpath(bs->masks, mask_real) && strcmp(mask_real, img_real) == 0)
        return usage_error(bs, "MASKS_DIR %s is IMAGES_DIR: every image would be its own mask; keep the masks in "
                               "a folder of their own", bs->masks);
    if (bs->masks && !*single && realpath(bs->masks, mask_real) && inside(out_real, mask_real))
        return usage_error(bs, "OUT_DIR %s is inside MASKS_DIR %s; choose a folder outside it", bs->out_dir,
                           bs->masks);
    struct stat st;
    if (stat(bs->out_dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return usage_error(bs, "OUT_DIR %s exists and is not a folder", bs->out_dir);
    return 0;
}

/* Creates OUT_DIR when missing and proves it writable with a probe file
 * that is removed at once. *created = 1 when this call made the folder. */
static int prepare_out(const pm_batch_spec *bs, int *created)
{
    *created = 0;
    if (mkdir(bs->out_dir, 0777) == 0)
        *created = 1;
    else if (errno != EEXIST)
        return usage_error(bs, "cannot create OUT_DIR %s: %s; choose a folder you can write to", bs->out_dir,
                           strerror(errno));
    char probe[PATH_MAX];
    if (join(probe, sizeof probe, bs->out_dir, ".pixmend-probe-XXXXXX"))
        return usage_error(bs, "OUT_DIR %s: the path is too long", bs->out_dir);
    int fd = mkstemp(probe);
    if (fd < 0) {
        int e = errno;
        if (*created)
            rmdir(bs->out_dir);
        return usage_error(bs, "cannot write to OUT_DIR %s: %s; choose a folder you can write to", bs->out_dir,
                           strerror(e));
    }
    close(fd);
    unlink(probe);
    return 0;
}

/* -------------------------------------------------------------- pairing */

static void skip(item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void skip(item *it, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->why, sizeof it->why, fmt, ap);
    va_end(ap);
    it->st = ST_SKIPPED;
}

/* Index of the first of masks[] (sorted) whose base name is `base` (blen bytes), or -1. */
static int find_mask(char **masks, int n, const char *base, size_t blen)
{
    int lo = 0, hi = n - 1, found = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        size_t ml = base_len(masks[mid]);
        int c = strncmp(masks[mid], base, ml < blen ? ml : blen);
        if (c == 0)
            c = ml < blen ? -1 : ml > blen ? 1 : 0;
        if (c == 0) {
            found = mid;
            hi = mid - 1;
        } else if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return found;
}

static int by_base(const void *x, const void *y)
{
    const char *a = *(char *const *)x, *b = *(char *const *)y;
    size_t la = base_len(a), lb = base_len(b);
    int c = strncmp(a, b, la < lb ? la : lb);
    return c ? c : la < lb ? -1 : la > lb ? 1 : strcmp(a, b);
}

/* Pairs each image with the mask of its base name in MASKS_DIR. */
static int pair_masks(batch *b)
{
    char **masks;
    int nm;
    int rc = list_dir(b->bs->masks, &masks, &nm, NULL);
    if (rc)
        return rc;
    if (nm > 1)
        qsort(masks, (size_t)nm, sizeof *masks, by_base);
    for (int i = 0; i < b->n && !rc; i++) {
        item *it = &b->items[i];
        size_t bl = base_len(it->name);
        int k = find_mask(masks, nm, it->name, bl);
        char path[PATH_MAX];
        if (k < 0)
            skip(it, "no mask named %.*s.* (.png, .jpg, .jpeg or .webp) in %s", (int)bl, it->name, b->bs->masks);
        else if (k + 1 < nm && base_len(masks[k + 1]) == bl && strncmp(masks[k + 1], it->name, bl) == 0)
            skip(it, "two masks are named %.*s (%s and %s); keep one", (int)bl, it->name, masks[k], masks[k + 1]);
        else if (join(path, sizeof path, b->bs->masks, masks[k]) || !(it->mask = pm_strdup(path)))
            rc = pm_errorf(PM_ENOMEM, "out of memory pairing masks");
    }
    free_names(masks, nm);
    return rc;
}

/* Lists the images, pairs masks, marks what is skipped from the start. */
static int plan(batch *b)
{
    char **names;
    int rc = list_dir(b->bs->images, &names, &b->n, &b->ignored);
    if (rc)
        return rc;
    b->items = pm_calloc(b->n > 0 ? (size_t)b->n : 1, sizeof *b->items);
    if (!b->items) {
        free_names(names, b->n);
        return pm_errorf(PM_ENOMEM, "out of memory listing %s", b->bs->images);
    }
    for (int i = 0; i < b->n; i++)
        b->items[i].name = names[i];
    pm_free(names);
    if (b->inpaint && b->one_mask.data == NULL && (rc = pair_masks(b)))
        return rc;
    for (int i = 0; i < b->n; i++) {
        item *it = &b->items[i];
        char path[PATH_MAX];
        struct stat st;
        if (it->st != ST_PENDING || join(path, sizeof path, b->bs->images, it->name))
            continue;
        if (b->one_mask.data && stat(path, &st) == 0 && st.st_dev == b->one_mask_st.st_dev &&
            st.st_ino == b->one_mask_st.st_ino)
            skip(it, "it is the mask file");
        else if (!b->bs->overwrite && join(path, sizeof path, b->bs->out_dir, it->name) == 0 &&
                 stat(path, &st) == 0)
            skip(it, "%s exists; --overwrite replaces it", path);
    }
    return 0;
}

/* ----------------------------------------------------------- progress */

static void fmt_secs(char *buf, size_t len, double s)
{
    if (s < 60)
        snprintf(buf, len, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, len, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* Locked: redraws the one progress bar (images done of those to run, time left). */
static void draw_bar(batch *b)
{
    if (!b->bar || b->to_run == 0)
        return;
    char bar[31], left[32] = "?";
    int fill = b->finished * 30 / b->to_run;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    double el = pm_now() - b->t0;
    if (b->finished > 0)
        fmt_secs(left, sizeof left, el / b->finished * (b->to_run - b->finished));
    fprintf(stderr, "\r%s [%s] %d/%d images, %d failed, %s left   ", b->bs->cmd->name, bar, b->finished,
            b->to_run, b->nfailed, left);
    fflush(stderr);
}

static void finish(batch *b, item *it, int st, const char *what)
{
    pthread_mutex_lock(&b->lock);
    it->st = st;
    if (st == ST_FAILED)
        if (snprintf(it->why, sizeof it->why, "%s%s%s", what ? what : "", what ? ": " : "", pm_error_detail()) >=
            (int)sizeof it->why)
            memcpy(it->why + sizeof it->why - 4, "...", 4); /* cut, and says so */
    b->finished++;
    if (st == ST_DONE)
        b->ndone++;
    else if (st == ST_SKIPPED)
        b->nskipped++;
    else
        b->nfailed++;
    draw_bar(b);
    pthread_mutex_unlock(&b->lock);
}

/* ------------------------------------------------------------- running */

static void admit(batch *b, uint64_t need)
{
    pthread_mutex_lock(&b->lock);
    while (!pm_admit_fits(b->bs->mem_budget, b->reserved, need))
        pthread_cond_wait(&b->freed, &b->lock);
    b->reserved += need;
    pthread_mutex_unlock(&b->lock);
}

static void release(batch *b, uint64_t need)
{
    pthread_mutex_lock(&b->lock);
    b->reserved -= need;
    pthread_cond_broadcast(&b->freed);
    pthread_mutex_unlock(&b->lock);
}

/* The mask for image `it` of w x h into *mask (caller frees; may alias the
 * shared one through *shared = 1). Returns ST_PENDING to go on, ST_SKIPPED or
 * ST_FAILED (with the error set). */
static int image_mask(batch *b, item *it, int w, int h, pm_image *mask, int *shared)
{
    *shared = 0;
    if (b->one_mask.data) {
        const pm_image *m = &b->one_mask;
        if (m->width == w && m->height == h) {
            *mask = *m;
            *shared = 1;
            return ST_PENDING;
        }
        if (!b->bs->mask_resize) {
            skip(it, "the image is %dx%d and the mask %dx%d (--mask-resize scales the mask)", w, h, m->width,
                 m->height);
            return ST_SKIPPED;
        }
        return pm_resize_nearest(mask, m, w, h) ? ST_FAILED : ST_PENDING;
    }
    pm_image raw = {0};
    if (pm_image_load(it->mask, &b->bs->lim, &raw)) {
        pm_errorf(PM_EINVAL, "mask %s: %s", it->mask, pm_error_detail());
        return ST_FAILED;
    }
    if (raw.width == w && raw.height == h) {
        *mask = raw;
        return ST_PENDING;
    }
    int rc = ST_PENDING;
    if (!b->bs->mask_resize) {
        pm_errorf(PM_EMISMATCH, "the mask %s is %dx%d but the image is %dx%d; give a mask of the image's size or "
                                "pass --mask-resize", it->mask, raw.width, raw.height, w, h);
        rc = ST_FAILED;
    } else if (pm_resize_nearest(mask, &raw, w, h)) {
        rc = ST_FAILED;
    }
    pm_image_free(&raw);
    return rc;
}

/* One image: read, mask, admission by the law, decode, run, save. A
 * pm_parallel_for body; records the outcome in the item, never fails. */
static int run_one(void *user, int i)
{
    batch *b = user;
    const pm_batch_spec *bs = b->bs;
    item *it = &b->items[i];
    if (it->st != ST_PENDING)
        return 0;
    char in_path[PATH_MAX], out_path[PATH_MAX];
    uint8_t *data = NULL;
    size_t len = 0;
    pm_image img = {0}, mask = {0}, out = {0};
    pm_image_info info;
    int shared = 0, st = ST_FAILED;
    uint64_t need = 0;
    const char *what = NULL; /* the summary line names the image */
    if (join(in_path, sizeof in_path, bs->images, it->name) || join(out_path, sizeof out_path, bs->out_dir, it->name)) {
        pm_errorf(PM_EINVAL, "the path is too long");
        goto record;
    }
    if (pm_read_file(in_path, bs->lim.max_file_bytes, &data, &len) || pm_image_probe(data, len, &bs->lim, &info))
        goto free_data;
    uint64_t px = (uint64_t)info.width * (uint64_t)info.height, work = px;
    if (b->inpaint) {
        st = image_mask(b, it, info.width, info.height, &mask, &shared);
        if (st != ST_PENDING)
            goto free_data;
        st = ST_FAILED;
        uint64_t wp = pm_inpaint_work_pixels(&mask, &bs->io);
        if (wp > 0 && wp < px)
            work = wp;
    }
    /* The service's prediction: the law at the working pixels, plus the
     * full-size buffers when the model works on part of the image. */
    need = pm_memlaw_predict(&b->law, work) + (work < px ? PM_MEMLAW_FULL_IMAGE_BYTES * px : 0);
    if (!b->inpaint && bs->model->mem_estimate) {
        /* As serve: the law is fitted at the default input size; another
         * size adds the engine's estimate there less at the default. */
        uint64_t at = bs->model->mem_estimate(b->state, info.width, info.height, bs->co.input_size);
        uint64_t def = bs->model->mem_estimate(b->state, info.width, info.height, 0);
        need += at > def ? at - def : 0;
    }
    admit(b, need);
    /* The result in the image's format: a JPEG at the quality estimated from
     * its tables, WebP lossless when it was (as single runs without an extension). */
    pm_encode_opts eo;
    if (pm_encode_opts_like(data, len, &eo))
        eo = pm_default_encode_opts(pm_format_from_name(it->name));
    if (bs->quality)
        eo.quality = bs->quality;
    /* With the input's metadata (ICC, EXIF, XMP, DPI, PNG text, 16-bit samples, JPEG blocks). */
    pm_image_meta meta;
    int rc = pm_image_decode_meta(data, len, &bs->lim, it->name, &img, &meta);
    pm_free(data);
    data = NULL;
    pm_run_ctx ctx = {NULL, NULL};
    if (!rc)
        rc = b->inpaint ? pm_inpaint_run(bs->model, b->state, &img, &mask, &bs->io, &out, &ctx)
                        : pm_colorize_run(bs->model, b->state, &img, &bs->co, &out, &ctx);
    if (!rc) {
        pm_encode_req req = {&out, &img, &meta, eo, bs->meta, b->inpaint};
        if ((rc = pm_image_save_full(out_path, &req, NULL)))
            what = out_path;
    }
    pm_image_meta_free(&meta);
    release(b, need);
    st = rc ? ST_FAILED : ST_DONE;
free_data:
    pm_free(data);
    pm_image_free(&out);
    pm_image_free(&img);
    if (!shared)
        pm_image_free(&mask);
record:
    finish(b, it, st, st == ST_FAILED ? what : NULL);
    return 0;
}

/* ------------------------------------------------------------- summary */

static void summary(const batch *b, double secs)
{
    const pm_batch_spec *bs = b->bs;
    int skipped = 0;
    for (int i = 0; i < b->n; i++)
        skipped += b->items[i].st == ST_SKIPPED;
    printf("pixmend %s --batch: %d image%s: %d done, %d skipped, %d failed in %.1f s; results in %s\n",
           bs->cmd->name, b->n, b->n == 1 ? "" : "s", b->ndone, skipped, b->nfailed, secs, bs->out_dir);
    if (b->ignored)
        printf("  (%d other file%s in %s ignored: not .png, .jpg, .jpeg or .webp)\n", b->ignored,
               b->ignored == 1 ? "" : "s", bs->images);
    for (int i = 0; i < b->n; i++)
        if (b->items[i].st == ST_SKIPPED)
            printf("skipped %s: %s\n", b->items[i].name, b->items[i].why);
    for (int i = 0; i < b->n; i++)
        if (b->items[i].st == ST_FAILED)
            printf("failed  %s: %s\n", b->items[i].name, b->items[i].why);
    fflush(stdout);
}

static void free_batch(batch *b)
{
    for (int i = 0; b->items && i < b->n; i++) {
        pm_free(b->items[i].name);
        pm_free(b->items[i].mask);
    }
    pm_free(b->items);
    pm_image_free(&b->one_mask);
}

/* Loads the model once and runs every image not skipped; returns 1 when the model cannot be loaded. */
static int run_all(batch *b)
{
    const pm_batch_spec *bs = b->bs;
    pm_model_opts mo = bs->mo;
    /* PatchMatch (no weights file) runs images in parallel on its one
     * read-only state: share the cores. LaMa and DDColor serialise runs on
     * their state's lock, so each run keeps them all. */
    if (mo.threads == 0 && bs->jobs > 1 && !bs->model->needs_file) {
        mo.threads = pm_cpu_count() / bs->jobs;
        if (mo.threads < 1)
            mo.threads = 1;
    }
    if (bs->model->load(bs->weights, &mo, &b->state)) {
        fprintf(stderr, "pixmend %s: %s%s%s\n", bs->cmd->name, bs->weights ? bs->weights : bs->model->name,
                *pm_error_detail() ? ": " : "", pm_error_detail());
        return 1;
    }
    pm_memlaw_seed(&b->law, bs->model, b->state);
    for (int i = 0; i < b->n; i++)
        b->to_run += b->items[i].st == ST_PENDING;
    b->bar = !bs->quiet && isatty(STDERR_FILENO);
    b->t0 = pm_now();
    pthread_mutex_lock(&b->lock);
    draw_bar(b);
    pthread_mutex_unlock(&b->lock);
    pm_parallel_for(b->n, bs->jobs, run_one, b);
    if (b->bar && b->to_run > 0)
        fputc('\n', stderr);
    bs->model->unload(b->state);
    return 0;
}

int pm_batch_run(const pm_batch_spec *bs)
{
    batch b;
    memset(&b, 0, sizeof b);
    b.bs = bs;
    b.inpaint = bs->masks != NULL;
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.freed, NULL);
    int single = 0, created = 0, status = 2;
    double t0 = pm_now();
    if (check_paths(bs, &single))
        goto free_batch;
    if (single) {
        if (pm_image_load(bs->masks, &bs->lim, &b.one_mask) || stat(bs->masks, &b.one_mask_st)) {
            usage_error(bs, "the mask %s: %s", bs->masks, pm_error_detail());
            goto free_batch;
        }
        if (pm_inpaint_work_pixels(&b.one_mask, &bs->io) == 0) {
            usage_error(bs, "the mask %s selects nothing (no non-zero pixel); paint the area to fill in white",
                        bs->masks);
            goto free_batch;
        }
    }
    if (plan(&b)) {
        usage_error(bs, "%s", pm_error_detail());
        goto free_batch;
    }
    if (b.n == 0) {
        usage_error(bs, "IMAGES_DIR %s has no images (.png, .jpg, .jpeg or .webp)", bs->images);
        goto free_batch;
    }
    if (prepare_out(bs, &created))
        goto free_batch;
    if (run_all(&b)) {
        if (created)
            rmdir(bs->out_dir);
        status = 1;
        goto free_batch;
    }
    summary(&b, pm_now() - t0);
    status = b.nfailed ? 1 : 0;
free_batch:
    free_batch(&b);
    pthread_cond_destroy(&b.freed);
    pthread_mutex_destroy(&b.lock);
    return status;
}
