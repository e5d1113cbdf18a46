/* The built-in PatchMatch inpainter; see patchmatch.h for the outline.
 *
 * Memory: every buffer a level needs is allocated when the level starts (the
 * pyramid itself at the start of the run); the search, the vote and the
 * resampling loops allocate nothing.
 */
#include "models/patchmatch.h"

#include "base/base.h"

#include <math.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Rows per band: the unit of parallel work and of random streams. Fixed, so
 * that the result does not depend on how many threads run the bands. */
#define PM_BAND_ROWS 16

/* Vote weights: exp(-d / (2 * d75)) * PM_GAMMA^-dist, where d75 is the 75th
 * percentile of the target distances and dist is the distance of the patch
 * centre inside the hole to the nearest known pixel (capped so the weights
 * stay well inside float range). */
#define PM_GAMMA 1.3f
#define PM_DIST_CAP 40.0f
#define PM_SIM_CAP 30.0f

/* The smooth (membrane) fill: successive over-relaxation sweeps after the
 * onion peel of the coarsest level, and after upsampling at every finer one. */
#define PM_SMOOTH_ITERS_COARSEST 60
#define PM_SMOOTH_ITERS 30
#define PM_SOR_OMEGA 1.8f

/* Where a finer level starts from: near the hole's border the smooth fill,
 * deep inside the upsampled result of the coarser level, blended linearly
 * between PM_BLEND_NEAR and PM_BLEND_FAR pixels from the border. The smooth
 * fill is the better guess where the border pins the colours down (it is what
 * minimises the error there); the coarse level carries structure and texture
 * into the parts of a large hole that the border says little about. */
#define PM_BLEND_NEAR 4.0f
#define PM_BLEND_FAR 16.0f

/* Random search starts at the longer side of the level at the coarsest
 * PatchMatch level, and at 1/PM_INHERITED_SEARCH_DIV of it at finer levels,
 * whose field is inherited and already close (one candidate per target is
 * still drawn from all sources). Measured on the bench: 8 costs 0.01 dB of
 * mean hole PSNR and saves about a fifth of the time. */
#define PM_INHERITED_SEARCH_DIV 8

/* A coarser level is only used when it keeps at least this many source
 * patches to copy from. */
#define PM_MIN_COARSE_SOURCES 16

/* ------------------------------------------------------------ random numbers */

static uint64_t pm_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A seed derived from a parent seed and one more number. */
static uint64_t pm_seed2(uint64_t seed, uint64_t k)
{
    return pm_mix64(seed ^ pm_mix64(k + 0x632BE59BD9B4E019ull));
}

typedef struct pm_rng {
    uint64_t s;
} pm_rng;

static inline uint64_t pm_rng_next(pm_rng *g)
{
    g->s += 0x9E3779B97F4A7C15ull;
    uint64_t z = g->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n >= 1. */
static inline uint32_t pm_rng_below(pm_rng *g, uint32_t n)
{
    return (uint32_t)(((pm_rng_next(g) >> 32) * (uint64_t)n) >> 32);
}

/* ------------------------------------------------------------------ params */

pm_patchmatch_params pm_patchmatch_default_params(void)
{
    pm_patchmatch_params p = {
        .patch_size = 7,
        .em_iters = 4,
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
        return pm_errorf(PM_EINVAL, "em_iters %d is out of range; use 1 to 100 (default 4)", p->em_iters);
    if (p->pm_iters < 1 || p->pm_iters > 100)
        return pm_errorf(PM_EINVAL, "pm_iters %d is out of range; use 1 to 100 (default 2)", p->pm_iters);
    if (p->min_size < 1 || p->min_size > 1 << 20)
        return pm_errorf(PM_EINVAL, "min_size %d is out of range; use 1 or more (default 32)", p->min_size);
    return 0;
}

/* ------------------------------------------------------------------ layers */

int pm_pm_layer_alloc(pm_pm_layer *L, int w, int h, int patch_size)
{
    memset(L, 0, sizeof *L);
    if (w <= 0 || h <= 0 || (int64_t)w * h > INT32_MAX / 4)
        return pm_errorf(PM_EINVAL, "a %dx%d working image is not possible", w, h);
    size_t n = (size_t)w * (size_t)h;
    L->w = w;
    L->h = h;
    L->patch_size = patch_size;
    L->px = pm_calloc(n, 4);
    L->base = pm_calloc(n, 4);
    L->hole = pm_calloc(n, 1);
    L->src_ok = pm_calloc(n, 1);
    L->src_list = pm_calloc(n, sizeof *L->src_list);
    L->hole_dist = pm_calloc(n, sizeof *L->hole_dist);
    if (!L->px || !L->base || !L->hole || !L->src_ok || !L->src_list || !L->hole_dist) {
        pm_pm_layer_free(L);
        return pm_errorf(PM_ENOMEM, "out of memory for a %dx%d PatchMatch level", w, h);
    }
    return 0;
}

void pm_pm_layer_free(pm_pm_layer *L)
{
    pm_free(L->px);
    pm_free(L->base);
    pm_free(L->hole);
    pm_free(L->src_ok);
    pm_free(L->src_list);
    pm_free(L->hole_dist);
    memset(L, 0, sizeof *L);
}

/* For every pixel, whether the patch window centred there contains a hole
 * pixel: a sliding count along rows into `out`, then along columns in place
 * with a small ring of the row results. */
static void window_any_hole(const pm_pm_layer *L, uint8_t *out)
{
    int w = L->w, h = L->h, r = L->patch_size / 2, ps = L->patch_size;
    for (int y = 0; y < h; y++) {
        const uint8_t *hr = L->hole + (size_t)y * w;
        uint8_t *o = out + (size_t)y * w;
        int cnt = 0;
        for (int x = 0; x < w + r; x++) {
            if (x < w)
                cnt += hr[x];
            if (x - ps >= 0)
                cnt -= hr[x - ps];
            int xc = x - r;
            if (xc >= 0)
                o[xc] = cnt > 0;
        }
    }
    uint8_t ring[16];
    for (int x = 0; x < w; x++) {
        int cnt = 0;
        memset(ring, 0, sizeof ring);
        for (int y = 0; y < h + r; y++) {
            uint8_t in = y < h ? out[(size_t)y * w + x] : 0;
            cnt += in - ring[y % ps];
            ring[y % ps] = in;
            int yc = y - r;
            if (yc >= 0)
                out[(size_t)yc * w + x] = cnt > 0;
        }
    }
}

void pm_pm_layer_analyse(pm_pm_layer *L)
{
    int w = L->w, h = L->h, r = L->patch_size / 2;
    window_any_hole(L, L->src_ok);
    L->n_src = 0;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            int inside = x >= r && x < w - r && y >= r && y < h - r;
            L->src_ok[i] = inside && !L->src_ok[i];
            if (L->src_ok[i])
                L->src_list[L->n_src++] = (int32_t)i;
        }
    }
    /* Two-pass chamfer distance (1, sqrt 2) from the known pixels. */
    const float big = 1e9f, d1 = 1.0f, d2 = 1.41421356f;
    float *D = L->hole_dist;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (!L->hole[i]) {
                D[i] = 0.0f;
                continue;
            }
            float d = big;
            if (x > 0 && D[i - 1] + d1 < d)
                d = D[i - 1] + d1;
            if (y > 0) {
                const float *up = D + i - w;
                if (up[0] + d1 < d)
                    d = up[0] + d1;
                if (x > 0 && up[-1] + d2 < d)
                    d = up[-1] + d2;
                if (x + 1 < w && up[1] + d2 < d)
                    d = up[1] + d2;
            }
            D[i] = d;
        }
    }
    for (int y = h - 1; y >= 0; y--) {
        for (int x = w - 1; x >= 0; x--) {
            size_t i = (size_t)y * w + x;
            if (!L->hole[i])
                continue;
            float d = D[i];
            if (x + 1 < w && D[i + 1] + d1 < d)
                d = D[i + 1] + d1;
            if (y + 1 < h) {
                const float *dn = D + i + w;
                if (dn[0] + d1 < d)
                    d = dn[0] + d1;
                if (x + 1 < w && dn[1] + d2 < d)
                    d = dn[1] + d2;
                if (x > 0 && dn[-1] + d2 < d)
                    d = dn[-1] + d2;
            }
            D[i] = d;
        }
    }
}

