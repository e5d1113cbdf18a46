/* DDColor's own operations (see dd_ops.h), parallel over rows or pixels. */
#include "nn/dd_ops.h"

#include <math.h>
#include <string.h>

#include "nn/dd_dnnl.h"

/* ------------------------------------------------------------- input */

struct norm_job {
    const float *chw;
    int s;
    const float *mean, *std;
    float *nhwc;
};

static void norm_rows(void *u, int64_t b, int64_t e)
{
    const struct norm_job *j = u;
    size_t plane = (size_t)j->s * j->s;
    for (int64_t p = b * j->s; p < e * j->s; p++)
        for (int c = 0; c < 3; c++)
            j->nhwc[p * 3 + c] = (j->chw[c * plane + p] - j->mean[c]) / j->std[c];
}

void dd_normalize_input(const float *chw, int s, const float *mean, const float *std, float *nhwc)
{
    struct norm_job j = {chw, s, mean, std, nhwc};
    dd_parallel(s, 16, norm_rows, &j);
}

/* ------------------------------------------------- shuffle + blur */

struct shuf_job {
    const float *t;
    int h, w, r, n, ldd;
    float *dst;
};

static void shuf_rows(void *u, int64_t b, int64_t e)
{
    const struct shuf_job *j = u;
    int r = j->r, r2 = r * r, n = j->n, ow = j->w * r;
    size_t pix = (size_t)r2 * n;
    for (int64_t y = b; y < e; y++) {
        int ya = y > 0 ? (int)y - 1 : 0, yb = (int)y;
        const float *rowa = j->t + (size_t)(ya / r) * j->w * pix + (size_t)(ya % r) * r;
        const float *rowb = j->t + (size_t)(yb / r) * j->w * pix + (size_t)(yb % r) * r;
        for (int x = 0; x < ow; x++) {
            int xa = x > 0 ? x - 1 : 0, xb = x;
            size_t oa = (size_t)(xa / r) * pix + xa % r, ob = (size_t)(xb / r) * pix + xb % r;
            const float *p00 = rowa + oa, *p01 = rowa + ob, *p10 = rowb + oa, *p11 = rowb + ob;
            float *d = j->dst + ((size_t)y * ow + x) * j->ldd;
            for (int c = 0; c < n; c++) {
                size_t k = (size_t)c * r2;
                d[c] = (((p00[k] + p01[k]) + p10[k]) + p11[k]) * 0.25f;
            }
        }
    }
}

void dd_shuffle_blur(const float *t, int h, int w, int r, int n, float *dst, int ldd)
{
    struct shuf_job j = {t, h, w, r, n, ldd, dst};
    dd_parallel((int64_t)h * r, 4, shuf_rows, &j);
}

/* ------------------------------------------------ affine + ReLU */

struct aff_job {
    const float *x;
    int nc;
    const float *s, *t;
    float *dst;
    int ldd;
};

static void aff_pix(void *u, int64_t b, int64_t e)
{
    const struct aff_job *j = u;
    for (int64_t p = b; p < e; p++) {
        const float *x = j->x + p * j->nc;
        float *d = j->dst + p * j->ldd;
        for (int c = 0; c < j->nc; c++) {
            float v = x[c] * j->s[c] + j->t[c];
            d[c] = v > 0.0f ? v : 0.0f;
        }
    }
}

void dd_affine_relu(const float *x, int64_t npix, int nc, const float *s, const float *t, float *dst, int ldd)
{
    struct aff_job j = {x, nc, s, t, dst, ldd};
    dd_parallel(npix, 256, aff_pix, &j);
}

void dd_bn_fold(const float *w, const float *b, const float *mean, const float *var, int n, float eps,
                float *alpha, float *beta)
{
    for (int c = 0; c < n; c++) {
        float invstd = 1.0f / sqrtf(var[c] + eps);
        alpha[c] = invstd * w[c];
        beta[c] = b[c] - mean[c] * alpha[c];
    }
}

/* ------------------------------------------------------------- add */

struct add_job {
    const float *a, *b;
    float *dst;
};

static void add_range(void *u, int64_t b, int64_t e)
{
    const struct add_job *j = u;
    for (int64_t i = b; i < e; i++)
        j->dst[i] = j->a[i] + j->b[i];
}

void dd_add(const float *a, const float *b, float *dst, int64_t n)
{
    struct add_job j = {a, b, dst};
    dd_parallel(n, 1 << 14, add_range, &j);
}

/* ---------------------------------------------------- sine positions */

struct pos_job {
    const float *src;
    int h, w, hidden;
    float *dst;
    const float *dim_t;
};

