/* Smooth fill, resampling and texture features of the PatchMatch inpainter
 * (see patchmatch.h). Every function works on the four bytes of a pixel:
 * R, G, B and the texture feature. */
#include "models/patchmatch_internal.h"

#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The smooth (membrane) fill: successive over-relaxation sweeps after the
 * start of the coarsest level, and after upsampling at every finer one. */
#define PM_SOR_OMEGA 1.8f

/* Texture feature: the mean over a 3x3 window of
 * (|dY/dx| + |dY/dy|) of the luminance Y, capped at 255. It adds to the
 * patch distance like a fourth colour channel, so that a textured target is
 * not matched to a flat source of the same mean colour (texture features in
 * the patch distance: Newson et al. 2014). */

void pm_pmatch_upsample_pixels(pm_pmatch_layer *F, const pm_pmatch_layer *C)
{
    for (int y = 0; y < F->h; y++) {
        float cyf = fmaxf((y + 0.5f) * 0.5f - 0.5f, 0.0f);
        int cy0 = (int)cyf, cy1 = cy0 + 1 < C->h ? cy0 + 1 : cy0;
        float ay = cyf - (float)cy0;
        for (int x = 0; x < F->w; x++) {
            size_t i = (size_t)y * F->w + x;
            if (!F->hole[i])
                continue;
            float cxf = fmaxf((x + 0.5f) * 0.5f - 0.5f, 0.0f);
            int cx0 = (int)cxf, cx1 = cx0 + 1 < C->w ? cx0 + 1 : cx0;
            float ax = cxf - (float)cx0;
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
    pm_free(F->ring);
    pm_free(F->dist);
    memset(F, 0, sizeof *F);
}

int pm_pmatch_fill_work_alloc(pm_fill_work *F, size_t n)
{
    F->v = pm_malloc(n * 4 * sizeof *F->v);
    F->list = pm_malloc(n * sizeof *F->list);
    F->ring = pm_malloc(n);
    F->dist = pm_malloc(n * sizeof *F->dist);
    if (!F->v || !F->list || !F->ring || !F->dist) {
        pm_pmatch_fill_work_free(F);
        return pm_errorf(PM_ENOMEM, "out of memory for the initial fill of a %zu-pixel image", n);
    }
    return 0;
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
            pm_parallel_for((j->n + PM_SOR_CHUNK - 1) / PM_SOR_CHUNK, par, sor_chunk, j);
        }
    }
}

/* Smooth (membrane) fill of the hole of level L in F->v (4 floats a pixel;
 * the known pixels' values are the boundary): from the bilinear upsampling
 * of the coarser level C (so that a few sweeps per level converge: a
 * multigrid cascade), or, when C is NULL, from the value of the nearest
 * known pixel (pm_pmatch_chamfer); then over-relaxed red-black Gauss-Seidel
 * sweeps, whose result does not depend on the thread count. Leaves the hole
 * pixels in F->list and returns their number. */
static int membrane(pm_pmatch_layer *L, const pm_pmatch_layer *C, pm_fill_work *F, int iters, int threads)
{
    int qn = 0;
    if (C)
        pm_pmatch_upsample_pixels(L, C);
    else
        pm_pmatch_chamfer(L->hole, L->w, L->h, F->dist, F->v);
    for (int i = 0; i < L->w * L->h; i++) {
        if (!L->hole[i])
            continue;
        F->list[qn++] = i;
        for (int c = 0; c < 4 && C; c++)
            F->v[4 * (size_t)i + c] = L->px[4 * (size_t)i + c];
    }
    sor_sweeps(F->v, F->list, qn, L->w, L->h, iters, threads);
    return qn;
}