int pm_pm_layer_from_image(pm_pm_layer *L, const pm_image *rgb, const pm_image *mask, int patch_size)
{
    int rc = pm_pm_layer_alloc(L, rgb->width, rgb->height, patch_size);
    if (rc)
        return rc;
    size_t n = (size_t)rgb->width * rgb->height;
    for (size_t i = 0; i < n; i++) {
        L->px[4 * i + 0] = rgb->data[3 * i + 0];
        L->px[4 * i + 1] = rgb->data[3 * i + 1];
        L->px[4 * i + 2] = rgb->data[3 * i + 2];
        L->px[4 * i + 3] = 0;
        L->hole[i] = mask->data[i] != 0;
    }
    pm_pm_layer_analyse(L);
    return 0;
}

/* Half-size level: a pixel is a hole when any pixel of its 2x2 block is; a
 * known pixel is the rounded mean of its (known) block. Hole pixels get the
 * mean of the block's known pixels, or 0; they are re-estimated anyway. */
static void downsample(const pm_pm_layer *F, pm_pm_layer *C)
{
    for (int y = 0; y < C->h; y++) {
        for (int x = 0; x < C->w; x++) {
            unsigned sum[3] = {0, 0, 0}, cnt = 0, holes = 0;
            for (int dy = 0; dy < 2; dy++) {
                int fy = 2 * y + dy;
                if (fy >= F->h)
                    continue;
                for (int dx = 0; dx < 2; dx++) {
                    int fx = 2 * x + dx;
                    if (fx >= F->w)
                        continue;
                    size_t fi = (size_t)fy * F->w + fx;
                    if (F->hole[fi]) {
                        holes++;
                        continue;
                    }
                    for (int c = 0; c < 3; c++)
                        sum[c] += F->px[4 * fi + c];
                    cnt++;
                }
            }
            size_t ci = (size_t)y * C->w + x;
            C->hole[ci] = holes > 0;
            for (int c = 0; c < 3; c++)
                C->px[4 * ci + c] = cnt ? (uint8_t)((sum[c] + cnt / 2) / cnt) : 0;
            C->px[4 * ci + 3] = 0;
        }
    }
}

/* ---------------------------------------------------------- patch distance */

#if defined(__SSE2__)
static inline __m128i ssd8(__m128i a, __m128i b, __m128i acc)
{
    const __m128i z = _mm_setzero_si128();
    __m128i d = _mm_sub_epi16(_mm_unpacklo_epi8(a, z), _mm_unpacklo_epi8(b, z));
    return _mm_add_epi32(acc, _mm_madd_epi16(d, d));
}

static inline int32_t hsum32(__m128i v)
{
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(v);
}

/* SSD of `rows` rows of `nb` bytes (nb a multiple of 4), stopping once the
 * sum reaches `limit`. Reads exactly nb bytes per row. */
static inline __attribute__((always_inline)) int32_t ssd_rows(const uint8_t *t, const uint8_t *s,
                                                             size_t stride, int rows, int nb,
                                                             int32_t limit)
{
    const __m128i z = _mm_setzero_si128();
    int32_t sum = 0;
    for (int row = 0; row < rows; row++) {
        __m128i acc = _mm_setzero_si128();
        int i = 0;
        for (; i + 16 <= nb; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(t + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(s + i));
            acc = ssd8(a, b, acc);
            __m128i dh = _mm_sub_epi16(_mm_unpackhi_epi8(a, z), _mm_unpackhi_epi8(b, z));
            acc = _mm_add_epi32(acc, _mm_madd_epi16(dh, dh));
        }
        if (i + 8 <= nb) {
            acc = ssd8(_mm_loadl_epi64((const __m128i *)(t + i)), _mm_loadl_epi64((const __m128i *)(s + i)),
                       acc);
            i += 8;
        }
        if (i + 4 <= nb) {
            int32_t ta, sb;
            memcpy(&ta, t + i, 4);
            memcpy(&sb, s + i, 4);
            acc = ssd8(_mm_cvtsi32_si128(ta), _mm_cvtsi32_si128(sb), acc);
        }
        sum += hsum32(acc);
        if (sum >= limit)
            return sum;
        t += stride;
        s += stride;
    }
    return sum;
}
#else
static inline int32_t ssd_rows(const uint8_t *t, const uint8_t *s, size_t stride, int rows, int nb,
                               int32_t limit)
{
    int32_t sum = 0;
    for (int row = 0; row < rows; row++) {
        for (int i = 0; i < nb; i++) {
            int d = (int)t[i] - (int)s[i];
            sum += d * d;
        }
        if (sum >= limit)
            return sum;
        t += stride;
        s += stride;
    }
    return sum;
}
#endif

