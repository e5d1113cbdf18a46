/* nn layer: each op checked against a direct (naive) computation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "nn/nn.h"

/* ------------------------------------------------------------ helpers */

static uint32_t rng_state = 12345;
static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static float *rand_buf(size_t n)
{
    float *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++)
        b[i] = frand();
    return b;
}

/* io: fill from / read into nchw float arrays */
typedef struct io_buf {
    const float *in;
    float *out;
    int oc, oh, ow;
} io_buf;

static float get_el(const pm_nn_view *v, int c, int h, int w)
{
    ptrdiff_t o = pm_nn_view_off(v, c, h, w);
    if (v->dt == PM_NN_BF16)
        return pm_nn_bf16_to_f32(((const uint16_t *)v->data)[o]);
    return ((const float *)v->data)[o];
}
static void set_el(const pm_nn_view *v, int c, int h, int w, float x)
{
    ptrdiff_t o = pm_nn_view_off(v, c, h, w);
    if (v->dt == PM_NN_BF16)
        ((uint16_t *)v->data)[o] = pm_nn_f32_to_bf16(x);
    else
        ((float *)v->data)[o] = x;
}
static int fill_cb(void *user, const pm_nn_view *v)
{
    io_buf *b = user;
    for (int c = 0; c < v->c; c++)
        for (int h = 0; h < v->h; h++)
            for (int w = 0; w < v->w; w++)
                set_el(v, c, h, w, b->in[((size_t)c * v->h + h) * v->w + w]);
    return 0;
}
static int read_cb(void *user, const pm_nn_view *v)
{
    io_buf *b = user;
    b->oc = v->c;
    b->oh = v->h;
    b->ow = v->w;
    b->out = malloc((size_t)v->c * v->h * v->w * sizeof(float));
    for (int c = 0; c < v->c; c++)
        for (int h = 0; h < v->h; h++)
            for (int w = 0; w < v->w; w++)
                b->out[((size_t)c * v->h + h) * v->w + w] = get_el(v, c, h, w);
    return 0;
}

static int reflect(int i, int n)
{
    return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
}

/* naive reflect-padded conv (stride s, no bias) */
static float *naive_conv(const float *x, int ic, int h, int w, const float *wt, const float *bias, int oc, int k,
                         int s, int pad, int *oh, int *ow)
{
    int hp = h + 2 * pad, wp = w + 2 * pad;
    *oh = (hp - k) / s + 1;
    *ow = (wp - k) / s + 1;
    float *y = calloc((size_t)oc * *oh * *ow, sizeof *y);
    for (int o = 0; o < oc; o++)
        for (int yy = 0; yy < *oh; yy++)
            for (int xx = 0; xx < *ow; xx++) {
                double acc = bias ? bias[o] : 0;
                for (int i = 0; i < ic; i++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int sy = reflect(yy * s + ky - pad, h), sx = reflect(xx * s + kx - pad, w);
                            acc += (double)x[((size_t)i * h + sy) * w + sx] *
                                   wt[(((size_t)o * ic + i) * k + ky) * k + kx];
                        }
                y[((size_t)o * *oh + yy) * *ow + xx] = (float)acc;
            }
    return y;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m)
            m = d;
    }
    return m;
}

static pm_nn_ctx *ctx;

static int setup(void **state)
{
    (void)state;
    return pm_nn_ctx_create(&ctx);
}
static int teardown(void **state)
{
    (void)state;
    pm_nn_ctx_destroy(ctx);
    return 0;
}

/* --------------------------------------------------------------- tests */

