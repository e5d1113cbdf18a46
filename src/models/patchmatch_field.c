/* Layers, patch distance and the nearest-neighbour field of the PatchMatch
 * inpainter (see patchmatch.h). The search loops allocate nothing. */
#include "models/patchmatch_internal.h"

#include "base/base.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------------ layers */

int pm_pmatch_layer_alloc(pm_pmatch_layer *L, int w, int h, int patch_size)
{
    memset(L, 0, sizeof *L);
    if (w <= 0 || h <= 0 || (int64_t)w * h > INT32_MAX / 4)
        return pm_errorf(PM_EINVAL, "a %dx%d working image is not possible", w, h);
    size_t n = (size_t)w * (size_t)h;
    L->w = w;
    L->h = h;
    L->patch_size = patch_size;
    L->px = pm_calloc(n, 4);
    L->hole = pm_calloc(n, 1);
    L->src_ok = pm_calloc(n, 1);
    L->src_list = pm_calloc(n, sizeof *L->src_list);
    L->hole_dist = pm_calloc(n, sizeof *L->hole_dist);
    if (!L->px || !L->hole || !L->src_ok || !L->src_list || !L->hole_dist) {
        pm_pmatch_layer_free(L);
        return pm_errorf(PM_ENOMEM, "out of memory for a %dx%d PatchMatch level", w, h);
    }
    return 0;
}

void pm_pmatch_layer_free(pm_pmatch_layer *L)
{
    pm_free(L->px);
    pm_free(L->hole);
    pm_free(L->src_ok);
    pm_free(L->src_list);
    pm_free(L->hole_dist);
    memset(L, 0, sizeof *L);
}

/* For every pixel, whether the patch window centred there contains a hole
 * pixel: a sliding count along rows into `out`, then along columns in place
 * with a small ring of the row results. */
static void window_any_hole(const pm_pmatch_layer *L, uint8_t *out)
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

void pm_pmatch_layer_analyse(pm_pmatch_layer *L)
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
    pm_pmatch_chamfer(L->hole, w, h, L->hole_dist, NULL);
}

void pm_pmatch_chamfer(const uint8_t *hole, int w, int h, float *D, float *v)
{
    /* The forward pass looks left and up, the backward one right and down. */
    static const int ox[4] = {-1, -1, 0, 1}, oy[4] = {0, -1, -1, -1};
    static const float od[4] = {1.0f, 1.41421356f, 1.0f, 1.41421356f};
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < w * h; k++) {
            int i = pass ? w * h - 1 - k : k, x = i % w, y = i / w, sg = pass ? -1 : 1;
            D[i] = hole[i] ? (pass ? D[i] : 1e9f) : 0.0f;
            for (int m = 0; m < 4 && hole[i]; m++) {
                int xx = x + sg * ox[m], yy = y + sg * oy[m], j = yy * w + xx;
                if (xx < 0 || yy < 0 || xx >= w || yy >= h || D[j] + od[m] >= D[i])
                    continue;
                D[i] = D[j] + od[m];
                if (v)
                    memcpy(v + 4 * (size_t)i, v + 4 * (size_t)j, 4 * sizeof *v);
            }
        }
}

int pm_pmatch_layer_from_image(pm_pmatch_layer *L, const pm_image *rgb, const pm_image *mask, int patch_size)
{
    int rc = pm_pmatch_layer_alloc(L, rgb->width, rgb->height, patch_size);
    if (rc)
        return rc;
    size_t n = (size_t)rgb->width * rgb->height;
    for (size_t i = 0; i < n; i++) {
        L->hole[i] = mask->data[i] != 0;
        for (int c = 0; c < 3; c++)
            L->px[4 * i + c] = L->hole[i] ? 0 : rgb->data[3 * i + c];
    }
    pm_pmatch_layer_analyse(L);
    pm_pmatch_texture_features(L);
    return 0;
}

/* Half-size level: a pixel is a hole when any pixel of its 2x2 block is; a
 * known pixel is the rounded mean of its (known) block. Hole pixels get the
 * mean of the block's known pixels, or 0; they are re-estimated anyway. The
 * texture feature is averaged like a colour, so that every level describes
 * the full-resolution texture (Newson et al. 2014 build their feature
 * pyramid the same way). */