void pm_pmatch_fill_smooth(pm_pmatch_layer *L, const pm_pmatch_layer *C, pm_fill_work *F, int iters, int threads)
{
    for (size_t i = 0; i < 4 * (size_t)L->w * L->h; i++)
        F->v[i] = L->px[i];
    int qn = membrane(L, C, F, iters, threads);
    for (int k = 0; k < qn; k++) {
        size_t i = (size_t)F->list[k];
        for (int c = 0; c < 4; c++) {
            float x = F->v[4 * i + c] + 0.5f;
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
    /* Pass 2: the 3x3 mean over known pixels, in place, as a mean along
     * rows and then one along columns; `prev` keeps the value a step back
     * before it is overwritten. */
    for (int pass = 0; pass < 2; pass++) {
        int lines = pass ? w : h, len = pass ? h : w;
        size_t step = pass ? (size_t)w : 1, stride = pass ? 1 : (size_t)w;
        for (int a = 0; a < lines; a++) {
            int prev = -1;
            for (int k = 0; k < len; k++) {
                size_t i = a * stride + k * step;
                int cur = L->hole[i] ? -1 : L->px[4 * i + 3], s = 0, n = 0;
                int next = k + 1 < len && !L->hole[i + step] ? L->px[4 * (i + step) + 3] : -1;
                const int v3[3] = {prev, cur, next};
                for (int m = 0; m < 3; m++)
                    s += v3[m] >= 0 ? v3[m] : 0, n += v3[m] >= 0;
                if (cur >= 0)
                    L->px[4 * i + 3] = (uint8_t)((2 * s + n) / (2 * n));
                prev = cur;
            }
        }
    }
}

void pm_pmatch_seam_correct(pm_pmatch_layer *L, const int32_t *src, pm_fill_work *F, int iters, int threads)
{
    int w = L->w, h = L->h;
    size_t n = (size_t)w * h;
    static const int nx[4] = {-1, 1, 0, 0}, ny[4] = {0, 0, -1, 1};
    float *v = F->v, lo[3] = {255, 255, 255}, hi[3] = {0, 0, 0};
    uint8_t *ring = F->ring;
    /* The ring: each such hole pixel p takes the mean, over its known
     * 4-neighbours, of their value minus what p's source has at the same
     * offset; it becomes a fixed (known) pixel of the membrane. */
    memset(v, 0, n * 4 * sizeof *v);
    memset(ring, 0, n);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            int cnt = 0;
            for (int k = 0; k < 4 && L->hole[i]; k++) {
                int xx = x + nx[k], yy = y + ny[k], sx = src[i] % w + nx[k], sy = src[i] / w + ny[k];
                size_t q = (size_t)yy * w + xx, sq = (size_t)sy * w + sx;
                if (xx < 0 || yy < 0 || xx >= w || yy >= h || L->hole[q])
                    continue;
                ring[i] = 1;
                if (src[i] < 0 || sx < 0 || sy < 0 || sx >= w || sy >= h)
                    continue;
                for (int c = 0; c < 3; c++)
                    v[4 * i + c] += (float)L->px[4 * q + c] - (float)L->px[4 * sq + c];
                cnt++;
            }
            for (int c = 0; c < 3 && cnt; c++)
                v[4 * i + c] /= (float)cnt;
            for (int c = 0; c < 3 && !L->hole[i]; c++) {
                lo[c] = L->px[4 * i + c] < lo[c] ? L->px[4 * i + c] : lo[c];
                hi[c] = L->px[4 * i + c] > hi[c] ? L->px[4 * i + c] : hi[c];
            }
        }
    for (size_t i = 0; i < n; i++)
        L->hole[i] = L->hole[i] && !ring[i];
    /* The membrane inside carries the ring's mismatch in and fades it. The
     * corrected fill stays inside the known pixels' range per channel, as
     * every copied pixel does: the membrane must not invent colours. The
     * hole (ring included) is where the distance to known pixels is > 0. */
    membrane(L, NULL, F, iters, threads);
    for (size_t i = 0; i < n; i++) {
        L->hole[i] = L->hole_dist[i] > 0;
        for (int c = 0; c < 3 && L->hole[i]; c++) {
            float x = (float)L->px[4 * i + c] + v[4 * i + c];
            L->px[4 * i + c] = (uint8_t)((x < lo[c] ? lo[c] : x > hi[c] ? hi[c] : x) + 0.5f);
        }
    }
}

/* ----------------------------------------------------- straight edges */

/* Orientation at known pixel (x, y) of L from the structure tensor of the
 * luminance over the known pixels of a (2 PM_LINE_WIN + 1)^2 window: *ux, *uy
 * the isophote (along the edge); returns the mean squared gradient when the
 * edge is coherent (coherence >= PM_LINE_COHERENCE), else 0. */
static float edge_at(const pm_pmatch_layer *L, int x, int y, float *ux, float *uy)
{
    int w = L->w, h = L->h, n = 0;
    float jxx = 0, jxy = 0, jyy = 0;
    for (int yy = y - PM_LINE_WIN; yy <= y + PM_LINE_WIN; yy++)
        for (int xx = x - PM_LINE_WIN; xx <= x + PM_LINE_WIN; xx++) {
            size_t i = (size_t)yy * w + xx;
            if (xx < 1 || yy < 1 || xx >= w - 1 || yy >= h - 1 || L->hole[i] || L->hole[i - 1] ||
                L->hole[i + 1] || L->hole[i - w] || L->hole[i + w])
                continue;
            float gx = (float)(luma(L->px, i + 1) - luma(L->px, i - 1));
            float gy = (float)(luma(L->px, i + w) - luma(L->px, i - w));
            jxx += gx * gx, jxy += gx * gy, jyy += gy * gy, n++;
        }
    float tr = jxx + jyy;
    if (n < 8 || tr <= 0 || sqrtf((jxx - jyy) * (jxx - jyy) + 4 * jxy * jxy) < PM_LINE_COHERENCE * tr)
        return 0;
    float th = 0.5f * atan2f(2 * jxy, jxx - jyy); /* gradient direction */
    *ux = -sinf(th), *uy = cosf(th);
    return tr / (float)n;
}

/* The colours across the line through (bx, by) along (ux, uy), at normal
 * offsets -PM_LINE_R..PM_LINE_R: for each, the first known pixel walking
 * from that offset along (dx, dy) * (ux, uy) (dir -1: backwards). Returns 0
 * when one is not found within 2 PM_LINE_R + 2 steps. */
static int line_profile(const pm_pmatch_layer *L, float bx, float by, float ux, float uy, int dir,
                        uint8_t prof[2 * PM_LINE_R + 1][4])
{
    for (int s = -PM_LINE_R, k = 0; s <= PM_LINE_R; s++, k = 0) {
        for (;; k++) {
            int x = (int)lroundf(bx - s * uy + dir * k * ux), y = (int)lroundf(by + s * ux + dir * k * uy);
            if (x < 0 || y < 0 || x >= L->w || y >= L->h || k > 2 * PM_LINE_R + 2)
                return 0;
            if (!L->hole[(size_t)y * L->w + x]) {
                memcpy(prof[s + PM_LINE_R], L->px + 4 * ((size_t)y * L->w + x), 4);
                break;
            }
        }
    }
    return 1;
}

/* Paints line l (level-0 coordinates) into the hole of L at scale 1 / 2^level:
 * a band of half-width PM_LINE_R (in level-0 pixels, at least one) that
 * carries the profile across the line at its entry into the profile at its
 * exit (linear along the line). */
void pm_pmatch_paint_line(pm_pmatch_layer *L, const pm_pmatch_line *l, int level)
{
    float f = 1.0f / (float)(1 << level), half = fmaxf(PM_LINE_R * f, 1.0f), len = l->len * f;
    float bx = (l->bx + 0.5f) * f - 0.5f, by = (l->by + 0.5f) * f - 0.5f, ux = l->ux, uy = l->uy;
    uint8_t a[2 * PM_LINE_R + 1][4], b[2 * PM_LINE_R + 1][4];
    if (!line_profile(L, bx, by, ux, uy, -1, a) || !line_profile(L, bx + len * ux, by + len * uy, ux, uy, 1, b))
        return;
    float ex = bx + len * ux, ey = by + len * uy, m = PM_LINE_R + 1.0f;
    int x0 = (int)floorf(fminf(bx, ex) - m), x1 = (int)ceilf(fmaxf(bx, ex) + m);
    int y0 = (int)floorf(fminf(by, ey) - m), y1 = (int)ceilf(fmaxf(by, ey) + m);
    for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < L->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < L->w; x++) {
            size_t i = (size_t)y * L->w + x;
            float t = (x - bx) * ux + (y - by) * uy, s = -(x - bx) * uy + (y - by) * ux;
            if (!L->hole[i] || t < 0 || t > len || fabsf(s) > half)
                continue;
            int k = (int)lroundf(s) + PM_LINE_R;
            k = k < 0 ? 0 : k > 2 * PM_LINE_R ? 2 * PM_LINE_R : k;
            for (int c = 0; c < 4; c++)
                L->px[4 * i + c] = (uint8_t)(a[k][c] + (b[k][c] - a[k][c]) * (t / len) + 0.5f);
        }
}