/* reflect pad + 3x3 conv (+ BN folded, ReLU), direct and Winograd, odd sizes */
static void conv_case(int ic, int oc, int h, int w, int stride, unsigned extra)
{
    int k = 3, pad = 1;
    float *x = rand_buf((size_t)ic * h * w);
    float *wt = rand_buf((size_t)oc * ic * k * k);
    float *bias = calloc((size_t)oc, sizeof *bias);
    float *g = rand_buf(oc), *b = rand_buf(oc), *m = rand_buf(oc), *v = rand_buf(oc);
    for (int i = 0; i < oc; i++)
        v[i] = fabsf(v[i]) + 0.5f;
    /* expected: BN(conv(x)) then ReLU */
    int oh, ow;
    float *ref = naive_conv(x, ic, h, w, wt, NULL, oc, k, stride, pad, &oh, &ow);
    for (int o = 0; o < oc; o++) {
        float s = g[o] / sqrtf(v[o] + 1e-5f);
        for (int i = 0; i < oh * ow; i++) {
            float y = (ref[(size_t)o * oh * ow + i] - m[o]) * s + b[o];
            ref[(size_t)o * oh * ow + i] = y > 0 ? y : 0;
        }
    }
    pm_nn_fold_bn(wt, bias, oc, ic, k * k, 0, g, b, m, v, 1e-5f, 1);
    pm_nn_conv_desc d = {.ic = ic, .oc = oc, .kh = k, .kw = k, .stride = stride, .dt = PM_NN_F32, .ref_h = h + 2, .ref_w = w + 2,
                         .winograd = (extra & PM_NN_WINOGRAD) != 0};
    pm_nn_weights W;
    assert_int_equal(pm_nn_weights_init(ctx, &W, &d, wt, bias), 0);
    pm_nn_plan *p;
    assert_int_equal(pm_nn_plan_begin(ctx, 2, &p), 0);
    pm_nn_t in = pm_nn_input(p, ic, h, w, PM_NN_F32);
    pm_nn_t padt = pm_nn_pad_reflect(p, "pad", in, pad, -1);
    pm_nn_t out = pm_nn_conv(p, "conv", padt, &W, PM_NN_RELU | extra, -1, PM_NN_F32, 1.0f);
    pm_nn_output(p, out);
    int rc = pm_nn_plan_finish(p);
    if (rc)
        print_message("%s\n", pm_error_detail());
    assert_int_equal(rc, 0);
    if (extra & PM_NN_WINOGRAD) {
        char *desc = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&desc, &len);
        pm_nn_plan_describe(p, f, 1);
        fclose(f);
        assert_non_null(strstr(desc, "wino"));
        free(desc);
    }
    io_buf io = {.in = x};
    pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io};
    size_t before = pm_mem_in_use();
    assert_int_equal(pm_nn_plan_run(p, &rio), 0);
    /* the arena is returned after the run */
    assert_int_equal(pm_mem_in_use(), before);
    assert_int_equal(io.oc, oc);
    assert_int_equal(io.oh, oh);
    assert_int_equal(io.ow, ow);
    double e = max_abs_diff(io.out, ref, (size_t)oc * oh * ow);
    assert_true(e < 1e-4);
    pm_nn_plan_free(p);
    pm_nn_weights_free(&W);
    free(io.out);
    free(ref);
    free(x);
    free(wt);
    free(bias);
    free(g);
    free(b);
    free(m);
    free(v);
}

static void test_conv_direct(void **state)
{
    (void)state;
    conv_case(16, 32, 13, 11, 1, 0);
    conv_case(32, 16, 10, 14, 2, 0);
    conv_case(4, 16, 9, 9, 1, 0);
}

static void test_conv_winograd(void **state)
{
    (void)state;
    conv_case(32, 48, 12, 20, 1, PM_NN_WINOGRAD);
}