static inline __attribute__((always_inline)) int32_t patch_ssd(const pm_pm_layer *L, int tx, int ty, int sx,
                                                              int sy, int32_t limit)
{
    int r = L->patch_size / 2;
    size_t stride = (size_t)L->w * 4;
    const uint8_t *t = L->px + (size_t)(ty - r) * stride + (size_t)(tx - r) * 4;
    const uint8_t *s = L->px + (size_t)(sy - r) * stride + (size_t)(sx - r) * 4;
    switch (L->patch_size) {
    case 5: return ssd_rows(t, s, stride, 5, 20, limit);
    case 7: return ssd_rows(t, s, stride, 7, 28, limit);
    case 9: return ssd_rows(t, s, stride, 9, 36, limit);
    default: return ssd_rows(t, s, stride, L->patch_size, L->patch_size * 4, limit);
    }
}

int32_t pm_patch_distance(const pm_pm_layer *L, int tx, int ty, int sx, int sy, int32_t limit)
{
    return patch_ssd(L, tx, ty, sx, sy, limit);
}

/* ------------------------------------------------------------------- field */

int pm_nnf_alloc(pm_nnf *f, const pm_pm_layer *L)
{
    memset(f, 0, sizeof *f);
    int w = L->w, h = L->h, r = L->patch_size / 2;
    int x0 = w, y0 = h, x1 = -1, y1 = -1;
    /* A target lies inside the layer and is not a valid source, i.e. its
     * window holds a hole pixel. */
    for (int y = r; y < h - r; y++) {
        for (int x = r; x < w - r; x++) {
            if (L->src_ok[(size_t)y * w + x])
                continue;
            if (x < x0)
                x0 = x;
            if (x > x1)
                x1 = x;
            if (y < y0)
                y0 = y;
            if (y > y1)
                y1 = y;
        }
    }
    if (x1 < 0) {
        f->x0 = f->y0 = 0;
        return 0;
    }
    f->x0 = x0;
    f->y0 = y0;
    f->w = x1 - x0 + 1;
    f->h = y1 - y0 + 1;
    size_t n = (size_t)f->w * f->h;
    f->is_target = pm_calloc(n, 1);
    f->e = pm_calloc(n, sizeof *f->e);
    f->snap = pm_calloc(n, sizeof *f->snap);
    if (!f->is_target || !f->e || !f->snap) {
        pm_nnf_free(f);
        return pm_errorf(PM_ENOMEM, "out of memory for a %dx%d nearest-neighbour field", f->w, f->h);
    }
    for (int y = 0; y < f->h; y++) {
        for (int x = 0; x < f->w; x++) {
            int lx = x + x0, ly = y + y0;
            int t = !L->src_ok[(size_t)ly * w + lx];
            f->is_target[(size_t)y * f->w + x] = (uint8_t)t;
            f->n_targets += t;
        }
    }
    return 0;
}

void pm_nnf_free(pm_nnf *f)
{
    pm_free(f->is_target);
    pm_free(f->e);
    pm_free(f->snap);
    memset(f, 0, sizeof *f);
}

static int n_bands(int h)
{
    return (h + PM_BAND_ROWS - 1) / PM_BAND_ROWS;
}

struct band_job {
    pm_nnf *f;
    const pm_pm_layer *L;
    const pm_pm_layer *C; /* coarse layer (upsampling) */
    const pm_nnf *fc;     /* coarse field (upsampling) */
    int pass;
    int max_radius; /* random search starts at this radius */
    uint64_t seed;
};

static int init_band(void *user, int band)
{
    struct band_job *j = user;
    pm_nnf *f = j->f;
    const pm_pm_layer *L = j->L;
    pm_rng g = {pm_seed2(j->seed, (uint64_t)band)};
    int y1 = (band + 1) * PM_BAND_ROWS < f->h ? (band + 1) * PM_BAND_ROWS : f->h;
    for (int y = band * PM_BAND_ROWS; y < y1; y++) {
        for (int x = 0; x < f->w; x++) {
            size_t i = (size_t)y * f->w + x;
            if (!f->is_target[i])
                continue;
            int32_t s = L->src_list[pm_rng_below(&g, (uint32_t)L->n_src)];
            pm_nnf_entry *e = &f->e[i];
            e->sx = s % L->w;
            e->sy = s / L->w;
            e->d = pm_patch_distance(L, x + f->x0, y + f->y0, e->sx, e->sy, INT32_MAX);
        }
    }
    return 0;
}

void pm_nnf_init_random(pm_nnf *f, const pm_pm_layer *L, uint64_t seed, int threads)
{
    if (!f->n_targets || L->n_src <= 0)
        return;
    struct band_job j = {.f = f, .L = L, .seed = seed};
    pm_parallel_for(n_bands(f->h), threads, init_band, &j);
}

static int refresh_band(void *user, int band)
{
    struct band_job *j = user;
    pm_nnf *f = j->f;
    int y1 = (band + 1) * PM_BAND_ROWS < f->h ? (band + 1) * PM_BAND_ROWS : f->h;
    for (int y = band * PM_BAND_ROWS; y < y1; y++) {
        for (int x = 0; x < f->w; x++) {
            size_t i = (size_t)y * f->w + x;
            if (f->is_target[i])
                f->e[i].d = pm_patch_distance(j->L, x + f->x0, y + f->y0, f->e[i].sx, f->e[i].sy, INT32_MAX);
        }
    }
    return 0;
}

void pm_nnf_refresh(pm_nnf *f, const pm_pm_layer *L, int threads)
{
    if (!f->n_targets)
        return;
    struct band_job j = {.f = f, .L = L};
    pm_parallel_for(n_bands(f->h), threads, refresh_band, &j);
}

/* Tries source (sx, sy) for target (tx, ty); keeps it when strictly better. */
static inline void try_source(const pm_pm_layer *L, int tx, int ty, int sx, int sy, pm_nnf_entry *best)
{
    if (sx == best->sx && sy == best->sy)
        return;
    if (!L->src_ok[(size_t)sy * L->w + sx])
        return;
    int32_t d = patch_ssd(L, tx, ty, sx, sy, best->d);
    if (d < best->d) {
        best->sx = sx;
        best->sy = sy;
        best->d = d;
    }
}

