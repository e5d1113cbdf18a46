/* The built-in PatchMatch inpainter: parameters, voting, the coarse-to-fine
 * driver and the registry entry; see patchmatch.h for the outline. Layers and
 * the field are in patchmatch_field.c, the smooth fill, resampling and
 * texture features in patchmatch_fill.c.
 *
 * Memory: every buffer a level needs is allocated when the level starts (the
 * pyramid itself at the start of the run); the search, the vote and the
 * resampling loops allocate nothing.
 */
#include "models/patchmatch_internal.h"

#include "base/base.h"

#include <math.h>
#include <string.h>

/* Vote weights: exp(-d / (2 * d75)) * PM_GAMMA^-dist, where d75 is the 75th
 * percentile of the target distances and dist is the distance of the patch
 * centre inside the hole to the nearest known pixel (capped so the weights
 * stay well inside float range). The patch nearest the border dominates, so
 * each pixel takes little averaging: on the bench's photographs 1.3 / 2 / 3
 * / 4 give detail 0.73 / 0.80 / 0.85 / 0.83 at the same SSIM. */
#define PM_GAMMA 3.0f
#define PM_DIST_CAP 40.0f
#define PM_SIM_CAP 30.0f

/* Every vote at the finest level takes the dominant mode of the votes
 * instead of their average (see vote_band): votes within PM_MODE_TAU (RGB
 * distance) of the heaviest. With the mode in the last vote only, the
 * photographs' detail was 0.75; in every vote of level 0, 0.80; at all
 * levels also 0.80, with 0.07 dB less (PM_GAMMA 2). 0 shows jagged joins. */
#define PM_MODE_TAU 15

/* Smooth-fill sweeps at the smallest level and at each finer one. */
#define PM_SMOOTH_ITERS_COARSEST 60
#define PM_SMOOTH_ITERS 30
/* Sweeps of the seam correction's membrane (pm_pmatch_seam_correct). */
#define PM_SEAM_ITERS 20

/* Random search starts at the longer side of the level at the coarsest
 * PatchMatch level, and at 1/PM_INHERITED_SEARCH_DIV of it at finer levels,
 * whose field is inherited and already close (one candidate per target is
 * still drawn from all sources); at level 0, 1/PM_FINEST_SEARCH_DIV: 64
 * rather than 8 there costs 0.03 dB on the bench and saves 15 % of the
 * engine's CPU time at 2560x1920 (32 at all finer levels lost 0.09 dB). */
#define PM_INHERITED_SEARCH_DIV 8
#define PM_FINEST_SEARCH_DIV 64

/* A coarser level is only used when it keeps at least this many source
 * patches to copy from. */
#define PM_MIN_COARSE_SOURCES 16

/* The finest level runs 1/PM_FINEST_DIV of em_iters EM iterations (rounded
 * up): it inherits a field that is already close and is the most expensive,
 * while the cheap coarse levels, which settle the structure, run them all.
 * On the bench (em_iters 8), 4 (two iterations) gives the PSNR, SSIM and
 * detail of 3 within 0.01 dB, 0.001 and 0.01, and 3 those of 2. */
#define PM_FINEST_DIV 4

/* ------------------------------------------------------------------ params */

pm_patchmatch_params pm_patchmatch_default_params(void)
{
    pm_patchmatch_params p = {
        .patch_size = 7,
        .em_iters = 8,
        .pm_iters = 2,
        .min_size = 32,
        .seed = 0x5EEDull,
        .threads = 0,
    };
    return p;
}

static int check_params(const pm_patchmatch_params *p)
{
    if (p->patch_size < 3 || p->patch_size > 15 || p->patch_size % 2 == 0)
        return pm_errorf(PM_EINVAL, "patch size %d is not supported; use an odd size from 3 to 15 (default 7)",
                         p->patch_size);
    if (p->em_iters < 1 || p->em_iters > 100)
        return pm_errorf(PM_EINVAL, "em_iters %d is out of range; use 1 to 100 (default 8)", p->em_iters);
    if (p->pm_iters < 1 || p->pm_iters > 100)
        return pm_errorf(PM_EINVAL, "pm_iters %d is out of range; use 1 to 100 (default 2)", p->pm_iters);
    if (p->min_size < 1 || p->min_size > 1 << 20)
        return pm_errorf(PM_EINVAL, "min_size %d is out of range; use 1 or more (default 32)", p->min_size);
    return 0;
}