/* out = relu(conv_a(x) + conv_b(y)) via the sum post-op, then x2 = out + x in place */
static void test_sum_and_add(void **state)
{
    (void)state;
    int c = 16, h = 8, w = 12;
    float *x = rand_buf((size_t)c * h * w);
    float *wa = rand_buf((size_t)c * c), *wb = rand_buf((size_t)c * c), *ba = rand_buf(c);
    pm_nn_conv_desc d = {.ic = c, .oc = c, .kh = 1, .kw = 1, .stride = 1, .dt = PM_NN_F32, .ref_h = h, .ref_w = w};
    pm_nn_weights A, B;
    assert_int_equal(pm_nn_weights_init(ctx, &A, &d, wa, ba), 0);
    assert_int_equal(pm_nn_weights_init(ctx, &B, &d, wb, NULL), 0);
    pm_nn_plan *p;
    assert_int_equal(pm_nn_plan_begin(ctx, 2, &p), 0);
    pm_nn_t in = pm_nn_input(p, c, h, w, PM_NN_F32);
    pm_nn_t t = pm_nn_conv(p, "a", in, &A, 0, -1, PM_NN_F32, 2.0f);
    pm_nn_conv(p, "b", in, &B, PM_NN_SUM | PM_NN_RELU, t, PM_NN_F32, 1.0f);
    pm_nn_t cat = pm_nn_concat(p, "cat", t, in);
    pm_nn_add(p, "add", t, in);
    pm_nn_t cat2 = pm_nn_concat(p, "cat2", cat, t);
    pm_nn_output(p, cat2);
    assert_int_equal(pm_nn_plan_finish(p), 0);
    io_buf io = {.in = x};
    pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io};
    assert_int_equal(pm_nn_plan_run(p, &rio), 0);
    assert_int_equal(io.oc, 3 * c);
    size_t hw = (size_t)h * w;
    double e = 0;
    for (int o = 0; o < c; o++)
        for (size_t i = 0; i < hw; i++) {
            double acc = 2.0 * ba[o];
            for (int j = 0; j < c; j++)
                acc += ((double)wa[o * c + j] + wb[o * c + j]) * x[j * hw + i];
            double r = acc > 0 ? acc : 0;
            e = fmax(e, fabs(io.out[o * hw + i] - r));
            e = fmax(e, fabs(io.out[(c + o) * hw + i] - x[o * hw + i]));
            e = fmax(e, fabs(io.out[(2 * c + o) * hw + i] - (r + x[o * hw + i])));
        }
    assert_true(e < 1e-4);
    pm_nn_plan_free(p);
    pm_nn_weights_free(&A);
    pm_nn_weights_free(&B);
    free(io.out);
    free(x);
    free(wa);
    free(wb);
    free(ba);
}

/* ConvTranspose2d(ic, oc, 3, stride 2, padding 1, output_padding 1) as PyTorch defines it */
static void test_deconv(void **state)
{
    (void)state;
    int ic = 16, oc = 32, h = 5, w = 7, k = 3;
    float *x = rand_buf((size_t)ic * h * w);
    float *wt = rand_buf((size_t)ic * oc * k * k); /* [ic][oc][k][k] */
    float *bias = rand_buf(oc);
    int oh = 2 * h, ow = 2 * w;
    double *ref = calloc((size_t)oc * oh * ow, sizeof *ref);
    for (int o = 0; o < oc; o++)
        for (int i = 0; i < oh * ow; i++)
            ref[(size_t)o * oh * ow + i] = bias[o];
    for (int i = 0; i < ic; i++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int o = 0; o < oc; o++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int Y = y * 2 - 1 + ky, X = xx * 2 - 1 + kx;
                            if (Y < 0 || Y >= oh || X < 0 || X >= ow)
                                continue;
                            ref[((size_t)o * oh + Y) * ow + X] +=
                                (double)x[((size_t)i * h + y) * w + xx] * wt[(((size_t)i * oc + o) * k + ky) * k + kx];
                        }
    pm_nn_conv_desc d = {.ic = ic, .oc = oc, .kh = k, .kw = k, .stride = 2, .transposed = 1, .pad_t = 1, .pad_l = 1,
                         .dt = PM_NN_F32, .ref_h = h, .ref_w = w};
    pm_nn_weights W;
    assert_int_equal(pm_nn_weights_init(ctx, &W, &d, wt, bias), 0);
    pm_nn_plan *p;
    assert_int_equal(pm_nn_plan_begin(ctx, 2, &p), 0);
    pm_nn_t in = pm_nn_input(p, ic, h, w, PM_NN_F32);
    pm_nn_output(p, pm_nn_conv(p, "deconv", in, &W, 0, -1, PM_NN_F32, 1.0f));
    assert_int_equal(pm_nn_plan_finish(p), 0);
    io_buf io = {.in = x};
    pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io};
    assert_int_equal(pm_nn_plan_run(p, &rio), 0);
    assert_int_equal(io.oh, oh);
    assert_int_equal(io.ow, ow);
    double e = 0;
    for (size_t i = 0; i < (size_t)oc * oh * ow; i++)
        e = fmax(e, fabs(io.out[i] - ref[i]));
    assert_true(e < 1e-4);
    pm_nn_plan_free(p);
    pm_nn_weights_free(&W);
    free(io.out);
    free(ref);
    free(x);
    free(wt);
    free(bias);
}