static int pass_band(void *user, int band)
{
    struct band_job *j = user;
    pm_nnf *f = j->f;
    const pm_pm_layer *L = j->L;
    int r = L->patch_size / 2;
    int lo_x = r, hi_x = L->w - 1 - r, lo_y = r, hi_y = L->h - 1 - r;
    int fw = f->w;
    int by0 = band * PM_BAND_ROWS;
    int by1 = by0 + PM_BAND_ROWS < f->h ? by0 + PM_BAND_ROWS : f->h;
    int fwd = (j->pass & 1) == 0;
    int step = fwd ? 1 : -1;
    int maxr = j->max_radius;
    pm_rng g = {pm_seed2(j->seed, (uint64_t)band)};

    for (int k = 0; k < by1 - by0; k++) {
        int y = fwd ? by0 + k : by1 - 1 - k;
        for (int m = 0; m < fw; m++) {
            int x = fwd ? m : fw - 1 - m;
            size_t i = (size_t)y * fw + x;
            if (!f->is_target[i])
                continue;
            int tx = x + f->x0, ty = y + f->y0;
            pm_nnf_entry best = f->e[i];

            /* Propagation: the neighbour already visited in this row. */
            int nx = x - step;
            if (nx >= 0 && nx < fw && f->is_target[i - step]) {
                const pm_nnf_entry *n = &f->e[i - step];
                int sx = n->sx + step, sy = n->sy;
                if (sx >= lo_x && sx <= hi_x)
                    try_source(L, tx, ty, sx, sy, &best);
            }
            /* ... and the one in the row visited before: from this band's
             * updated field, or from the snapshot across the band edge. */
            int ny = y - step;
            if (ny >= 0 && ny < f->h && f->is_target[i - (ptrdiff_t)step * fw]) {
                int inside = ny >= by0 && ny < by1;
                const pm_nnf_entry *n = inside ? &f->e[i - (ptrdiff_t)step * fw] : &f->snap[i - (ptrdiff_t)step * fw];
                int sx = n->sx, sy = n->sy + step;
                if (sy >= lo_y && sy <= hi_y)
                    try_source(L, tx, ty, sx, sy, &best);
            }

            /* Random search around the current match, halving the radius. */
            for (int rad = maxr; rad >= 1; rad /= 2) {
                int sx = best.sx + (int)pm_rng_below(&g, (uint32_t)(2 * rad + 1)) - rad;
                int sy = best.sy + (int)pm_rng_below(&g, (uint32_t)(2 * rad + 1)) - rad;
                sx = sx < lo_x ? lo_x : sx > hi_x ? hi_x : sx;
                sy = sy < lo_y ? lo_y : sy > hi_y ? hi_y : sy;
                try_source(L, tx, ty, sx, sy, &best);
            }
            /* One candidate from anywhere, so that sparse sources are found. */
            int32_t s = L->src_list[pm_rng_below(&g, (uint32_t)L->n_src)];
            try_source(L, tx, ty, s % L->w, s / L->w, &best);

            f->e[i] = best;
        }
    }
    return 0;
}

static int nnf_pass_radius(pm_nnf *f, const pm_pm_layer *L, int pass, uint64_t seed, int threads, int max_radius)
{
    if (!f->n_targets || L->n_src <= 0)
        return 0;
    memcpy(f->snap, f->e, (size_t)f->w * f->h * sizeof *f->e);
    struct band_job j = {.f = f, .L = L, .pass = pass, .max_radius = max_radius < 1 ? 1 : max_radius,
                         .seed = pm_seed2(seed, (uint64_t)pass)};
    return pm_parallel_for(n_bands(f->h), threads, pass_band, &j);
}

int pm_nnf_pass(pm_nnf *f, const pm_pm_layer *L, int pass, uint64_t seed, int threads)
{
    return nnf_pass_radius(f, L, pass, seed, threads, L->w > L->h ? L->w : L->h);
}

/* Fine field from the coarse one: the match of the coarse parent, scaled by
 * two, keeping the child's offset; a random source where that is not valid. */
