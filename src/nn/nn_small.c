/* Convolutions with very few output channels (a network's RGB output
 * layer). oneDNN vectorises over output channels and wastes most of each
 * vector on 3 of them (about 20-40 GFLOP/s here); this kernel vectorises
 * over input channels instead (nhwc input: a pixel's channels are
 * contiguous), keeping 4 pixels x 3 outputs of 8-wide accumulators in
 * registers, and is compiled for AVX2/FMA with a generic fallback chosen
 * at load time (target_clones). */
#include "nn/nn_internal.h"

#include "base/base.h"

#include <math.h>
#include <string.h>

/* The 8-wide helpers below are static and inlined into each clone; the
 * warning about passing vectors by value without AVX concerns calls across
 * separately compiled code, which never happen here. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v8 __attribute__((vector_size(32)));
typedef unsigned short u16x8 __attribute__((vector_size(16)));
typedef unsigned int u32x8 __attribute__((vector_size(32)));

int pm_nn_small_weights_init(pm_nn_small_weights *w, int ic, int oc, int k, const float *plain, const float *bias)
{
    memset(w, 0, sizeof *w);
    if (oc < 1 || oc > 4 || ic < 1 || k < 1 || k > 16)
        return pm_errorf(PM_EINVAL, "a small convolution has 1 to 4 outputs and a kernel of at most 16; got %d "
                                    "outputs, kernel %d", oc, k);
    int cb = (ic + 7) / 8;
    size_t n = (size_t)k * k * cb * oc * 8;
    w->w = pm_calloc(n, sizeof *w->w);
    if (!w->w)
        return pm_errorf(PM_ENOMEM, "out of memory for convolution weights");
    w->ic = ic;
    w->oc = oc;
    w->k = k;
    for (int t = 0; t < k * k; t++)
        for (int c = 0; c < ic; c++)
            for (int o = 0; o < oc; o++)
                w->w[(((size_t)t * cb + c / 8) * oc + o) * 8 + c % 8] = plain[((size_t)o * ic + c) * k * k + t];
    for (int o = 0; o < oc; o++)
        w->bias[o] = bias ? bias[o] : 0.0f;
    return 0;
}

void pm_nn_small_weights_free(pm_nn_small_weights *w)
{
    if (!w)
        return;
    pm_free(w->w);
    memset(w, 0, sizeof *w);
}

int pm_nn__lower_smallconv(pm_nn_plan *p, const nn_op *op)
{
    int src = op->src;
    dnnl_memory_desc_t md;
    dnnl_dims_t sd = {1, p->t[src].c, p->t[src].h, p->t[src].w};
    dnnl_memory_desc_init_by_tag(&md, 4, sd, pm_nn__dnnl_dt(p->t[src].dt), dnnl_nhwc);
    if (!p->t[src].fixed)
        pm_nn__fix(p, src, &md);
    pm_nn_view v;
    if (pm_nn_view_from_md(&v, &p->t[src].md) || v.blk != 1 || v.sc != 1) {
        /* bring the input to nhwc */
        if ((src = pm_nn__add_reorder(p, op->name, src, &md, -1)) < 0)
            return p->err;
    }
    if (!p->t[op->dst].fixed) {
        dnnl_dims_t dd = {1, p->t[op->dst].c, p->t[op->dst].h, p->t[op->dst].w};
        dnnl_memory_desc_init_by_tag(&md, 4, dd, dnnl_f32, dnnl_nhwc);
        pm_nn__fix(p, op->dst, &md);
    }
    if (pm_nn_view_from_md(&v, &p->t[op->dst].md))
        return p->err = pm_errorf(PM_EUNSUPPORTED, "%s: output layout not supported", op->name);
    nn_step *s = pm_nn__new_step(p, ST_SMALLCONV, op->name);
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    const pm_nn_small_weights *w = op->sw;
    snprintf(s->impl, sizeof s->impl, "small conv %dx%d %d->%d", w->k, w->k, w->ic, w->oc);
    s->t_src = src;
    s->t_dst = op->dst;
    s->sw = w;
    s->flags = op->flags;
    s->flops = 2.0 * w->ic * w->oc * w->k * w->k * (double)p->t[op->dst].h * p->t[op->dst].w;
    return 0;
}