/* rfft2 against a direct DFT; rfft2 -> irfft2_add round trip (odd and even widths) */
static void fft_case(int c, int h, int w, int blocked)
{
    float *x = rand_buf((size_t)c * h * w);
    int wf = w / 2 + 1;
    pm_nn_weights I;
    float *eye = calloc((size_t)c * c, sizeof *eye);
    for (int i = 0; i < c; i++)
        eye[i * c + i] = 1;
    /* a 1x1 identity conv first lets oneDNN pick a (blocked) layout for the FFT input */
    pm_nn_conv_desc d = {.ic = c, .oc = c, .kh = 1, .kw = 1, .stride = 1, .dt = PM_NN_F32, .ref_h = h, .ref_w = w};
    assert_int_equal(pm_nn_weights_init(ctx, &I, &d, eye, NULL), 0);
    for (int round = 0; round < 2; round++) {
        pm_nn_plan *p;
        assert_int_equal(pm_nn_plan_begin(ctx, 2, &p), 0);
        pm_nn_t in = pm_nn_input(p, c, h, w, PM_NN_F32);
        pm_nn_t s = blocked ? pm_nn_conv(p, "id", in, &I, 0, -1, PM_NN_F32, 1.0f) : in;
        pm_nn_t f = pm_nn_rfft2(p, "rfft", s);
        if (round == 0) {
            pm_nn_output(p, f);
        } else {
            pm_nn_t y = pm_nn_irfft2_add(p, "irfft", f, w, 1.0f / (float)(h * w), s, PM_NN_F32);
            pm_nn_output(p, y);
        }
        assert_int_equal(pm_nn_plan_finish(p), 0);
        io_buf io = {.in = x};
        pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io};
        assert_int_equal(pm_nn_plan_run(p, &rio), 0);
        double e = 0;
        if (round == 0) {
            assert_int_equal(io.oc, 2 * c);
            assert_int_equal(io.ow, wf);
            for (int ch = 0; ch < c; ch++)
                for (int u = 0; u < h; u++)
                    for (int v = 0; v < wf; v++) {
                        double re = 0, im = 0;
                        for (int y = 0; y < h; y++)
                            for (int xx = 0; xx < w; xx++) {
                                double a = -2 * M_PI * ((double)u * y / h + (double)v * xx / w);
                                double val = x[((size_t)ch * h + y) * w + xx];
                                re += val * cos(a);
                                im += val * sin(a);
                            }
                        e = fmax(e, fabs(io.out[((size_t)(2 * ch) * h + u) * wf + v] - re));
                        e = fmax(e, fabs(io.out[((size_t)(2 * ch + 1) * h + u) * wf + v] - im));
                    }
            assert_true(e < 1e-3);
        } else {
            for (size_t i = 0; i < (size_t)c * h * w; i++)
                e = fmax(e, fabs(io.out[i] - 2.0 * x[i]));
            assert_true(e < 1e-5);
        }
        free(io.out);
        pm_nn_plan_free(p);
    }
    pm_nn_weights_free(&I);
    free(eye);
    free(x);
}

static void test_fft(void **state)
{
    (void)state;
    fft_case(16, 8, 12, 1);
    fft_case(16, 7, 9, 1);
    fft_case(3, 6, 5, 0);
}

static int cancel_cb(void *user, int value, int max)
{
    int *seen = user;
    *seen = value;
    (void)max;
    return value >= 2;
}