/* Mean luminance difference between two profiles across a line, and (in
 * *range) the first one's luminance range. */
static int profile_diff(uint8_t a[2 * PM_LINE_R + 1][4], uint8_t b[2 * PM_LINE_R + 1][4], int *range)
{
    int lo = 255, hi = 0, diff = 0;
    for (int s = 0; s <= 2 * PM_LINE_R; s++) {
        int ya = luma(&a[s][0], 0), yb = luma(&b[s][0], 0);
        lo = ya < lo ? ya : lo, hi = ya > hi ? ya : hi, diff += abs(ya - yb);
    }
    *range = hi - lo;
    return diff / (2 * PM_LINE_R + 1);
}

/* Whether the strongest step of a profile across a line lies at its
 * centre (within a pixel): the line runs through the middle, not along
 * another edge at the side. */
static int centred(uint8_t p[2 * PM_LINE_R + 1][4])
{
    int c = 0, all = 0;
    for (int s = 1; s < 2 * PM_LINE_R; s++) {
        int d = abs(luma(p[s + 1], 0) - luma(p[s - 1], 0));
        all = d > all ? d : all;
        c = d > c && abs(s - PM_LINE_R) <= 1 ? d : c;
    }
    return 2 * c >= all && all > 0;
}

/* The straight edge entering the hole at known pixel (x, y) of L, if any:
 * a coherent edge whose continuation along its isophote leaves the hole
 * where the profile across it matches (the exit is searched within
 * PM_LINE_R of the continuation, which fixes the direction), and which runs
 * straight outside the hole on both sides for at least half the gap, so
 * that a short edge such as a brick's joint is not taken for a line. */
