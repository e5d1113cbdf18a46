/* Discovery of LaMa and DDColor weights in the usual caches and in folders
 * given; see discover.h. */
#include "models/discover.h"
#include "ckpt/ckpt.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEPTH 8
#define MAX_VISITS 100000 /* directory entries looked at, in all */

int pm_discover_default_dirs(char dirs[][4096], int max)
{
    char cache[2048];
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && *x)
        snprintf(cache, sizeof cache, "%.2000s", x);
    else
        snprintf(cache, sizeof cache, "%.2000s/.cache", home && *home ? home : "");
    /* per cache: the variables that name it, first set wins (with the folder
     * under it), else the folder under `cache` */
    static const struct {
        const char *env[3], *sub[3], *dflt;
    } c[3] = {
        {{"TORCH_HOME"}, {"/hub/checkpoints"}, "/torch/hub/checkpoints"},
        {{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"}, {"", "", "/hub"}, "/huggingface/hub"},
        {{"MODELSCOPE_CACHE"}, {""}, "/modelscope/hub"},
    };
    int n = 0;
    for (int i = 0; i < 3 && n < max; i++, n++) {
        const char *e = NULL;
        int j = 0;
        while (j < 3 && c[i].env[j] && !((e = getenv(c[i].env[j])) && *e))
            j++;
        if (j < 3 && c[i].env[j])
            snprintf(dirs[n], 4096, "%.4000s%s", e, c[i].sub[j]);
        else
            snprintf(dirs[n], 4096, "%.4000s%s", cache, c[i].dflt);
    }
    return n;
}

/* The shortest name ending in `suffix` at a '.' boundary (or equal to it):
 * its tensor, with the root (the part before suffix) into root[0, rn). */
static const pm_tensor_ref *find_rooted(const pm_ckpt *ck, const char *suffix, char *root, size_t rn)
{
    const pm_tensor_ref *best = NULL;
    size_t sn = strlen(suffix), bl = 0;
    for (int i = 0; i < pm_ckpt_count(ck); i++) {
        const pm_tensor_ref *r = pm_ckpt_at(ck, i);
        size_t kn = strlen(r->name);
        if (kn >= sn && strcmp(r->name + kn - sn, suffix) == 0 && (kn == sn || r->name[kn - sn - 1] == '.') &&
            kn - sn < rn && (!best || kn - sn < bl)) {
            best = r;
            bl = kn - sn;
        }
    }
    if (best) {
        memcpy(root, best->name, bl);
        root[bl] = '\0';
    }
    return best;
}

/* Elements of the tensors under root. */
static uint64_t count_params(const pm_ckpt *ck, const char *root)
{
    uint64_t n = 0;
    size_t rl = strlen(root);
    for (int i = 0; i < pm_ckpt_count(ck); i++) {
        const pm_tensor_ref *r = pm_ckpt_at(ck, i);
        if (strncmp(r->name, root, rl) == 0)
            n += r->nbytes / pm_dtype_size(r->dtype);
    }
    return n;
}

/* Is ck a LaMa generator (FFC ResNet)? Fills the variant. */
static int is_lama(const pm_ckpt *ck, pm_found *f)
{
    char root[256], name[400];
    const pm_tensor_ref *r = find_rooted(ck, "model.1.ffc.convl2l.weight", root, sizeof root);
    if (!r || r->ndim != 4 || r->shape[1] != 4 || r->shape[2] != 7 || r->shape[3] != 7)
        return 0;
    snprintf(name, sizeof name, "%smodel.", root);
    int ngf = (int)r->shape[0], blocks = pm_ckpt_count_run(ck, name, 5, ".conv1.ffc.convl2l.weight");
    if (blocks == 0)
        return 0;
    if (ngf == 64 && blocks == 18)
        snprintf(f->variant, sizeof f->variant, "big-lama (ngf 64, 18 blocks)");
    else
        snprintf(f->variant, sizeof f->variant, "ngf %d, %d block%s", ngf, blocks, blocks == 1 ? "" : "s");
    f->model = "lama";
    f->params = count_params(ck, root);
    return 1;
}

/* Is ck a DDColor model (ConvNeXt encoder, colour decoder)? */
static int is_ddcolor(const pm_ckpt *ck, pm_found *f)
{
    char root[256], name[400];
    const pm_tensor_ref *r = find_rooted(ck, "encoder.arch.norm0.weight", root, sizeof root);
    if (!r || r->ndim != 1)
        return 0;
    snprintf(name, sizeof name, "%sdecoder.color_decoder.query_feat.weight", root);
    if (!pm_ckpt_find(ck, name))
        return 0;
    snprintf(name, sizeof name, "%sencoder.arch.stages.2.", root);
    int dim = (int)r->shape[0], depth = pm_ckpt_count_run(ck, name, 0, ".gamma");
    if (dim == 192 && depth == 27)
        snprintf(f->variant, sizeof f->variant, "large (ConvNeXt-L)");
    else if (dim == 96 && depth == 9)
        snprintf(f->variant, sizeof f->variant, "tiny (ConvNeXt-T)");
    else
        snprintf(f->variant, sizeof f->variant, "width %d, %d blocks in stage 3", dim, depth);
    f->model = "ddcolor";
    f->params = count_params(ck, root);
    return 1;
}

/* Recognises one file: 0 and *f (the caller's) filled when it holds a LaMa
 * generator or a DDColor model; PM_ENOENT when it is no model pixmend runs
 * (the error detail says why). Nothing is kept open. */
static int identify(const char *path, pm_found *f)
{
    memset(f, 0, sizeof *f);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return pm_errorf(PM_ENOENT, "%s is not a file", path);
    pm_ckpt *ck = NULL;
    int rc = pm_ckpt_open(path, NULL, &ck);
    if (rc)
        return rc;
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->format, sizeof f->format, "%s", pm_ckpt_format(ck));
    f->size = (uint64_t)st.st_size;
    f->mtime = (int64_t)st.st_mtime;
    int ok = is_lama(ck, f) || is_ddcolor(ck, f);
    if (!ok)
        rc = pm_errorf(PM_ENOENT, "%s (%s, %d tensors) is neither a LaMa generator nor a DDColor model",
                       pm_ckpt_what(ck), pm_ckpt_format(ck), pm_ckpt_count(ck));
    pm_ckpt_close(ck);
    return rc;
}