void pm_pmatch_downsample(const pm_pmatch_layer *F, pm_pmatch_layer *C)
{
    for (int y = 0; y < C->h; y++) {
        for (int x = 0; x < C->w; x++) {
            unsigned sum[4] = {0, 0, 0, 0}, cnt = 0, holes = 0;
            for (int k = 0; k < 4; k++) { /* the 2x2 block */
                int fx = 2 * x + (k & 1), fy = 2 * y + (k >> 1);
                if (fx >= F->w || fy >= F->h)
                    continue;
                size_t fi = (size_t)fy * F->w + fx;
                holes += F->hole[fi];
                cnt += !F->hole[fi];
                for (int c = 0; c < 4 && !F->hole[fi]; c++)
                    sum[c] += F->px[4 * fi + c];
            }
            size_t ci = (size_t)y * C->w + x;
            C->hole[ci] = holes > 0;
            for (int c = 0; c < 4; c++)
                C->px[4 * ci + c] = cnt ? (uint8_t)((sum[c] + cnt / 2) / cnt) : 0;
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

static inline __attribute__((always_inline)) int32_t patch_ssd(const pm_pmatch_layer *L, int tx, int ty, int sx,
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

int32_t pm_patch_distance(const pm_pmatch_layer *L, int tx, int ty, int sx, int sy, int32_t limit)
{
    return patch_ssd(L, tx, ty, sx, sy, limit);
}

/* ------------------------------------------------------------------- field */

int pm_nnf_alloc(pm_nnf *f, const pm_pmatch_layer *L)
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

struct band_job {
    pm_nnf *f;
    const pm_pmatch_layer *L;
    const pm_pmatch_layer *C; /* coarse layer (upsampling) */
    const pm_nnf *fc;     /* coarse field (upsampling) */
    int pass;
    int max_radius; /* random search starts at this radius */
    int init;       /* init_band: draw a random source first */
    uint64_t seed;
};

/* The exact distance of every target of a band, after pointing it at a
 * random source when j->init. */
static int init_band(void *user, int band)
{
    struct band_job *j = user;
    pm_nnf *f = j->f;
    const pm_pmatch_layer *L = j->L;
    pm_rng g = {pm_seed2(j->seed, (uint64_t)band)};
    int y1 = (band + 1) * PM_BAND_ROWS < f->h ? (band + 1) * PM_BAND_ROWS : f->h;
    for (int y = band * PM_BAND_ROWS; y < y1; y++) {
        for (int x = 0; x < f->w; x++) {
            size_t i = (size_t)y * f->w + x;
            pm_nnf_entry *e = &f->e[i];
            if (!f->is_target[i])
                continue;
            if (j->init) {
                int32_t s = L->src_list[pm_rng_below(&g, (uint32_t)L->n_src)];
                e->sx = s % L->w;
                e->sy = s / L->w;
            }
            e->d = pm_patch_distance(L, x + f->x0, y + f->y0, e->sx, e->sy, INT32_MAX);
        }
    }
    return 0;
}

void pm_nnf_init_random(pm_nnf *f, const pm_pmatch_layer *L, uint64_t seed, int threads)
{
    if (!f->n_targets || L->n_src <= 0)
        return;
    struct band_job j = {.f = f, .L = L, .seed = seed, .init = 1};
    pm_parallel_for(pm_pmatch_n_bands(f->h), threads, init_band, &j);
}

void pm_nnf_refresh(pm_nnf *f, const pm_pmatch_layer *L, int threads)
{
    if (!f->n_targets)
        return;
    struct band_job j = {.f = f, .L = L};
    pm_parallel_for(pm_pmatch_n_bands(f->h), threads, init_band, &j);
}

/* Tries source (sx, sy) for target (tx, ty); keeps it when strictly better. */
static inline void try_source(const pm_pmatch_layer *L, int tx, int ty, int sx, int sy, pm_nnf_entry *best)
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
    const pm_pmatch_layer *L = j->L;
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

int pm_nnf_pass_radius(pm_nnf *f, const pm_pmatch_layer *L, int pass, uint64_t seed, int threads, int max_radius)
{
    if (!f->n_targets || L->n_src <= 0)
        return 0;
    memcpy(f->snap, f->e, (size_t)f->w * f->h * sizeof *f->e);
    struct band_job j = {.f = f, .L = L, .pass = pass, .max_radius = max_radius < 1 ? 1 : max_radius,
                         .seed = pm_seed2(seed, (uint64_t)pass)};
    return pm_parallel_for(pm_pmatch_n_bands(f->h), threads, pass_band, &j);
}

int pm_nnf_pass(pm_nnf *f, const pm_pmatch_layer *L, int pass, uint64_t seed, int threads)
{
    return pm_nnf_pass_radius(f, L, pass, seed, threads, L->w > L->h ? L->w : L->h);
}

/* Fine field from the coarse one: the match of the coarse parent, scaled by
 * two, keeping the child's offset; a random source where that is not valid. */
static int upsample_band(void *user, int band)
{
    struct band_job *j = user;
    pm_nnf *f = j->f;
    const pm_nnf *fc = j->fc;
    const pm_pmatch_layer *L = j->L, *C = j->C;
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
                sx = tx;
                sy = ty;
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

void pm_nnf_upsample(pm_nnf *f, const pm_pmatch_layer *L, const pm_nnf *fc, const pm_pmatch_layer *C, uint64_t seed,
                     int threads)
{
    if (!f->n_targets)
        return;
    struct band_job j = {.f = f, .L = L, .C = C, .fc = fc, .seed = seed};
    pm_parallel_for(pm_pmatch_n_bands(f->h), threads, upsample_band, &j);
}