static int find_line(const pm_pmatch_layer *L, int x, int y, pm_pmatch_line *out)
{
    int w = L->w, h = L->h, range = 0, best = INT32_MAX;
    float ux = 0, uy = 0, vx, vy, len = 1.0f, qx = -1, qy = -1;
    if (edge_at(L, x, y, &ux, &uy) < PM_LINE_MIN_ENERGY)
        return 0;
    int ix = (int)lroundf(x + 1.5f * ux), iy = (int)lroundf(y + 1.5f * uy);
    if (ix < 0 || iy < 0 || ix >= w || iy >= h || !L->hole[(size_t)iy * w + ix])
        ux = -ux, uy = -uy;
    for (;; len += 0.5f) {
        ix = (int)lroundf(x + len * ux), iy = (int)lroundf(y + len * uy);
        if (ix < 0 || iy < 0 || ix >= w || iy >= h)
            return 0;
        if (!L->hole[(size_t)iy * w + ix])
            break;
    }
    uint8_t a[2 * PM_LINE_R + 1][4], b[2 * PM_LINE_R + 1][4];
    if (len < 3 || !line_profile(L, (float)x, (float)y, ux, uy, -1, a) || !centred(a))
        return 0;
    for (int s = -PM_LINE_R; s <= PM_LINE_R; s++) {
        float sx = ix - s * uy, sy = iy + s * ux;
        int d = line_profile(L, sx, sy, ux, uy, 1, b) && centred(b) ? profile_diff(a, b, &range) : INT32_MAX;
        if (d < best)
            best = d, qx = sx, qy = sy;
    }
    if (best == INT32_MAX || best * 2 > range || range < PM_LINE_MIN_STEP)
        return 0;
    /* The direction through the exit agrees with the edge's own at the
     * entry, and (less precisely measured there) at the exit. */
    len = hypotf(qx - x, qy - y);
    vx = ux, vy = uy, ux = (qx - x) / len, uy = (qy - y) / len;
    if (fabsf(ux * vx + uy * vy) < PM_LINE_COS)
        return 0;
    for (float k = 4; k < 0.5f * len + 4; k += 4)
        for (int dir = -1; dir <= 1; dir += 2) {
            float px = dir < 0 ? x - k * ux : qx + k * ux, py = dir < 0 ? y - k * uy : qy + k * uy;
            if (!line_profile(L, px, py, ux, uy, dir, b) || profile_diff(a, b, &range) * 2 > range || !centred(b))
                return 0;
        }
    *out = (pm_pmatch_line){(float)x, (float)y, ux, uy, len};
    return 1;
}

int pm_pmatch_find_lines(const pm_pmatch_layer *L, pm_pmatch_line *out, int max)
{
    int w = L->w, n = 0;
    for (int y = 1; y < L->h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            size_t i = (size_t)y * w + x;
            if (L->hole[i] || !(L->hole[i - 1] || L->hole[i + 1] || L->hole[i - w] || L->hole[i + w]) ||
                !find_line(L, x, y, &out[n]))
                continue;
            int dup = 0; /* a parallel line within 1.5 px is found already */
            for (int k = 0; k < n && !dup; k++)
                dup = fabsf(out[k].ux * out[n].ux + out[k].uy * out[n].uy) > PM_LINE_COS &&
                      fabsf(-(x - out[k].bx) * out[k].uy + (y - out[k].by) * out[k].ux) < 1.5f;
            if (!dup && ++n == max)
                return n;
        }
    return n;
}