static void pos_rows(void *u, int64_t b, int64_t e)
{
    const struct pos_job *j = u;
    int npf = j->hidden / 2;
    const float scale = (float)(2.0 * M_PI);
    for (int64_t y = b; y < e; y++) {
        float py = (float)(y + 1) / ((float)j->h + 1e-6f) * scale;
        for (int x = 0; x < j->w; x++) {
            float px = (float)(x + 1) / ((float)j->w + 1e-6f) * scale;
            size_t o = ((size_t)y * j->w + x) * j->hidden;
            const float *s = j->src + o;
            float *d = j->dst + o;
            for (int k = 0; k < npf; k += 2) {
                float vy0 = py / j->dim_t[k], vx0 = px / j->dim_t[k];
                d[k] = s[k] + sinf(vy0);
                d[npf + k] = s[npf + k] + sinf(vx0);
                if (k + 1 < npf) {
                    float vy1 = py / j->dim_t[k + 1], vx1 = px / j->dim_t[k + 1];
                    d[k + 1] = s[k + 1] + cosf(vy1);
                    d[npf + k + 1] = s[npf + k + 1] + cosf(vx1);
                }
            }
        }
    }
}

void dd_add_sine_pos(const float *src, int h, int w, int hidden, float *dst)
{
    int npf = hidden / 2;
    float dim_t[1024];
    if (npf > 1024)
        npf = 1024;
    for (int k = 0; k < npf; k++)
        dim_t[k] = powf(10000.0f, 2.0f * (float)(k / 2) / (float)npf);
    struct pos_job j = {src, h, w, hidden, dst, dim_t};
    dd_parallel(h, 2, pos_rows, &j);
}

/* ------------------------------------------------ fused colour output */

struct red_job {
    const float *r;
    int e, r2;
    const float *m;
    float *g;
};

static void red_pix(void *u, int64_t b, int64_t e)
{
    const struct red_job *j = u;
    int r2 = j->r2;
    float acc0[64], acc1[64];
    for (int64_t p = b; p < e; p++) {
        const float *rp = j->r + p * (int64_t)j->e * r2;
        for (int s = 0; s < r2; s++)
            acc0[s] = acc1[s] = 0.0f;
        for (int c = 0; c < j->e; c++) {
            float m0 = j->m[c], m1 = j->m[j->e + c];
            const float *v = rp + (size_t)c * r2;
            for (int s = 0; s < r2; s++) {
                acc0[s] += m0 * v[s];
                acc1[s] += m1 * v[s];
            }
        }
        float *g = j->g + p * 2 * r2;
        memcpy(g, acc0, sizeof(float) * r2);
        memcpy(g + r2, acc1, sizeof(float) * r2);
    }
}

void dd_reduce2(const float *r, int64_t npix, int e, int r2, const float *m, float *g)
{
    struct red_job j = {r, e, r2 > 64 ? 64 : r2, m, g};
    dd_parallel(npix, 16, red_pix, &j);
}

struct fin_job {
    const float *g;
    int h, w, r;
    const float *xin, *wx, *bias;
    float *ab;
};

static void fin_rows(void *u, int64_t b, int64_t e)
{
    const struct fin_job *j = u;
    int r = j->r, r2 = r * r, ow = j->w * r;
    size_t plane = (size_t)ow * j->h * r;
    for (int64_t y = b; y < e; y++) {
        int ya = y > 0 ? (int)y - 1 : 0, yb = (int)y;
        const float *rowa = j->g + (size_t)(ya / r) * j->w * 2 * r2 + (size_t)(ya % r) * r;
        const float *rowb = j->g + (size_t)(yb / r) * j->w * 2 * r2 + (size_t)(yb % r) * r;
        for (int x = 0; x < ow; x++) {
            int xa = x > 0 ? x - 1 : 0, xb = x;
            size_t oa = (size_t)(xa / r) * 2 * r2 + xa % r, ob = (size_t)(xb / r) * 2 * r2 + xb % r;
            const float *xi = j->xin + ((size_t)y * ow + x) * 3;
            for (int k = 0; k < 2; k++) {
                size_t kk = (size_t)k * r2;
                float v = (((rowa[oa + kk] + rowa[ob + kk]) + rowb[oa + kk]) + rowb[ob + kk]) * 0.25f;
                v += j->wx[k * 3] * xi[0] + j->wx[k * 3 + 1] * xi[1] + j->wx[k * 3 + 2] * xi[2] + j->bias[k];
                j->ab[k * plane + (size_t)y * ow + x] = v;
            }
        }
    }
}

void dd_final_ab(const float *g, int h, int w, int r, const float *xin, const float *wx, const float *bias,
                 float *ab)
{
    struct fin_job j = {g, h, w, r, xin, wx, bias, ab};
    dd_parallel((int64_t)h * r, 4, fin_rows, &j);
}