typedef struct scan {
    pm_found *f;
    int n, cap;
    int visits;
} scan;

static int add_file(scan *s, const char *path)
{
    if (pm_ckpt_sniff_file(path) == PM_CKPT_KIND_NONE) /* cheap: 16 bytes */
        return 0;
    pm_found f;
    if (identify(path, &f) != 0)
        return 0; /* not a model pixmend runs: not listed */
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        pm_found *nf = pm_realloc(s->f, (size_t)cap * sizeof *nf);
        if (!nf)
            return pm_errorf(PM_ENOMEM, "out of memory listing models");
        s->f = nf;
        s->cap = cap;
    }
    s->f[s->n++] = f;
    return 0;
}

static int walk(scan *s, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d)) && s->visits++ < MAX_VISITS) {
        char p[4096];
        struct stat st;
        if (e->d_name[0] == '.' || snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p ||
            lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH && strcmp(e->d_name, "blobs") != 0)
                rc = walk(s, p, depth + 1);
        } else if ((S_ISREG(st.st_mode) || (S_ISLNK(st.st_mode) && stat(p, &st) == 0 && S_ISREG(st.st_mode))) &&
                   st.st_size >= 64) {
            rc = add_file(s, p);
        }
    }
    closedir(d);
    return rc;
}

static int cmp_found(const void *a, const void *b)
{
    const pm_found *x = a, *y = b;
    int c = strcmp(x->model, y->model);
    if (c)
        return c;
    if (x->params != y->params)
        return x->params > y->params ? -1 : 1;
    return strcmp(x->path, y->path);
}

int pm_discover(const char *const *dirs, int ndirs, pm_found **out, int *n)
{
    scan s = {0};
    int rc = 0;
    for (int i = 0; i < ndirs && !rc; i++) {
        struct stat st;
        if (stat(dirs[i], &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(&s, dirs[i], 0);
        else if (S_ISREG(st.st_mode))
            rc = add_file(&s, dirs[i]);
    }
    if (rc) {
        pm_free(s.f);
        return rc;
    }
    if (s.n > 1)
        qsort(s.f, (size_t)s.n, sizeof *s.f, cmp_found);
    *out = s.f;
    *n = s.n;
    return 0;
}

int pm_discover_best(const pm_found *f, int n, const char *model)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (strcmp(f[i].model, model) != 0)
            continue;
        if (best < 0 || f[i].params > f[best].params ||
            (f[i].params == f[best].params && f[i].mtime > f[best].mtime))
            best = i;
    }
    return best;
}
