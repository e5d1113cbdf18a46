/* Smooth fill, resampling and texture features of the PatchMatch inpainter
 * (see patchmatch.h). Every function works on the four bytes of a pixel:
 * R, G, B and the texture feature. */
#include "models/patchmatch_internal.h"

#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The smooth (membrane) fill: successive over-relaxation sweeps after the
 * onion peel of the coarsest level, and after upsampling at every finer one. */
#define PM_SOR_OMEGA 1.8f

/* Texture feature: PM_FEAT_GAIN times the mean over a 3x3 window of
 * (|dY/dx| + |dY/dy|) of the luminance Y, capped at 255. It adds to the
 * patch distance like a fourth colour channel, so that a textured target is
 * not matched to a flat source of the same mean colour (texture features in
 * the patch distance: Newson et al. 2014). */
#define PM_FEAT_GAIN 1.0f
#define PM_FEAT_STRIP 256

void pm_pmatch_upsample_pixels(pm_pmatch_layer *F, const pm_pmatch_layer *C)
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
            for (int c = 0; c < 4; c++) {
                float top = p00[c] + ax * (p01[c] - p00[c]);
                float bot = p10[c] + ax * (p11[c] - p10[c]);
                float v = top + ay * (bot - top) + 0.5f;
                F->px[4 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

/* --------------------------------------------------------- initial filling */

void pm_pmatch_fill_work_free(pm_fill_work *F)
{
    pm_free(F->v);
    pm_free(F->list);
    pm_free(F->state);
    memset(F, 0, sizeof *F);
}

int pm_pmatch_fill_work_alloc(pm_fill_work *F, size_t n)
{
    F->v = pm_malloc(n * 4 * sizeof *F->v);
    F->list = pm_malloc(n * sizeof *F->list);
    F->state = pm_malloc(n);
    if (!F->v || !F->list || !F->state) {
        pm_pmatch_fill_work_free(F);
        return pm_errorf(PM_ENOMEM, "out of memory for the initial fill of a %zu-pixel image", n);
    }
    return 0;
}

/* Onion peel: each ring of hole pixels, from the border inwards, takes the
 * mean of its already filled 8-neighbours. Leaves the hole pixels in
 * F->list in ring order and returns how many there are. */
static int onion_peel(pm_pmatch_layer *L, pm_fill_work *F)
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
            float s[4] = {0, 0, 0, 0};
            int cnt = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || xx >= w || yy < 0 || yy >= h)
                        continue;
                    size_t j = (size_t)yy * w + xx;
                    if (state[j] != 2)
                        continue;
                    for (int c = 0; c < 4; c++)
                        s[c] += v[4 * j + c];
                    cnt++;
                }
            for (int c = 0; c < 4; c++)
                v[4 * (size_t)i + c] = cnt ? s[c] / (float)cnt : 0.0f;
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
        float acc[4] = {0, 0, 0, 0};
        int cnt = 0;
        int nb[4] = {x > 0 ? i - 1 : -1, x + 1 < w ? i + 1 : -1, y > 0 ? i - w : -1, y + 1 < h ? i + w : -1};
        for (int k2 = 0; k2 < 4; k2++) {
            if (nb[k2] < 0)
                continue;
            const float *q = v + 4 * (size_t)nb[k2];
            acc[0] += q[0], acc[1] += q[1], acc[2] += q[2], acc[3] += q[3];
            cnt++;
        }
        float inv = 1.0f / (float)cnt, *pv = v + 4 * (size_t)i;
        for (int c = 0; c < 4; c++)
            pv[c] += PM_SOR_OMEGA * (acc[c] * inv - pv[c]);
    }
    return 0;
}

/* Red-black over-relaxed Gauss-Seidel sweeps on the qn pixels of list (which
 * it reorders) in v (4 floats per pixel); the other pixels stay fixed. */
static void sor_sweeps(float *v, int32_t *list, int qn, int w, int h, int iters, int threads)
{
    /* Red pixels first, then black (order within a colour is irrelevant). */
    int nred = 0;
    for (int k = 0; k < qn; k++) {
        int i = list[k];
        if (((i % w) + (i / w)) % 2 == 0) {
            list[k] = list[nred];
            list[nred++] = i;
        }
    }
    struct sor_job red = {.v = v, .list = list, .n = nred, .w = w, .h = h};
    struct sor_job black = {.v = v, .list = list + nred, .n = qn - nred, .w = w, .h = h};
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
}