static void test_progress_cancel(void **state)
{
    (void)state;
    int c = 16;
    float *x = rand_buf((size_t)c * 16);
    pm_nn_plan *p;
    assert_int_equal(pm_nn_plan_begin(ctx, 1, &p), 0);
    pm_nn_t in = pm_nn_input(p, c, 4, 4, PM_NN_F32);
    pm_nn_t a = pm_nn_pad_reflect(p, "pad", in, 1, -1);
    pm_nn_mark(p, 1);
    pm_nn_t b = pm_nn_pad_reflect(p, "pad2", a, 1, -1);
    pm_nn_mark(p, 2);
    pm_nn_t c2 = pm_nn_pad_reflect(p, "pad3", b, 1, -1);
    pm_nn_output(p, c2);
    assert_int_equal(pm_nn_plan_finish(p), 0);
    int seen = 0;
    io_buf io = {.in = x};
    size_t before = pm_mem_in_use();
    pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io, .progress = cancel_cb, .progress_user = &seen,
                        .progress_max = 2};
    assert_int_equal(pm_nn_plan_run(p, &rio), PM_ECANCELLED);
    assert_int_equal(seen, 2);
    assert_null(io.out);
    assert_int_equal(pm_mem_in_use(), before);
    pm_nn_plan_free(p);
    free(x);
}

/* reflect pad of 2, with the fused in-place add */
static void test_pad_add(void **state)
{
    (void)state;
    int c = 5, h = 4, w = 6, pad = 2;
    float *x = rand_buf((size_t)c * h * w);
    pm_nn_plan *p;
    assert_int_equal(pm_nn_plan_begin(ctx, 2, &p), 0);
    pm_nn_t in = pm_nn_input(p, c, h, w, PM_NN_F32);
    pm_nn_t r = pm_nn_pad_reflect(p, "pad", in, pad, -1);
    /* then pad(x + x, 2) through the fused in-place add */
    pm_nn_t s = pm_nn_pad_reflect(p, "padadd", in, pad, in);
    pm_nn_t cat = pm_nn_concat(p, "cat", r, s);
    pm_nn_output(p, cat);
    assert_int_equal(pm_nn_plan_finish(p), 0);
    io_buf io = {.in = x};
    pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io};
    assert_int_equal(pm_nn_plan_run(p, &rio), 0);
    int H = h + 2 * pad, W = w + 2 * pad;
    double e = 0;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                float v = x[((size_t)ch * h + reflect(y - pad, h)) * w + reflect(xx - pad, w)];
                e = fmax(e, fabs(io.out[((size_t)ch * H + y) * W + xx] - v));
                e = fmax(e, fabs(io.out[((size_t)(c + ch) * H + y) * W + xx] - 2 * v));
            }
    assert_true(e == 0);
    free(io.out);
    pm_nn_plan_free(p);
    free(x);
}

/* bf16 convolution close to f32 */
static void test_bf16_conv(void **state)
{
    (void)state;
    if (!pm_nn_cpu_has_bf16())
        skip();
    int ic = 32, oc = 32, h = 16, w = 16;
    float *x = rand_buf((size_t)ic * h * w), *wt = rand_buf((size_t)oc * ic * 9);
    int oh, ow;
    float *ref = naive_conv(x, ic, h, w, wt, NULL, oc, 3, 1, 1, &oh, &ow);
    pm_nn_conv_desc d = {.ic = ic, .oc = oc, .kh = 3, .kw = 3, .stride = 1, .dt = PM_NN_BF16, .ref_h = h + 2, .ref_w = w + 2};
    pm_nn_weights W;
    assert_int_equal(pm_nn_weights_init(ctx, &W, &d, wt, NULL), 0);
    pm_nn_plan *p;
    assert_int_equal(pm_nn_plan_begin(ctx, 2, &p), 0);
    pm_nn_t in = pm_nn_input(p, ic, h, w, PM_NN_BF16);
    pm_nn_t q = pm_nn_pad_reflect(p, "pad", in, 1, -1);
    pm_nn_output(p, pm_nn_conv(p, "conv", q, &W, 0, -1, PM_NN_F32, 1.0f));
    assert_int_equal(pm_nn_plan_finish(p), 0);
    io_buf io = {.in = x};
    pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io};
    assert_int_equal(pm_nn_plan_run(p, &rio), 0);
    double se = 0, sr = 0;
    for (size_t i = 0; i < (size_t)oc * oh * ow; i++) {
        se += (io.out[i] - ref[i]) * (io.out[i] - ref[i]);
        sr += ref[i] * ref[i];
    }
    /* bf16 has 8 mantissa bits: relative error around 2^-8 */
    assert_true(sqrt(se / sr) < 1e-2);
    assert_true(sqrt(se / sr) > 1e-6); /* it really ran in bf16 */
    free(io.out);
    pm_nn_plan_free(p);
    pm_nn_weights_free(&W);
    free(ref);
    free(x);
    free(wt);
}