static int upsample_band(void *user, int band)
{
    struct band_job *j = user;
    pm_nnf *f = j->f;
    const pm_nnf *fc = j->fc;
    const pm_pm_layer *L = j->L, *C = j->C;
    int r = L->patch_size / 2;
    int rc = C->patch_size / 2;
    pm_rng g = {pm_seed2(j->seed, (uint64_t)band)};
    int y1 = (band + 1) * PM_BAND_ROWS < f->h ? (band + 1) * PM_BAND_ROWS : f->h;
    for (int y = band * PM_BAND_ROWS; y < y1; y++) {
        for (int x = 0; x < f->w; x++) {
            size_t i = (size_t)y * f->w + x;
            if (!f->is_target[i])
                continue;
            int tx = x + f->x0, ty = y + f->y0;
            int cx = tx / 2, cy = ty / 2;
            cx = cx < rc ? rc : cx > C->w - 1 - rc ? C->w - 1 - rc : cx;
            cy = cy < rc ? rc : cy > C->h - 1 - rc ? C->h - 1 - rc : cy;
            int sx = -1, sy = -1;
            int fx = cx - fc->x0, fy = cy - fc->y0;
            if (fx >= 0 && fx < fc->w && fy >= 0 && fy < fc->h && fc->is_target[(size_t)fy * fc->w + fx]) {
                const pm_nnf_entry *ce = &fc->e[(size_t)fy * fc->w + fx];
                sx = 2 * ce->sx + (tx - 2 * cx);
                sy = 2 * ce->sy + (ty - 2 * cy);
            } else if (C->src_ok[(size_t)cy * C->w + cx]) {
                /* The parent is known at the coarse level: copy from there. */
                sx = 2 * cx + (tx - 2 * cx);
                sy = 2 * cy + (ty - 2 * cy);
            }
            if (sx < r || sx >= L->w - r || sy < r || sy >= L->h - r || !L->src_ok[(size_t)sy * L->w + sx]) {
                int32_t s = L->src_list[pm_rng_below(&g, (uint32_t)L->n_src)];
                sx = s % L->w;
                sy = s / L->w;
            }
            pm_nnf_entry *e = &f->e[i];
            e->sx = sx;
            e->sy = sy;
            e->d = pm_patch_distance(L, tx, ty, sx, sy, INT32_MAX);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ voting */

struct vote_job {
    pm_pm_layer *L;
    const pm_nnf *f;
    const float *wq; /* per field entry: vote weight of that target patch */
    int hx0, hy0, hx1, hy1; /* hole bounding box, inclusive */
};

/* Every hole pixel becomes the weighted mean of what the target patches that
 * cover it say it should be. Reads only known pixels (sources lie outside the
 * hole), writes only hole pixels of its own rows. */
static int vote_band(void *user, int band)
{
    struct vote_job *j = user;
    pm_pm_layer *L = j->L;
    const pm_nnf *f = j->f;
    int r = L->patch_size / 2, w = L->w;
    int y0 = j->hy0 + band * PM_BAND_ROWS;
    int y1 = y0 + PM_BAND_ROWS - 1 < j->hy1 ? y0 + PM_BAND_ROWS - 1 : j->hy1;
    for (int y = y0; y <= y1; y++) {
        for (int x = j->hx0; x <= j->hx1; x++) {
            size_t p = (size_t)y * w + x;
            if (!L->hole[p])
                continue;
            float acc[3] = {0, 0, 0}, wsum = 0;
            for (int dy = -r; dy <= r; dy++) {
                int qy = y - dy - f->y0;
                if (qy < 0 || qy >= f->h)
                    continue;
                for (int dx = -r; dx <= r; dx++) {
                    int qx = x - dx - f->x0;
                    if (qx < 0 || qx >= f->w)
                        continue;
                    size_t qi = (size_t)qy * f->w + qx;
                    if (!f->is_target[qi])
                        continue;
                    const pm_nnf_entry *e = &f->e[qi];
                    const uint8_t *s = L->px + ((size_t)(e->sy + dy) * w + (size_t)(e->sx + dx)) * 4;
                    float wt = j->wq[qi];
                    acc[0] += wt * s[0];
                    acc[1] += wt * s[1];
                    acc[2] += wt * s[2];
                    wsum += wt;
                }
            }
            if (wsum > 0) {
                for (int c = 0; c < 3; c++) {
                    float v = acc[c] / wsum + 0.5f;
                    L->px[4 * p + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
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
    int hx0, hy0, hx1, hy1; /* hole bounding box, inclusive (hx1 < 0: no hole) */
} pm_level_work;

static void level_work_free(pm_level_work *W)
{
    pm_free(W->wq);
    pm_free(W->sel);
    memset(W, 0, sizeof *W);
}

/* Allocates the vote scratch for field f of layer L and finds the hole's
 * bounding box; the caller owns *W and releases it with level_work_free. */
static int level_work_alloc(pm_level_work *W, const pm_nnf *f, const pm_pm_layer *L)
{
    memset(W, 0, sizeof *W);
    W->hx0 = L->w;
    W->hy0 = L->h;
    W->hx1 = W->hy1 = -1;
    for (int y = 0; y < L->h; y++) {
        const uint8_t *hr = L->hole + (size_t)y * L->w;
        for (int x = 0; x < L->w; x++) {
            if (!hr[x])
                continue;
            if (x < W->hx0)
                W->hx0 = x;
            if (x > W->hx1)
                W->hx1 = x;
            if (y < W->hy0)
                W->hy0 = y;
            W->hy1 = y;
        }
    }
    size_t n = (size_t)f->w * f->h;
    W->wq = pm_calloc(n ? n : 1, sizeof *W->wq);
    W->sel = pm_calloc(f->n_targets ? (size_t)f->n_targets : 1, sizeof *W->sel);
    if (!W->wq || !W->sel) {
        level_work_free(W);
        return pm_errorf(PM_ENOMEM, "out of memory for the PatchMatch vote weights");
    }
    return 0;
}

static void vote(pm_pm_layer *L, const pm_nnf *f, pm_level_work *W, int threads)
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
    for (int y = 0; y < f->h; y++) {
        for (int x = 0; x < f->w; x++) {
            size_t i = (size_t)y * f->w + x;
            if (!f->is_target[i])
                continue;
            float a = (float)f->e[i].d / (2.0f * d75);
            if (a > PM_SIM_CAP)
                a = PM_SIM_CAP;
            float dist = L->hole_dist[(size_t)(y + f->y0) * L->w + (x + f->x0)];
            if (dist > PM_DIST_CAP)
                dist = PM_DIST_CAP;
            W->wq[i] = expf(-a - lg * dist);
        }
    }
    if (W->hx1 < 0)
        return;
    struct vote_job j = {.L = L, .f = f, .wq = W->wq, .hx0 = W->hx0, .hy0 = W->hy0, .hx1 = W->hx1, .hy1 = W->hy1};
    pm_parallel_for(n_bands(W->hy1 - W->hy0 + 1), threads, vote_band, &j);
}

/* Hole pixels of the fine level from the coarse estimate (bilinear). */
static void upsample_pixels(pm_pm_layer *F, const pm_pm_layer *C)
{
    for (int y = 0; y < F->h; y++) {
        float cyf = (y + 0.5f) * 0.5f - 0.5f;
        int cy0 = (int)floorf(cyf);
        float ay = cyf - (float)cy0;
        int cy1 = cy0 + 1;
        cy0 = cy0 < 0 ? 0 : cy0 >= C->h ? C->h - 1 : cy0;
        cy1 = cy1 < 0 ? 0 : cy1 >= C->h ? C->h - 1 : cy1;
        for (int x = 0; x < F->w; x++) {
            size_t i = (size_t)y * F->w + x;
            if (!F->hole[i])
                continue;
            float cxf = (x + 0.5f) * 0.5f - 0.5f;
            int cx0 = (int)floorf(cxf);
            float ax = cxf - (float)cx0;
            int cx1 = cx0 + 1;
            cx0 = cx0 < 0 ? 0 : cx0 >= C->w ? C->w - 1 : cx0;
            cx1 = cx1 < 0 ? 0 : cx1 >= C->w ? C->w - 1 : cx1;
            const uint8_t *p00 = C->px + ((size_t)cy0 * C->w + cx0) * 4;
            const uint8_t *p01 = C->px + ((size_t)cy0 * C->w + cx1) * 4;
            const uint8_t *p10 = C->px + ((size_t)cy1 * C->w + cx0) * 4;
            const uint8_t *p11 = C->px + ((size_t)cy1 * C->w + cx1) * 4;
            for (int c = 0; c < 3; c++) {
                float top = p00[c] + ax * (p01[c] - p00[c]);
                float bot = p10[c] + ax * (p11[c] - p10[c]);
                float v = top + ay * (bot - top) + 0.5f;
                F->px[4 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

/* --------------------------------------------------------- initial filling */

/* Scratch of the smooth fill, sized for the finest level and allocated once
 * per run; freed before the search starts. */
typedef struct pm_fill_work {
    float *v;       /* 3 floats per pixel */
    int32_t *list;  /* hole pixel indices */
    uint8_t *state; /* per pixel: 0 hole, 1 queued, 2 filled */
} pm_fill_work;

static void fill_work_free(pm_fill_work *F)
{
    pm_free(F->v);
    pm_free(F->list);
    pm_free(F->state);
    memset(F, 0, sizeof *F);
}

/* Allocates the smooth-fill scratch for up to n pixels; the caller owns *F
 * and releases it with fill_work_free. */
static int fill_work_alloc(pm_fill_work *F, size_t n)
{
    F->v = pm_malloc(n * 3 * sizeof *F->v);
    F->list = pm_malloc(n * sizeof *F->list);
    F->state = pm_malloc(n);
    if (!F->v || !F->list || !F->state) {
        fill_work_free(F);
        return pm_errorf(PM_ENOMEM, "out of memory for the initial fill of a %zu-pixel image", n);
    }
    return 0;
}

/* Onion peel: each ring of hole pixels, from the border inwards, takes the
 * mean of its already filled 8-neighbours. Leaves the hole pixels in
 * F->list in ring order and returns how many there are. */
static int onion_peel(pm_pm_layer *L, pm_fill_work *F)
{
    int w = L->w, h = L->h;
    size_t n = (size_t)w * h;
    float *v = F->v;
    int32_t *queue = F->list;
    uint8_t *state = F->state;
    for (size_t i = 0; i < n; i++)
        state[i] = L->hole[i] ? 0 : 2;
    int qn = 0;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (state[i] != 0)
                continue;
            int edge = 0;
            for (int dy = -1; dy <= 1 && !edge; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx >= 0 && xx < w && yy >= 0 && yy < h && state[(size_t)yy * w + xx] == 2) {
                        edge = 1;
                        break;
                    }
                }
            if (edge) {
                state[i] = 1;
                queue[qn++] = (int32_t)i;
            }
        }
    }
    int start = 0;
    while (start < qn) {
        int end = qn;
        for (int k = start; k < end; k++) {
            int i = queue[k], x = i % w, y = i / w;
            float s[3] = {0, 0, 0};
            int cnt = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || xx >= w || yy < 0 || yy >= h)
                        continue;
                    size_t j = (size_t)yy * w + xx;
                    if (state[j] != 2)
                        continue;
                    for (int c = 0; c < 3; c++)
                        s[c] += v[3 * j + c];
                    cnt++;
                }
            for (int c = 0; c < 3; c++)
                v[3 * (size_t)i + c] = cnt ? s[c] / (float)cnt : 0.0f;
        }
        for (int k = start; k < end; k++) {
            int i = queue[k], x = i % w, y = i / w;
            state[i] = 2;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || xx >= w || yy < 0 || yy >= h)
                        continue;
                    size_t j = (size_t)yy * w + xx;
                    if (state[j] == 0) {
                        state[j] = 1;
                        queue[qn++] = (int32_t)j;
                    }
                }
        }
        start = end;
    }
    return qn;
}

/* Hole pixels per unit of parallel work in the smooth fill; below
 * PM_SOR_PARALLEL_MIN hole pixels the sweeps run on the calling thread. */
#define PM_SOR_CHUNK 8192
#define PM_SOR_PARALLEL_MIN 65536

struct sor_job {
    float *v;
    const int32_t *list; /* the pixels of one colour */
    int n;
    int w, h;
};

/* One over-relaxation step for a chunk of same-colour pixels: their
 * 4-neighbours all have the other colour, so chunks are independent and the
 * result does not depend on the order or the thread count. */
static int sor_chunk(void *user, int k)
{
    const struct sor_job *j = user;
    float *v = j->v;
    int w = j->w, h = j->h;
    int end = (k + 1) * PM_SOR_CHUNK < j->n ? (k + 1) * PM_SOR_CHUNK : j->n;
    for (int m = k * PM_SOR_CHUNK; m < end; m++) {
        int i = j->list[m], x = i % w, y = i / w;
        float s0 = 0, s1 = 0, s2 = 0;
        int cnt = 0;
        if (x > 0) {
            const float *q = v + 3 * (size_t)(i - 1);
            s0 += q[0], s1 += q[1], s2 += q[2], cnt++;
        }
        if (x + 1 < w) {
            const float *q = v + 3 * (size_t)(i + 1);
            s0 += q[0], s1 += q[1], s2 += q[2], cnt++;
        }
        if (y > 0) {
            const float *q = v + 3 * (size_t)(i - w);
            s0 += q[0], s1 += q[1], s2 += q[2], cnt++;
        }
        if (y + 1 < h) {
            const float *q = v + 3 * (size_t)(i + w);
            s0 += q[0], s1 += q[1], s2 += q[2], cnt++;
        }
        float inv = 1.0f / (float)cnt, *pv = v + 3 * (size_t)i;
        pv[0] += PM_SOR_OMEGA * (s0 * inv - pv[0]);
        pv[1] += PM_SOR_OMEGA * (s1 * inv - pv[1]);
        pv[2] += PM_SOR_OMEGA * (s2 * inv - pv[2]);
    }
    return 0;
}

/* Smooth (membrane) fill of the hole of level L. At the smallest level
 * (C NULL) it starts from an onion peel; otherwise from the bilinear
 * upsampling of the coarser level's fill, so that a few over-relaxed
 * Gauss-Seidel sweeps per level converge (a multigrid cascade). The sweeps use
 * red-black order (a pixel's colour is the parity of x + y), which lets them
 * run on several threads with the same result. Known pixels stay fixed. */
static void fill_smooth(pm_pm_layer *L, const pm_pm_layer *C, pm_fill_work *F, int iters, int threads)
{
    int w = L->w, h = L->h;
    size_t n = (size_t)w * h;
    float *v = F->v;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            v[3 * i + c] = L->px[4 * i + c];
    int qn = 0;
    if (!C) {
        qn = onion_peel(L, F);
    } else {
        upsample_pixels(L, C);
        for (size_t i = 0; i < n; i++) {
            if (!L->hole[i])
                continue;
            F->list[qn++] = (int32_t)i;
            for (int c = 0; c < 3; c++)
                v[3 * i + c] = L->px[4 * i + c];
        }
    }
    /* Red pixels first, then black (order within a colour is irrelevant). */
    int nred = 0;
    for (int k = 0; k < qn; k++) {
        int i = F->list[k];
        if (((i % w) + (i / w)) % 2 == 0) {
            F->list[k] = F->list[nred];
            F->list[nred++] = i;
        }
    }
    struct sor_job red = {.v = v, .list = F->list, .n = nred, .w = w, .h = h};
    struct sor_job black = {.v = v, .list = F->list + nred, .n = qn - nred, .w = w, .h = h};
    int par = qn >= PM_SOR_PARALLEL_MIN ? threads : 1;
    for (int it = 0; it < iters; it++) {
        for (int colour = 0; colour < 2; colour++) {
            struct sor_job *j = colour ? &black : &red;
            int chunks = (j->n + PM_SOR_CHUNK - 1) / PM_SOR_CHUNK;
            if (par > 1) {
                pm_parallel_for(chunks, par, sor_chunk, j);
            } else {
                for (int k = 0; k < chunks; k++)
                    sor_chunk(j, k);
            }
        }
    }
    for (int k = 0; k < qn; k++) {
        size_t i = (size_t)F->list[k];
        for (int c = 0; c < 3; c++) {
            float x = v[3 * i + c] + 0.5f;
            L->px[4 * i + c] = (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
        }
    }
}

/* Mixes the upsampled coarse estimate now in L->px with the smooth fill in
 * L->base by distance to the border (see PM_BLEND_NEAR). */
static void blend_with_base(pm_pm_layer *L)
{
    size_t n = (size_t)L->w * L->h;
    for (size_t i = 0; i < n; i++) {
        if (!L->hole[i])
            continue;
        float a = (L->hole_dist[i] - PM_BLEND_NEAR) / (PM_BLEND_FAR - PM_BLEND_NEAR);
        a = a < 0 ? 0 : a > 1 ? 1 : a;
        for (int c = 0; c < 3; c++)
            L->px[4 * i + c] = (uint8_t)(a * L->px[4 * i + c] + (1 - a) * L->base[4 * i + c] + 0.5f);
    }
}

/* ----------------------------------------------------------------- driver */

#define PM_MAX_LEVELS 24

/* EM iterations at a level: the finest runs half as many (rounded up); it
 * inherits a field that is already close and is the most expensive. */
static int em_iters_at(const pm_patchmatch_params *p, int level)
{
    return level == 0 ? (p->em_iters + 1) / 2 : p->em_iters;
}

static float max_hole_dist(const pm_pm_layer *L)
{
    float m = 0;
    size_t n = (size_t)L->w * L->h;
    for (size_t i = 0; i < n; i++)
        if (L->hole_dist[i] > m)
            m = L->hole_dist[i];
    return m;
}

int pm_patchmatch_inpaint(const pm_image *rgb, const pm_image *mask, const pm_patchmatch_params *p,
                          pm_image *out, const pm_run_ctx *ctx)
{
    pm_patchmatch_params defaults = pm_patchmatch_default_params();
    pm_pm_layer lv[PM_MAX_LEVELS];
    pm_nnf fine, coarse;
    pm_level_work work;
    int nlev = 0, rc = 0;

    memset(lv, 0, sizeof lv);
    memset(&fine, 0, sizeof fine);
    memset(&coarse, 0, sizeof coarse);
    memset(&work, 0, sizeof work);
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

    size_t nhole = 0;
    for (size_t i = 0; i < npx; i++)
        nhole += mask->data[i] != 0;

    /* Level 0: the image, with the hole's content forgotten. */
    if ((rc = pm_pm_layer_alloc(&lv[0], w, h, ps)) != 0)
        return rc;
    nlev = 1;
    for (size_t i = 0; i < npx; i++) {
        uint8_t hole = mask->data[i] != 0;
        lv[0].hole[i] = hole;
        for (int c = 0; c < 3; c++)
            lv[0].px[4 * i + c] = hole ? 0 : rgb->data[3 * i + c];
    }
    if (nhole == 0)
        goto compose;
    if (w < ps || h < ps) {
        rc = pm_errorf(PM_ENOSOURCE,
                       "the image is %dx%d, smaller than one %dx%d patch, so there is nothing to copy from; "
                       "use a larger image or a smaller patch size",
                       w, h, ps, ps);
        goto free_levels;
    }
    pm_pm_layer_analyse(&lv[0]);
    if (lv[0].n_src == 0) {
        rc = pm_errorf(PM_ENOSOURCE,
                       "the mask covers %.1f%% of the %dx%d image and leaves no %dx%d area untouched, so there "
                       "is nothing to copy from; shrink the mask or use a learned model (lama)",
                       100.0 * (double)nhole / (double)npx, w, h, ps, ps);
        goto free_levels;
    }

    /* The pyramid. Levels 0..npm-1 run PatchMatch: a coarser one is added
     * while the hole at the current level is still thicker than `stop`, the
     * coarser level keeps its shorter side >= min_size and keeps enough
     * sources. Levels beyond (down to a few pixels, while anything is known)
     * serve only the multigrid smooth fill that starts the search. */
    float stop = (float)(ps / 2);
    int npm = 1, pm_open = 1;
    while (nlev < PM_MAX_LEVELS) {
        pm_pm_layer *F = &lv[nlev - 1];
        int cw = (F->w + 1) / 2, ch = (F->h + 1) / 2;
        if (cw < 2 || ch < 2 || F->w * F->h <= 64)
            break;
        pm_pm_layer *C = &lv[nlev];
        if ((rc = pm_pm_layer_alloc(C, cw, ch, ps)) != 0)
            goto free_levels;
        downsample(F, C);
        pm_pm_layer_analyse(C);
        size_t known = 0;
        for (size_t i = 0; i < (size_t)cw * ch; i++)
            known += !C->hole[i];
        if (known == 0) {
            pm_pm_layer_free(C);
            break;
        }
        if (pm_open && (cw < ch ? cw : ch) >= p->min_size && cw >= ps && ch >= ps &&
            max_hole_dist(F) > stop && C->n_src >= PM_MIN_COARSE_SOURCES)
            npm++;
        else
            pm_open = 0;
        nlev++;
    }

    int total = 0, done = 0;
    for (int l = 0; l < npm; l++)
        total += em_iters_at(p, l);
    if (ctx && ctx->progress && ctx->progress(ctx->progress_user, 0, total)) {
        rc = pm_errorf(PM_ECANCELLED, "inpainting was cancelled before it started");
        goto free_levels;
    }

    /* Smooth fill of every level, coarse to fine (a multigrid cascade); each
     * level keeps it in `base`. The coarsest PatchMatch level starts from it. */
    {
        pm_fill_work fw;
        memset(&fw, 0, sizeof fw);
        if ((rc = fill_work_alloc(&fw, npx)) != 0)
            goto free_levels;
        for (int l = nlev - 1; l >= 0; l--) {
            int coarsest = l == nlev - 1;
            fill_smooth(&lv[l], coarsest ? NULL : &lv[l + 1], &fw, coarsest ? PM_SMOOTH_ITERS_COARSEST : PM_SMOOTH_ITERS,
                        threads);
            memcpy(lv[l].base, lv[l].px, (size_t)lv[l].w * lv[l].h * 4);
        }
        fill_work_free(&fw);
    }

    for (int l = npm - 1; l >= 0; l--) {
        pm_pm_layer *L = &lv[l];
        uint64_t lseed = pm_seed2(p->seed, (uint64_t)l);
        if ((rc = pm_nnf_alloc(&fine, L)) != 0)
            goto free_fields;
        if ((rc = level_work_alloc(&work, &fine, L)) != 0)
            goto free_fields;
        if (l == npm - 1) {
            pm_nnf_init_random(&fine, L, pm_seed2(lseed, 0xA11), threads);
        } else {
            upsample_pixels(L, &lv[l + 1]);
            blend_with_base(L);
            struct band_job j = {.f = &fine, .L = L, .C = &lv[l + 1], .fc = &coarse,
                                 .seed = pm_seed2(lseed, 0xB22)};
            if (fine.n_targets)
                pm_parallel_for(n_bands(fine.h), threads, upsample_band, &j);
            pm_nnf_free(&coarse);
        }
        int iters = em_iters_at(p, l);
        int maxside = L->w > L->h ? L->w : L->h;
        for (int it = 0; it < iters; it++) {
            uint64_t iseed = pm_seed2(lseed, (uint64_t)it + 1);
            for (int k = 0; k < p->pm_iters; k++)
                nnf_pass_radius(&fine, L, k, pm_seed2(iseed, (uint64_t)k), threads,
                                l == npm - 1 ? maxside : maxside / PM_INHERITED_SEARCH_DIV);
            vote(L, &fine, &work, threads);
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
    pm_nnf_free(&coarse);

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
    goto free_levels;

free_fields:
    level_work_free(&work);
    pm_nnf_free(&fine);
    pm_nnf_free(&coarse);
free_levels:
    for (int l = 0; l < nlev; l++)
        pm_pm_layer_free(&lv[l]);
    return rc;
}

/* --------------------------------------------------------------- registry */

typedef struct pm_pm_state {
    pm_patchmatch_params params;
} pm_pm_state;

/* Needs no file; *state is owned by the caller (pm_model_patchmatch.unload). */
static int pm_pm_load(const char *path, const pm_model_opts *opts, void **state)
{
    (void)path;
    pm_pm_state *s = pm_malloc(sizeof *s);
    if (!s)
        return pm_errorf(PM_ENOMEM, "out of memory loading the PatchMatch inpainter");
    s->params = pm_patchmatch_default_params();
    if (opts) {
        s->params.threads = opts->threads;
        s->params.seed = opts->seed;
    }
    *state = s;
    return 0;
}

static void pm_pm_unload(void *state)
{
    pm_free(state);
}

static int pm_pm_run(void *state, const pm_image *rgb, const pm_image *mask, pm_image *out,
                     const pm_run_ctx *ctx)
{
    const pm_pm_state *s = state;
    return pm_patchmatch_inpaint(rgb, mask, s ? &s->params : NULL, out, ctx);
}

/* Peak bytes for a w x h image, with every level's buffers, two fields, the
 * vote scratch, the initial fill's scratch and the output; all per pixel of
 * the full image (worst case: the hole spans the whole image). */
static uint64_t pm_pm_mem_estimate(const void *state, int w, int h, int input_size)
{
    (void)input_size;
    (void)state;
    uint64_t n = (uint64_t)(w > 0 ? w : 0) * (uint64_t)(h > 0 ? h : 0);
    uint64_t layer = 4 + 4 + 1 + 1 + 4 + 4;           /* px, base, hole, src_ok, src_list, hole_dist */
    uint64_t pyramid = layer * n * 4 / 3 + 1;         /* geometric series of levels */
    uint64_t field = (1 + 2 * sizeof(pm_nnf_entry)) * n; /* is_target, e, snap */
    uint64_t fields = field + field / 4;              /* this level's and the coarser one */
    uint64_t vote = 8 * n;                            /* weights and percentile scratch */
    uint64_t fill = 17 * n;                           /* smooth-fill scratch (sized for level 0) */
    uint64_t out = 3 * n;
    /* The job around the engine: the decoded image (3) and mask (1), and the
     * encoded result (up to about its raw size, 3). Measured by `pixmend
     * calibrate` with a mask whose box is the whole image (the fields are
     * then full size): 4.4, 17.6 and 70.7 MiB at 256, 512 and 1024 px, which
     * this stays 5-27 % above. */
    uint64_t job = 7 * n;
    uint64_t a = fields + vote, b = fill;
    return pyramid + (a > b ? a : b) + out + job + (1u << 20);
}

const pm_model_desc pm_model_patchmatch = {
    .name = "patchmatch",
    .task = PM_TASK_INPAINT,
    .needs_file = 0,
    .load = pm_pm_load,
    .unload = pm_pm_unload,
    .inpaint = pm_pm_run,
    .colorize = NULL,
    .mem_estimate = pm_pm_mem_estimate,
};