/* Smooth (membrane) fill of the hole of level L. At the smallest level
 * (C NULL) it starts from an onion peel; otherwise from the bilinear
 * upsampling of the coarser level's fill, so that a few over-relaxed
 * Gauss-Seidel sweeps per level converge (a multigrid cascade). The sweeps use
 * red-black order (a pixel's colour is the parity of x + y), which lets them
 * run on several threads with the same result. Known pixels stay fixed. */
void pm_pmatch_fill_smooth(pm_pmatch_layer *L, const pm_pmatch_layer *C, pm_fill_work *F, int iters, int threads)
{
    int w = L->w, h = L->h;
    size_t n = (size_t)w * h;
    float *v = F->v;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 4; c++)
            v[4 * i + c] = L->px[4 * i + c];
    int qn = 0;
    if (!C) {
        qn = onion_peel(L, F);
    } else {
        pm_pmatch_upsample_pixels(L, C);
        for (size_t i = 0; i < n; i++) {
            if (!L->hole[i])
                continue;
            F->list[qn++] = (int32_t)i;
            for (int c = 0; c < 4; c++)
                v[4 * i + c] = L->px[4 * i + c];
        }
    }
    sor_sweeps(v, F->list, qn, w, h, iters, threads);
    for (int k = 0; k < qn; k++) {
        size_t i = (size_t)F->list[k];
        for (int c = 0; c < 4; c++) {
            float x = v[4 * i + c] + 0.5f;
            L->px[4 * i + c] = (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
        }
    }
}

/* Luminance of pixel i (BT.601 weights, 8-bit fixed point). */
static inline int luma(const uint8_t *px, size_t i)
{
    return (77 * px[4 * i] + 150 * px[4 * i + 1] + 29 * px[4 * i + 2]) >> 8;
}

void pm_pmatch_texture_features(pm_pmatch_layer *L)
{
    int w = L->w, h = L->h;
    /* Pass 1: the gradient magnitude at every known pixel, from known
     * neighbours only (central differences, one-sided at a hole or the
     * image's edge), kept in the hole-free pixels' fourth byte. */
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (L->hole[i])
                continue;
            int c = luma(L->px, i);
            int l = x > 0 && !L->hole[i - 1] ? luma(L->px, i - 1) : c;
            int r = x + 1 < w && !L->hole[i + 1] ? luma(L->px, i + 1) : c;
            int u = y > 0 && !L->hole[i - w] ? luma(L->px, i - w) : c;
            int d = y + 1 < h && !L->hole[i + w] ? luma(L->px, i + w) : c;
            int g = abs(r - l) + abs(d - u);
            L->px[4 * i + 3] = (uint8_t)(g > 255 ? 255 : g);
        }
    }
    /* Pass 2: the 3x3 mean over known pixels, in place, in column strips of
     * PM_FEAT_STRIP: a ring holds the horizontal sums of rows y - 1, y and
     * y + 1, each taken before its row is overwritten. */
    uint16_t sums[3][PM_FEAT_STRIP];
    uint8_t cnts[3][PM_FEAT_STRIP];
    for (int x0 = 0; x0 < w; x0 += PM_FEAT_STRIP) {
        int xe = x0 + PM_FEAT_STRIP < w ? x0 + PM_FEAT_STRIP : w;
        for (int y = -1; y < h; y++) {
            int yr = y + 1; /* the row whose horizontal sums enter the ring */
            for (int x = x0; x < xe; x++) {
                unsigned s = 0, n = 0;
                for (int dx = -1; dx <= 1 && yr < h; dx++) {
                    int xx = x + dx;
                    if (xx < 0 || xx >= w || L->hole[(size_t)yr * w + xx])
                        continue;
                    s += L->px[4 * ((size_t)yr * w + xx) + 3];
                    n++;
                }
                sums[yr % 3][x - x0] = (uint16_t)s;
                cnts[yr % 3][x - x0] = (uint8_t)n;
            }
            if (y < 0)
                continue;
            for (int x = x0; x < xe; x++) {
                size_t i = (size_t)y * w + x;
                if (L->hole[i])
                    continue;
                unsigned s = 0, n = 0;
                for (int ry = y - 1; ry <= y + 1; ry++) {
                    if (ry < 0 || ry >= h)
                        continue;
                    s += sums[ry % 3][x - x0];
                    n += cnts[ry % 3][x - x0];
                }
                float f = PM_FEAT_GAIN * (float)s / (float)(n ? n : 1) + 0.5f;
                L->px[4 * i + 3] = (uint8_t)(f > 255 ? 255 : f);
            }
        }
    }
}