/* a 3x3 reflect-padded convolution computed in row bands (row views, padding
 * windows, convolutions into views) equals the whole one */
static void test_bands(void **state)
{
    (void)state;
    int c = 16, h = 20, w = 12, k = 3;
    float *x = rand_buf((size_t)c * h * w), *wt = rand_buf((size_t)c * c * k * k), *b = rand_buf(c);
    pm_nn_conv_desc d = {.ic = c, .oc = c, .kh = k, .kw = k, .stride = 1, .dt = PM_NN_F32, .ref_h = h, .ref_w = w};
    pm_nn_weights W;
    assert_int_equal(pm_nn_weights_init(ctx, &W, &d, wt, b), 0);
    pm_nn_plan *p;
    assert_int_equal(pm_nn_plan_begin(ctx, 2, &p), 0);
    pm_nn_plan_set_layout(p, PM_NN_LAYOUT_NHWC);
    pm_nn_t in = pm_nn_input(p, c, h, w, PM_NN_F32);
    pm_nn_t full = pm_nn_conv(p, "full", pm_nn_pad_reflect(p, "pad", in, 1, -1), &W, PM_NN_RELU, -1, PM_NN_F32, 1.0f);
    pm_nn_t banded = pm_nn_conv(p, "shape", pm_nn_pad_reflect(p, "pad2", in, 1, -1), &W, 0, -1, PM_NN_F32, 1.0f);
    static const int cuts[] = {0, 7, 8, 14, 20};
    for (int i = 0; i + 1 < 5; i++) {
        int r0 = cuts[i], r1 = cuts[i + 1];
        int s0 = r0 > 0 ? r0 - 1 : 0, s1 = r1 < h ? r1 + 1 : h;
        pm_nn_t src = pm_nn_rows(p, in, s0, s1);
        pm_nn_t win = pm_nn_pad_window(p, "window", src, s0, h, r0 - 1, r1 + 1, 1);
        pm_nn_conv(p, "band", win, &W, PM_NN_RELU | PM_NN_INTO, pm_nn_rows(p, banded, r0, r1), PM_NN_F32, 1.0f);
    }
    /* zero padding then reflect_border gives the reflect padding */
    float *eye = calloc((size_t)c * c, sizeof *eye);
    for (int i = 0; i < c; i++)
        eye[i * c + i] = 1;
    pm_nn_conv_desc di = {.ic = c, .oc = c, .kh = 1, .kw = 1, .stride = 1, .pad_t = 2, .pad_l = 2, .pad_b = 2,
                          .pad_r = 2, .dt = PM_NN_F32, .ref_h = h, .ref_w = w};
    pm_nn_weights I;
    assert_int_equal(pm_nn_weights_init(ctx, &I, &di, eye, NULL), 0);
    pm_nn_t zp = pm_nn_conv(p, "zeropad", in, &I, 0, -1, PM_NN_F32, 1.0f);
    pm_nn_reflect_border(p, "border", zp, 2, 2, 2, 2);
    pm_nn_t rp = pm_nn_pad_reflect(p, "pad3", in, 2, -1);
    pm_nn_t cat = pm_nn_concat(p, "cat", full, banded);
    pm_nn_t cat2 = pm_nn_concat(p, "cat2", zp, rp);
    pm_nn_output(p, pm_nn_concat(p, "cat3", pm_nn_pad_reflect(p, "pad4", cat, 2, -1), cat2));
    int rc = pm_nn_plan_finish(p);
    if (rc)
        print_message("%s\n", pm_error_detail());
    assert_int_equal(rc, 0);
    io_buf io = {.in = x};
    pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io};
    assert_int_equal(pm_nn_plan_run(p, &rio), 0);
    size_t plane = (size_t)(h + 4) * (w + 4);
    double e1 = 0, e2 = 0, m = 0;
    for (int ch = 0; ch < c; ch++)
        for (size_t i = 0; i < plane; i++) {
            e1 = fmax(e1, fabs(io.out[ch * plane + i] - io.out[(c + ch) * plane + i]));
            e2 = fmax(e2, fabs(io.out[(2 * c + ch) * plane + i] - io.out[(3 * c + ch) * plane + i]));
            m = fmax(m, fabs(io.out[ch * plane + i]));
        }
    assert_true(m > 0.1);
    assert_true(e1 < 1e-5);
    assert_true(e2 == 0);
    free(io.out);
    pm_nn_plan_free(p);
    pm_nn_weights_free(&W);
    pm_nn_weights_free(&I);
    free(eye);
    free(x);
    free(wt);
    free(b);
}