/* ------------------------------------------------------------------ voting */

struct vote_job {
    pm_pmatch_layer *L;
    const pm_nnf *f;
    const float *wq; /* per field entry: vote weight of that target patch */
    int hx0, hy0, hx1, hy1; /* the box that holds the hole, inclusive */
    int best;               /* 1: the dominant mode of the votes (vote_band) */
    int32_t *src_of;        /* best: per pixel, the source pixel copied (or NULL) */
};

/* Every hole pixel becomes the weighted mean of what the target patches that
 * cover it say it should be (R, G, B and the texture feature), or, with
 * j->best, the weighted mean of the votes within PM_MODE_TAU (RGB distance)
 * of the heaviest vote: the dominant mode, without the outliers that an
 * average over all of them would blur in, which keeps the source's fine
 * detail; src_of then records the source pixel of that heaviest vote. Reads
 * only known pixels (sources lie outside the hole), writes only hole pixels
 * of its own rows. */
static int vote_band(void *user, int band)
{
    struct vote_job *j = user;
    pm_pmatch_layer *L = j->L;
    const pm_nnf *f = j->f;
    int r = L->patch_size / 2, w = L->w, n;
    int y0 = j->hy0 + band * PM_BAND_ROWS;
    int y1 = y0 + PM_BAND_ROWS - 1 < j->hy1 ? y0 + PM_BAND_ROWS - 1 : j->hy1;
    const uint8_t *vs[15 * 15]; /* the votes for one pixel: source pixel, weight */
    float vw[15 * 15];
    for (int y = y0; y <= y1; y++) {
        for (int x = j->hx0; x <= j->hx1; x++) {
            size_t p = (size_t)y * w + x;
            if (!L->hole[p])
                continue;
            float acc[4] = {0, 0, 0, 0}, wsum = 0;
            int best = 0;
            n = 0;
            for (int dy = -r; dy <= r; dy++) {
                int qy = y - dy - f->y0;
                for (int dx = -r; dx <= r && qy >= 0 && qy < f->h; dx++) {
                    int qx = x - dx - f->x0;
                    size_t qi = (size_t)qy * f->w + qx;
                    if (qx < 0 || qx >= f->w || !f->is_target[qi])
                        continue;
                    const pm_nnf_entry *e = &f->e[qi];
                    vs[n] = L->px + ((size_t)(e->sy + dy) * w + (size_t)(e->sx + dx)) * 4;
                    vw[n] = j->wq[qi];
                    best = vw[n] > vw[best] ? n : best;
                    n++;
                }
            }
            const uint8_t *sb = n ? vs[best] : NULL;
            for (int k = 0; k < n; k++) {
                const uint8_t *s = vs[k];
                if (j->best && (s[0] - sb[0]) * (s[0] - sb[0]) + (s[1] - sb[1]) * (s[1] - sb[1]) +
                                       (s[2] - sb[2]) * (s[2] - sb[2]) > PM_MODE_TAU * PM_MODE_TAU)
                    continue;
                acc[0] += vw[k] * s[0], acc[1] += vw[k] * s[1], acc[2] += vw[k] * s[2], acc[3] += vw[k] * s[3];
                wsum += vw[k];
            }
            if (j->best && n && j->src_of)
                j->src_of[p] = (int32_t)((sb - L->px) / 4);
            for (int c = 0; c < 4 && wsum > 0; c++) {
                float v = acc[c] / wsum + 0.5f;
                L->px[4 * p + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    return 0;
}

/* k-th smallest of a[0..n) (the array is reordered). */
static int32_t select_kth(int32_t *a, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                int32_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return a[k];
}

/* Per-level scratch, allocated when the level starts. */
typedef struct pm_level_work {
    float *wq;     /* field-sized: vote weights */
    int32_t *sel;  /* n_targets: distances for the percentile */
} pm_level_work;

static void level_work_free(pm_level_work *W)
{
    pm_free(W->wq);
    pm_free(W->sel);
    memset(W, 0, sizeof *W);
}

/* Allocates the vote scratch for field f; the caller owns *W and releases it
 * with level_work_free. */
static int level_work_alloc(pm_level_work *W, const pm_nnf *f)
{
    memset(W, 0, sizeof *W);
    size_t n = (size_t)f->w * f->h;
    W->wq = pm_calloc(n ? n : 1, sizeof *W->wq);
    W->sel = pm_calloc(f->n_targets ? (size_t)f->n_targets : 1, sizeof *W->sel);
    if (!W->wq || !W->sel) {
        level_work_free(W);
        return pm_errorf(PM_ENOMEM, "out of memory for the PatchMatch vote weights");
    }
    return 0;
}

static void vote(pm_pmatch_layer *L, const pm_nnf *f, pm_level_work *W, int best, int32_t *src_of, int threads)
{
    if (!f->n_targets)
        return;
    size_t n = (size_t)f->w * f->h;
    int m = 0;
    for (size_t i = 0; i < n; i++)
        if (f->is_target[i])
            W->sel[m++] = f->e[i].d;
    float d75 = (float)select_kth(W->sel, m, (int)((int64_t)m * 3 / 4));
    if (d75 < 1.0f)
        d75 = 1.0f;
    const float lg = logf(PM_GAMMA);
    for (size_t i = 0; i < n; i++) {
        if (!f->is_target[i])
            continue;
        float a = (float)f->e[i].d / (2.0f * d75);
        if (a > PM_SIM_CAP)
            a = PM_SIM_CAP;
        float dist = L->hole_dist[(i / f->w + f->y0) * L->w + (i % f->w + f->x0)];
        if (dist > PM_DIST_CAP)
            dist = PM_DIST_CAP;
        W->wq[i] = expf(-a - lg * dist);
    }
    /* Every hole pixel lies in a target's window, and targets lie inside. */
    int r = L->patch_size / 2;
    struct vote_job j = {.L = L, .f = f, .wq = W->wq, .hx0 = f->x0 - r, .hy0 = f->y0 - r,
                         .hx1 = f->x0 + f->w - 1 + r, .hy1 = f->y0 + f->h - 1 + r, .best = best, .src_of = src_of};
    pm_parallel_for(pm_pmatch_n_bands(j.hy1 - j.hy0 + 1), threads, vote_band, &j);
}

/* ----------------------------------------------------------------- driver */

#define PM_MAX_LEVELS 24

/* EM iterations at a level (see PM_FINEST_DIV). */
static int em_iters_at(const pm_patchmatch_params *p, int level)
{
    return level == 0 ? (p->em_iters + PM_FINEST_DIV - 1) / PM_FINEST_DIV : p->em_iters;
}

/* The pyramid below level 0 (lv[0] analysed; *nlev is 1 on entry). Levels
 * 0..*npm-1 run PatchMatch: a coarser one is added while the hole at the
 * current level is still thicker than a patch radius, the coarser level keeps
 * its shorter side >= min_size and keeps enough sources. Levels beyond (down
 * to a few pixels, while anything is known) serve only the multigrid smooth
 * fill that starts the search. The layers belong to the caller, also on
 * failure (PM_ENOMEM). */
static int build_pyramid(pm_pmatch_layer *lv, int *nlev, int *npm, const pm_patchmatch_params *p)
{
    int ps = p->patch_size, rc = 0, pm_open = 1;
    while (*nlev < PM_MAX_LEVELS) {
        pm_pmatch_layer *F = &lv[*nlev - 1];
        int cw = (F->w + 1) / 2, ch = (F->h + 1) / 2;
        if (cw < 2 || ch < 2 || F->w * F->h <= 64)
            break;
        pm_pmatch_layer *C = &lv[*nlev];
        if ((rc = pm_pmatch_layer_alloc(C, cw, ch, ps)) != 0)
            return rc;
        pm_pmatch_downsample(F, C);
        pm_pmatch_layer_analyse(C);
        size_t known = 0;
        float thick = 0; /* the largest distance inside F's hole to a known pixel */
        for (size_t i = 0; i < (size_t)cw * ch; i++)
            known += !C->hole[i];
        for (size_t i = 0; i < (size_t)F->w * F->h; i++)
            thick = F->hole_dist[i] > thick ? F->hole_dist[i] : thick;
        if (known == 0) {
            pm_pmatch_layer_free(C);
            break;
        }
        if (pm_open && (cw < ch ? cw : ch) >= p->min_size && cw >= ps && ch >= ps &&
            thick > (float)(ps / 2) && C->n_src >= PM_MIN_COARSE_SOURCES)
            (*npm)++;
        else
            pm_open = 0;
        (*nlev)++;
    }
    return 0;
}

/* Smooth fill of the levels from the smallest up to the coarsest PatchMatch
 * level npm - 1 (a multigrid cascade), which starts from it. */
static int smooth_start(pm_pmatch_layer *lv, int nlev, int npm, int threads)
{
    pm_fill_work fw;
    memset(&fw, 0, sizeof fw);
    int rc = pm_pmatch_fill_work_alloc(&fw, (size_t)lv[npm - 1].w * lv[npm - 1].h);
    if (rc)
        return rc;
    for (int l = nlev - 1; l >= npm - 1; l--) {
        int coarsest = l == nlev - 1;
        pm_pmatch_fill_smooth(&lv[l], coarsest ? NULL : &lv[l + 1], &fw,
                          coarsest ? PM_SMOOTH_ITERS_COARSEST : PM_SMOOTH_ITERS, threads);
    }
    pm_pmatch_fill_work_free(&fw);
    return 0;
}

/* The coarse-to-fine EM: at every PatchMatch level, search and vote; the
 * coarsest level starts from its smooth fill and a random field, a finer one
 * from the coarser field scaled up and its vote. Level 0's votes take the
 * dominant mode; the last records the sources in src_of. Returns 0,
 * PM_ENOMEM or PM_ECANCELLED; everything it allocates is freed. */
static int em_levels(pm_pmatch_layer *lv, int npm, const pm_patchmatch_params *p, int threads, int32_t *src_of,
                     const pm_run_ctx *ctx, int total, const pm_pmatch_line *lines, int nlines)
{
    pm_nnf fine, coarse;
    pm_level_work work;
    int rc = 0, done = 0;
    memset(&fine, 0, sizeof fine);
    memset(&coarse, 0, sizeof coarse);
    memset(&work, 0, sizeof work);
    for (int l = npm - 1; l >= 0; l--) {
        pm_pmatch_layer *L = &lv[l];
        uint64_t lseed = pm_seed2(p->seed, (uint64_t)l);
        if ((rc = pm_nnf_alloc(&fine, L)) != 0)
            goto free_fields;
        if ((rc = level_work_alloc(&work, &fine)) != 0)
            goto free_fields;
        if (l == npm - 1) {
            pm_nnf_init_random(&fine, L, pm_seed2(lseed, 0xA11), threads);
        } else {
            pm_pmatch_upsample_pixels(L, &lv[l + 1]);
            pm_nnf_upsample(&fine, L, &coarse, &lv[l + 1], pm_seed2(lseed, 0xB22), threads);
            pm_nnf_free(&coarse);
            /* The starting estimate: the inherited field's vote at this
             * level's resolution, which copies the sources' own detail (the
             * bilinear upsampling above only seeds the distances). */
            vote(L, &fine, &work, l == 0, NULL, threads);
        }
        /* ... with the straight edges that cross the hole painted in. */
        for (int k = 0; k < nlines; k++)
            pm_pmatch_paint_line(L, &lines[k], l);
        pm_nnf_refresh(&fine, L, threads);
        int iters = em_iters_at(p, l);
        int maxside = L->w > L->h ? L->w : L->h;
        int div = l == npm - 1 ? 1 : l ? PM_INHERITED_SEARCH_DIV : PM_FINEST_SEARCH_DIV;
        for (int it = 0; it < iters; it++) {
            uint64_t iseed = pm_seed2(lseed, (uint64_t)it + 1);
            for (int k = 0; k < p->pm_iters; k++)
                pm_nnf_pass_radius(&fine, L, k, pm_seed2(iseed, (uint64_t)k), threads, maxside / div);
            vote(L, &fine, &work, l == 0, l == 0 ? src_of : NULL, threads);
            if (it + 1 < iters)
                pm_nnf_refresh(&fine, L, threads);
            done++;
            if (ctx && ctx->progress && ctx->progress(ctx->progress_user, done, total)) {
                rc = pm_errorf(PM_ECANCELLED, "inpainting was cancelled at step %d of %d", done, total);
                goto free_fields;
            }
        }
        level_work_free(&work);
        coarse = fine;
        memset(&fine, 0, sizeof fine);
    }
free_fields:
    level_work_free(&work);
    pm_nnf_free(&fine);
    pm_nnf_free(&coarse);
    return rc;
}

int pm_patchmatch_inpaint(const pm_image *rgb, const pm_image *mask, const pm_patchmatch_params *p,
                          pm_image *out, const pm_run_ctx *ctx)
{
    pm_patchmatch_params defaults = pm_patchmatch_default_params();
    pm_pmatch_layer lv[PM_MAX_LEVELS];
    int nlev = 0, rc = 0;
    int32_t *src_of = NULL; /* level 0: the source pixel each hole pixel copied */

    memset(lv, 0, sizeof lv);
    if (!out)
        return pm_errorf(PM_EINVAL, "no output image given to the PatchMatch inpainter");
    memset(out, 0, sizeof *out);
    if (!p)
        p = &defaults;
    if (!rgb || !rgb->data || rgb->width <= 0 || rgb->height <= 0)
        return pm_errorf(PM_EINVAL, "no image given to the PatchMatch inpainter");
    if (rgb->channels != 3)
        return pm_errorf(PM_EINVAL, "the PatchMatch inpainter takes an RGB image, not %d channels; convert it first",
                         rgb->channels);
    if (!mask || !mask->data)
        return pm_errorf(PM_EINVAL, "no mask given to the PatchMatch inpainter");
    if (mask->channels != 1)
        return pm_errorf(PM_EINVAL, "the mask must have 1 channel, not %d", mask->channels);
    if (mask->width != rgb->width || mask->height != rgb->height)
        return pm_errorf(PM_EMISMATCH, "the mask is %dx%d but the image is %dx%d; give a mask of the image's size",
                         mask->width, mask->height, rgb->width, rgb->height);
    if ((rc = check_params(p)) != 0)
        return rc;
    int threads = p->threads > 0 ? p->threads : pm_cpu_count();
    int w = rgb->width, h = rgb->height, ps = p->patch_size;
    size_t npx = (size_t)w * h;

    /* Level 0: the image, with the hole's content forgotten. */
    size_t nhole = 0;
    if ((rc = pm_pmatch_layer_from_image(&lv[0], rgb, mask, ps)) != 0)
        return rc;
    nlev = 1;
    for (size_t i = 0; i < npx; i++)
        nhole += lv[0].hole[i];
    if (nhole == 0)
        goto compose;
    if (w < ps || h < ps) {
        rc = pm_errorf(PM_ENOSOURCE,
                       "the image is %dx%d, smaller than one %dx%d patch, so there is nothing to copy from; "
                       "use a larger image or a smaller patch size",
                       w, h, ps, ps);
        goto free_levels;
    }
    if (lv[0].n_src == 0) {
        rc = pm_errorf(PM_ENOSOURCE,
                       "the mask covers %.1f%% of the %dx%d image and leaves no %dx%d area untouched, so there "
                       "is nothing to copy from; shrink the mask or use a learned model (lama)",
                       100.0 * (double)nhole / (double)npx, w, h, ps, ps);
        goto free_levels;
    }

    pm_pmatch_line lines[PM_MAX_LINES];
    int nlines = pm_pmatch_find_lines(&lv[0], lines, PM_MAX_LINES);
    int npm = 1;
    if ((rc = build_pyramid(lv, &nlev, &npm, p)) != 0)
        goto free_levels;
    int total = 0;
    for (int l = 0; l < npm; l++)
        total += em_iters_at(p, l);
    if (ctx && ctx->progress && ctx->progress(ctx->progress_user, 0, total)) {
        rc = pm_errorf(PM_ECANCELLED, "inpainting was cancelled before it started");
        goto free_levels;
    }
    if ((rc = smooth_start(lv, nlev, npm, threads)) != 0)
        goto free_levels;
    src_of = pm_malloc(npx * sizeof *src_of);
    if (!src_of) {
        rc = pm_errorf(PM_ENOMEM, "out of memory for the PatchMatch source map of a %dx%d image", w, h);
        goto free_levels;
    }
    for (size_t i = 0; i < npx; i++)
        src_of[i] = -1;
    if ((rc = em_levels(lv, npm, p, threads, src_of, ctx, total, lines, nlines)) != 0)
        goto free_levels;
    {
        pm_fill_work fw;
        memset(&fw, 0, sizeof fw);
        if ((rc = pm_pmatch_fill_work_alloc(&fw, npx)) != 0)
            goto free_levels;
        pm_pmatch_seam_correct(&lv[0], src_of, &fw, PM_SEAM_ITERS, threads);
        pm_pmatch_fill_work_free(&fw);
    }

compose:
    if ((rc = pm_image_alloc(out, w, h, 3)) != 0)
        goto free_levels;
    memcpy(out->data, rgb->data, npx * 3);
    for (size_t i = 0; i < npx; i++) {
        if (!lv[0].hole[i])
            continue;
        for (int c = 0; c < 3; c++)
            out->data[3 * i + c] = lv[0].px[4 * i + c];
    }

free_levels:
    pm_free(src_of);
    for (int l = 0; l < nlev; l++)
        pm_pmatch_layer_free(&lv[l]);
    return rc;
}

/* --------------------------------------------------------------- registry */

/* Needs no file; the state, the parameters, is owned by the caller
 * (pm_model_patchmatch.unload). */
static int pm_pmatch_load(const char *path, const pm_model_opts *opts, void **state)
{
    (void)path;
    pm_patchmatch_params *s = pm_malloc(sizeof *s);
    if (!s)
        return pm_errorf(PM_ENOMEM, "out of memory loading the PatchMatch inpainter");
    *s = pm_patchmatch_default_params();
    s->threads = opts ? opts->threads : s->threads;
    s->seed = opts ? opts->seed : s->seed;
    *state = s;
    return 0;
}

static void pm_pmatch_unload(void *state)
{
    pm_free(state);
}

static int pm_pmatch_run(void *state, const pm_image *rgb, const pm_image *mask, pm_image *out,
                     const pm_run_ctx *ctx)
{
    return pm_patchmatch_inpaint(rgb, mask, state, out, ctx);
}

/* Peak bytes for a w x h image, with every level's buffers, the source map,
 * two fields and the vote scratch (or, before and after them, the smooth
 * fill's and seam correction's scratch) and the output; all per pixel of the
 * full image (worst case: the hole spans the whole image). input_size is for
 * colorization networks and ignored here. */
static uint64_t pm_pmatch_mem_estimate(const void *state, int w, int h, int input_size)
{
    (void)input_size;
    (void)state;
    uint64_t n = (uint64_t)(w > 0 ? w : 0) * (uint64_t)(h > 0 ? h : 0);
    uint64_t layer = 4 + 1 + 1 + 4 + 4;               /* px, hole, src_ok, src_list, hole_dist */
    uint64_t pyramid = layer * n * 4 / 3 + 1;         /* geometric series of levels */
    uint64_t src_map = 4 * n;                         /* level 0: the source pixel each hole pixel copied */
    uint64_t field = (1 + 2 * sizeof(pm_nnf_entry)) * n; /* is_target, e, snap */
    uint64_t fields = field + field / 4;              /* this level's and the coarser one */
    uint64_t vote = 8 * n;                            /* weights and percentile scratch */
    uint64_t fill = PM_FILL_WORK_BYTES_PER_PX * n;    /* smooth fill / seam correction scratch */
    uint64_t out = 3 * n;
    /* The job around the engine: the decoded image (3) and mask (1), and the
     * encoded result (up to about its raw size, 3); see docs/benchmarks.md
     * (memory laws) for the measured peaks this stays above. */
    uint64_t job = 7 * n;
    uint64_t a = fields + vote, b = fill;
    return pyramid + src_map + (a > b ? a : b) + out + job + (1u << 20);
}

const pm_model_desc pm_model_patchmatch = {
    .name = "patchmatch",
    .task = PM_TASK_INPAINT,
    .needs_file = 0,
    .load = pm_pmatch_load,
    .unload = pm_pmatch_unload,
    .inpaint = pm_pmatch_run,
    .colorize = NULL,
    .mem_estimate = pm_pmatch_mem_estimate,
};