/* Loads and the horizontal sum are macros, not functions: a function taking
 * or returning a 32-byte vector has a different ABI in the AVX2 clone of
 * SMALL_ROW than in the baseline code around it (an -O0 build crashed so,
 * and clang refuses it outright). */
#define LOAD_F32(p)                                                                                       \
    __extension__({                                                                                       \
        v8 v_;                                                                                            \
        memcpy(&v_, (p), sizeof v_);                                                                      \
        v_;                                                                                               \
    })
#define LOAD_BF16(p)                                                                                      \
    __extension__({                                                                                       \
        u16x8 h_;                                                                                         \
        memcpy(&h_, (p), sizeof h_);                                                                      \
        u32x8 u_ = __builtin_convertvector(h_, u32x8) << 16;                                              \
        v8 v_;                                                                                            \
        memcpy(&v_, &u_, sizeof v_);                                                                      \
        v_;                                                                                               \
    })
#define HSUM(v) ((((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + (((v)[2] + (v)[6]) + ((v)[3] + (v)[7])))

/* One output row with 3 outputs and ic a multiple of 8: out[x * 3 + o] for
 * x < ow, from input rows row[0..k-1] (each `sw` elements per pixel). */
#define SMALL_ROW(NAME, T, LOAD)                                                                          \
    __attribute__((target_clones("arch=x86-64-v3", "default"))) static void NAME(                        \
        const T *const *row, int ic, int k, int ow, const float *wpk, float *out)                        \
    {                                                                                                     \
        int cb = ic / 8;                                                                                  \
        int x = 0;                                                                                        \
        for (; x + 4 <= ow; x += 4) {                                                                     \
            v8 a00 = {0}, a01 = {0}, a02 = {0}, a10 = {0}, a11 = {0}, a12 = {0};                          \
            v8 a20 = {0}, a21 = {0}, a22 = {0}, a30 = {0}, a31 = {0}, a32 = {0};                          \
            for (int ky = 0; ky < k; ky++) {                                                              \
                for (int kx = 0; kx < k; kx++) {                                                          \
                    const T *ip = row[ky] + (size_t)(x + kx) * ic;                                        \
                    const float *wp = wpk + (size_t)(ky * k + kx) * cb * 24;                              \
                    for (int c = 0; c < cb; c++, wp += 24, ip += 8) {                                     \
                        v8 w0 = LOAD_F32(wp), w1 = LOAD_F32(wp + 8), w2 = LOAD_F32(wp + 16);              \
                        v8 i0 = LOAD(ip), i1 = LOAD(ip + ic), i2 = LOAD(ip + 2 * ic), i3 = LOAD(ip + 3 * ic); \
                        a00 += i0 * w0;                                                                   \
                        a01 += i0 * w1;                                                                   \
                        a02 += i0 * w2;                                                                   \
                        a10 += i1 * w0;                                                                   \
                        a11 += i1 * w1;                                                                   \
                        a12 += i1 * w2;                                                                   \
                        a20 += i2 * w0;                                                                   \
                        a21 += i2 * w1;                                                                   \
                        a22 += i2 * w2;                                                                   \
                        a30 += i3 * w0;                                                                   \
                        a31 += i3 * w1;                                                                   \
                        a32 += i3 * w2;                                                                   \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
            float *o = out + (size_t)x * 3;                                                               \
            o[0] = HSUM(a00), o[1] = HSUM(a01), o[2] = HSUM(a02);                                         \
            o[3] = HSUM(a10), o[4] = HSUM(a11), o[5] = HSUM(a12);                                         \
            o[6] = HSUM(a20), o[7] = HSUM(a21), o[8] = HSUM(a22);                                         \
            o[9] = HSUM(a30), o[10] = HSUM(a31), o[11] = HSUM(a32);                                       \
        }                                                                                                 \
        for (; x < ow; x++) {                                                                             \
            v8 a0 = {0}, a1 = {0}, a2 = {0};                                                              \
            for (int ky = 0; ky < k; ky++)                                                                \
                for (int kx = 0; kx < k; kx++) {                                                          \
                    const T *ip = row[ky] + (size_t)(x + kx) * ic;                                        \
                    const float *wp = wpk + (size_t)(ky * k + kx) * cb * 24;                              \
                    for (int c = 0; c < cb; c++, wp += 24, ip += 8) {                                     \
                        v8 i0 = LOAD(ip);                                                                 \
                        a0 += i0 * LOAD_F32(wp);                                                          \
                        a1 += i0 * LOAD_F32(wp + 8);                                                      \
                        a2 += i0 * LOAD_F32(wp + 16);                                                     \
                    }                                                                                     \
                }                                                                                         \
            out[(size_t)x * 3] = HSUM(a0), out[(size_t)x * 3 + 1] = HSUM(a1), out[(size_t)x * 3 + 2] = HSUM(a2); \
        }                                                                                                 \
    }

SMALL_ROW(row3_f32, float, LOAD_F32)
SMALL_ROW(row3_bf16, uint16_t, LOAD_BF16)

/* Any shape: plain loops. */
static void row_generic(const void *const *row, pm_nn_dt dt, const pm_nn_small_weights *w, int ow, float *out)
{
    int ic = w->ic, oc = w->oc, k = w->k, cb = (ic + 7) / 8;
    for (int x = 0; x < ow; x++)
        for (int o = 0; o < oc; o++) {
            float acc = 0;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    for (int c = 0; c < ic; c++) {
                        size_t i = (size_t)(x + kx) * ic + c;
                        float v = dt == PM_NN_BF16 ? pm_nn_bf16_to_f32(((const uint16_t *)row[ky])[i])
                                                   : ((const float *)row[ky])[i];
                        acc += v * w->w[(((size_t)(ky * k + kx) * cb + c / 8) * oc + o) * 8 + c % 8];
                    }
            out[(size_t)x * oc + o] = acc;
        }
}

int pm_nn__run_smallconv(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    pm_nn_view vi, vo;
    int rc = pm_nn_view_from_md(&vi, &p->t[s->t_src].md);
    if (!rc)
        rc = pm_nn_view_from_md(&vo, &p->t[s->t_dst].md);
    if (rc)
        return rc;
    vi.data = arena + p->t[s->t_src].off;
    vo.data = arena + p->t[s->t_dst].off;
    const pm_nn_small_weights *w = s->sw;
    int k = w->k, oh = vo.h, ow = vo.w, oc = w->oc, nt = p->threads;
    int fast = oc == 3 && w->ic % 8 == 0 && k <= 16;
    int sigmoid = (s->flags & PM_NN_SIGMOID) != 0;
    size_t es = vi.dt == PM_NN_BF16 ? 2 : 4;
    PM_OMP_FOR_DYN(nt)
    for (int y = 0; y < oh; y++) {
        const void *row[16];
        float out[3 * 64];
        for (int ky = 0; ky < k; ky++)
            row[ky] = (const uint8_t *)vi.data + (size_t)(y + ky) * vi.sh * es;
        for (int x0 = 0; x0 < ow; x0 += 64) {
            int n = ow - x0 < 64 ? ow - x0 : 64;
            const void *r2[16];
            for (int ky = 0; ky < k; ky++)
                r2[ky] = (const uint8_t *)row[ky] + (size_t)x0 * vi.sw * es;
            float gen[4 * 64];
            float *res = fast ? out : gen;
            if (fast && vi.dt == PM_NN_F32)
                row3_f32((const float *const *)r2, w->ic, k, n, w->w, out);
            else if (fast)
                row3_bf16((const uint16_t *const *)r2, w->ic, k, n, w->w, out);
            else
                row_generic(r2, vi.dt, w, n, gen);
            for (int x = 0; x < n; x++)
                for (int o = 0; o < oc; o++) {
                    float v = res[x * oc + o] + w->bias[o];
                    if (sigmoid)
                        v = 1.0f / (1.0f + expf(-v));
                    ((float *)vo.data)[pm_nn_view_off(&vo, o, y, x0 + x)] = v;
                }
        }
    }
    return 0;
}