/* the few-output-channel kernel against a direct computation: the vector
 * path (3 outputs, channels a multiple of 8; f32 and bf16) and the generic one */
static void small_case(int ic, int oc, int k, int h, int w, pm_nn_dt dt)
{
    float *x = rand_buf((size_t)ic * h * w), *wt = rand_buf((size_t)oc * ic * k * k), *b = rand_buf(oc);
    if (dt == PM_NN_BF16)
        for (size_t i = 0; i < (size_t)ic * h * w; i++)
            x[i] = pm_nn_bf16_to_f32(pm_nn_f32_to_bf16(x[i]));
    pm_nn_small_weights W;
    assert_int_equal(pm_nn_small_weights_init(&W, ic, oc, k, wt, b), 0);
    pm_nn_plan *p;
    assert_int_equal(pm_nn_plan_begin(ctx, 2, &p), 0);
    pm_nn_plan_set_layout(p, PM_NN_LAYOUT_NHWC);
    pm_nn_t in = pm_nn_input(p, ic, h, w, dt);
    pm_nn_output(p, pm_nn_conv_small(p, "small", in, &W, PM_NN_SIGMOID, -1));
    assert_int_equal(pm_nn_plan_finish(p), 0);
    io_buf io = {.in = x};
    pm_nn_run_io rio = {.fill = fill_cb, .read = read_cb, .user = &io};
    assert_int_equal(pm_nn_plan_run(p, &rio), 0);
    int oh = h - k + 1, ow = w - k + 1;
    assert_int_equal(io.oc, oc);
    assert_int_equal(io.oh, oh);
    assert_int_equal(io.ow, ow);
    double e = 0;
    for (int o = 0; o < oc; o++)
        for (int y = 0; y < oh; y++)
            for (int xx = 0; xx < ow; xx++) {
                double acc = b[o];
                for (int c = 0; c < ic; c++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                            acc += (double)x[((size_t)c * h + y + ky) * w + xx + kx] *
                                   wt[(((size_t)o * ic + c) * k + ky) * k + kx];
                e = fmax(e, fabs(io.out[((size_t)o * oh + y) * ow + xx] - 1.0 / (1.0 + exp(-acc))));
            }
    assert_true(e < 1e-5);
    free(io.out);
    pm_nn_plan_free(p);
    pm_nn_small_weights_free(&W);
    free(x);
    free(wt);
    free(b);
}

static void test_small_conv(void **state)
{
    (void)state;
    small_case(16, 3, 7, 12, 75, PM_NN_F32);
    small_case(64, 3, 3, 9, 10, PM_NN_F32);
    small_case(16, 3, 7, 10, 70, PM_NN_BF16);
    small_case(5, 2, 3, 8, 9, PM_NN_F32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_direct),   cmocka_unit_test(test_conv_winograd), cmocka_unit_test(test_sum_and_add),
        cmocka_unit_test(test_deconv),        cmocka_unit_test(test_fft),           cmocka_unit_test(test_progress_cancel),
        cmocka_unit_test(test_pad_add),       cmocka_unit_test(test_bf16_conv),     cmocka_unit_test(test_bands),
        cmocka_unit_test(test_small_conv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