/* Where hole pixel p's copied source pixel sp = src[p] would put its known
 * 4-neighbour q: the source's own pixel at sp + (q - p); -1 when that falls
 * off the image. */
static inline long src_neighbour(const pm_pmatch_layer *L, int32_t sp, int dx, int dy)
{
    int sx = sp % L->w + dx, sy = sp / L->w + dy;
    if (sx < 0 || sy < 0 || sx >= L->w || sy >= L->h)
        return -1;
    return (long)sy * L->w + sx;
}

void pm_pmatch_seam_correct(pm_pmatch_layer *L, const int32_t *src, pm_fill_work *F, int iters, int threads)
{
    int w = L->w, h = L->h;
    size_t n = (size_t)w * h;
    float *v = F->v;
    uint8_t *state = F->state;
    int32_t *queue = F->list;
    static const int nx[4] = {-1, 1, 0, 0}, ny[4] = {0, 0, -1, 1};
    int qn = 0;
    /* The ring: hole pixels with a known 4-neighbour take the mean mismatch
     * between the known neighbours and what their source would put there.
     * state: 0 hole, 1 queued, 2 fixed (ring or done), 3 known (ignored). */
    for (size_t i = 0; i < n; i++) {
        v[4 * i] = v[4 * i + 1] = v[4 * i + 2] = v[4 * i + 3] = 0.0f;
        state[i] = L->hole[i] ? 0 : 3;
    }
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (!L->hole[i])
                continue;
            float d[3] = {0, 0, 0};
            int cnt = 0, known = 0;
            for (int k = 0; k < 4; k++) {
                int xx = x + nx[k], yy = y + ny[k];
                if (xx < 0 || yy < 0 || xx >= w || yy >= h || L->hole[(size_t)yy * w + xx])
                    continue;
                known = 1;
                long s = src[i] < 0 ? -1 : src_neighbour(L, src[i], nx[k], ny[k]);
                if (s < 0)
                    continue;
                const uint8_t *q = L->px + 4 * ((size_t)yy * w + xx), *sq = L->px + 4 * (size_t)s;
                for (int c = 0; c < 3; c++)
                    d[c] += (float)q[c] - (float)sq[c];
                cnt++;
            }
            if (!known)
                continue;
            for (int c = 0; c < 3; c++)
                v[4 * i + c] = cnt ? d[c] / (float)cnt : 0.0f;
            state[i] = 2;
        }
    }
    /* Onion peel inwards from the ring (8-neighbours), then sweeps on the
     * inner pixels: a membrane that carries the ring's mismatch inside and
     * fades it. Inner pixels have only hole pixels as 4-neighbours. */
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (state[i] != 0)
                continue;
            for (int k = 0; k < 4; k++) {
                int xx = x + nx[k], yy = y + ny[k];
                if (xx >= 0 && yy >= 0 && xx < w && yy < h && state[(size_t)yy * w + xx] == 2) {
                    state[i] = 1;
                    queue[qn++] = (int32_t)i;
                    break;
                }
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
            for (int m = 0; m < 4; m++) {
                int xx = x + nx[m], yy = y + ny[m];
                if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                    continue;
                size_t j = (size_t)yy * w + xx;
                if (state[j] != 2)
                    continue;
                for (int c = 0; c < 3; c++)
                    s[c] += v[4 * j + c];
                cnt++;
            }
            for (int c = 0; c < 3; c++)
                v[4 * (size_t)i + c] = cnt ? s[c] / (float)cnt : 0.0f;
        }
        for (int k = start; k < end; k++) {
            int i = queue[k], x = i % w, y = i / w;
            state[i] = 2;
            for (int m = 0; m < 4; m++) {
                int xx = x + nx[m], yy = y + ny[m];
                if (xx < 0 || yy < 0 || xx >= w || yy >= h)
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
    sor_sweeps(v, queue, qn, w, h, iters, threads);
    /* The corrected fill stays inside the known pixels' range per channel,
     * as every copied pixel does: the membrane must not invent colours. */
    float lo[3] = {255, 255, 255}, hi[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (L->hole[i])
            continue;
        for (int c = 0; c < 3; c++) {
            float x = L->px[4 * i + c];
            lo[c] = x < lo[c] ? x : lo[c];
            hi[c] = x > hi[c] ? x : hi[c];
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!L->hole[i])
            continue;
        for (int c = 0; c < 3; c++) {
            float x = (float)L->px[4 * i + c] + v[4 * i + c];
            x = x < lo[c] ? lo[c] : x > hi[c] ? hi[c] : x;
            L->px[4 * i + c] = (uint8_t)(x + 0.5f);
        }
    }
}
