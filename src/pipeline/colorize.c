/* DDColor's colorization pipeline (see colorize.h). Nothing here holds a
 * full-size float copy of the image: the original L and the upsampled ab are
 * computed per pixel while the output is written, so the memory that grows
 * with the image is the output image alone. */
#include "pipeline/colorize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "pipeline/lab.h"

pm_colorize_opts pm_colorize_default_opts(void)
{
    pm_colorize_opts o = {PM_COLORIZE_SIZE_DEFAULT, PM_UPSAMPLE_NEAREST};
    return o;
}

int pm_upsample_parse(const char *s)
{
    if (s && strcmp(s, "nearest") == 0)
        return PM_UPSAMPLE_NEAREST;
    if (s && strcmp(s, "bilinear") == 0)
        return PM_UPSAMPLE_BILINEAR;
    return -1;
}

const char *pm_upsample_name(pm_upsample u)
{
    return u == PM_UPSAMPLE_BILINEAR ? "bilinear" : "nearest";
}

/* ------------------------------------------------------ OpenCV resize */

/* Source rows for the resize: either a float image or an 8-bit one that is
 * converted (x / 255.0 in double, to float) row by row. */
typedef struct row_src {
    const float *f;       /* float image, or NULL */
    const pm_image *img;  /* 8-bit image */
    const float *lut;     /* 256 entries */
    int w, ch;
} row_src;

static const float *get_row(const row_src *s, int y, float *tmp)
{
    if (s->f)
        return s->f + (size_t)y * s->w * s->ch;
    const uint8_t *p = s->img->data + (size_t)y * s->w * s->img->channels;
    int ic = s->img->channels;
    for (int x = 0; x < s->w; x++, p += ic) {
        if (ic == 1) {
            tmp[x * 3] = tmp[x * 3 + 1] = tmp[x * 3 + 2] = s->lut[p[0]];
        } else {
            tmp[x * 3] = s->lut[p[0]];
            tmp[x * 3 + 1] = s->lut[p[1]];
            tmp[x * 3 + 2] = s->lut[p[2]];
        }
    }
    return tmp;
}

/* cv::resize INTER_LINEAR coefficients along one axis. */
static void linear_coeffs(int sn, int dn, int *ofs, float *alpha)
{
    double scale = 1.0 / ((double)dn / sn);
    for (int d = 0; d < dn; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (s < 0)
            f = 0, s = 0;
        if (s >= sn - 1)
            f = 0, s = sn - 1;
        ofs[d] = s;
        alpha[d] = f;
    }
}

/* Horizontal pass of one source row into d (dw * ch floats). */
static void hresize(const float *s, int sw, int ch, const int *xofs, const float *xa, int dw, float *d)
{
    for (int x = 0; x < dw; x++) {
        int sx = xofs[x];
        float a1 = xa[x], a0 = 1.0f - a1;
        if (sx + 1 < sw) {
            for (int c = 0; c < ch; c++)
                d[x * ch + c] = s[sx * ch + c] * a0 + s[(sx + 1) * ch + c] * a1;
        } else {
            for (int c = 0; c < ch; c++)
                d[x * ch + c] = s[sx * ch + c];
        }
    }
}

/* The resize proper; work holds 2*(sw + dw)*ch floats, plus dw + dh ints' worth. */
static void resize_rows(const row_src *src, int sh, float *dst, int dw, int dh, float *work)
{
    int sw = src->w, ch = src->ch;
    float *ta = work, *tb = ta + (size_t)sw * ch, *ha = tb + (size_t)sw * ch, *hb = ha + (size_t)dw * ch;
    float *xa = hb + (size_t)dw * ch, *ya = xa + dw;
    int *xofs = (int *)(ya + dh), *yofs = xofs + dw;
    linear_coeffs(sw, dw, xofs, xa);
    linear_coeffs(sh, dh, yofs, ya);
    int have_a = -1, have_b = -1;
    for (int y = 0; y < dh; y++) {
        int sy0 = yofs[y], sy1 = sy0 + 1 < sh ? sy0 + 1 : sh - 1;
        if (have_a != sy0) {
            if (have_b == sy0) { /* slide the window */
                float *t = ha;
                ha = hb;
                hb = t;
                have_a = sy0;
                have_b = -1;
            } else {
                hresize(get_row(src, sy0, ta), sw, ch, xofs, xa, dw, ha);
                have_a = sy0;
            }
        }
        if (have_b != sy1) {
            hresize(get_row(src, sy1, tb), sw, ch, xofs, xa, dw, hb);
            have_b = sy1;
        }
        float b1 = ya[y], b0 = 1.0f - b1;
        float *d = dst + (size_t)y * dw * ch;
        for (int i = 0; i < dw * ch; i++)
            d[i] = ha[i] * b0 + hb[i] * b1;
    }
}

static size_t resize_work_floats(int sw, int ch, int dw, int dh)
{
    return 2 * ((size_t)sw + dw) * ch + 2 * ((size_t)dw + dh);
}

int pm_resize_linear_f32(const float *src, int sw, int sh, int ch, float *dst, int dw, int dh)
{
    size_t n = resize_work_floats(sw, ch, dw, dh) * sizeof(float);
    float *work = pm_malloc(n);
    if (!work)
        return pm_errorf(PM_ENOMEM, "out of memory (%zu bytes) resizing %dx%d to %dx%d", n, sw, sh, dw, dh);
    row_src rs = {src, NULL, NULL, sw, ch};
    resize_rows(&rs, sh, dst, dw, dh, work);
    pm_free(work);
    return 0;
}

/* ------------------------------------------------------------ merge */

typedef struct merge_job {
    const pm_image *in;
    pm_image *out;
    const float *lut;
    const float *ab; /* 2 x S x S planar */
    int s;
    pm_upsample up;
    const int *nx, *ny; /* nearest source indices */
    const int *bx0, *bx1, *by0, *by1; /* bilinear */
    const float *bxl, *byl;
} merge_job;

static void merge_rows(void *user, int64_t b, int64_t e);

/* Rows [8i, 8i + 8) (pm_parallel_for). */
static int merge_band(void *user, int i)
{
    const merge_job *j = user;
    int64_t b = (int64_t)i * 8, e = b + 8 < j->in->height ? b + 8 : j->in->height;
    merge_rows(user, b, e);
    return 0;
}

static void merge_rows(void *user, int64_t b, int64_t e)
{
    const merge_job *j = user;
    const pm_image *in = j->in;
    int w = in->width, ic = in->channels, oc = j->out->channels, S = j->s;
    size_t plane = (size_t)S * S;
    for (int64_t y = b; y < e; y++) {
        const uint8_t *ip = in->data + (size_t)y * w * ic;
        uint8_t *op = j->out->data + (size_t)y * w * oc;
        for (int x = 0; x < w; x++, ip += ic, op += oc) {
            float rgb[3], L, ab[2];
            if (ic < 3)
                rgb[0] = rgb[1] = rgb[2] = j->lut[ip[0]];
            else
                rgb[0] = j->lut[ip[0]], rgb[1] = j->lut[ip[1]], rgb[2] = j->lut[ip[2]];
            pm_rgb_to_l_f32(rgb, 3, &L, 1);
            for (int k = 0; k < 2; k++) {
                const float *a = j->ab + k * plane;
                if (j->up == PM_UPSAMPLE_NEAREST) {
                    ab[k] = a[(size_t)j->ny[y] * S + j->nx[x]];
                } else {
                    float h1 = j->byl[y], h0 = 1.0f - h1, w1 = j->bxl[x], w0 = 1.0f - w1;
                    const float *r0 = a + (size_t)j->by0[y] * S, *r1 = a + (size_t)j->by1[y] * S;
                    ab[k] = h0 * (w0 * r0[j->bx0[x]] + w1 * r0[j->bx1[x]]) +
                            h1 * (w0 * r1[j->bx0[x]] + w1 * r1[j->bx1[x]]);
                }
            }
            float o[3];
            pm_lab_to_rgb_f32(&L, &ab[0], &ab[1], 1, o, 3, 1);
            for (int c = 0; c < 3; c++)
                op[c] = (uint8_t)rintf(o[c] * 255.0f);
            if (oc == 4)
                op[3] = ic == 4 ? ip[3] : 255;
        }
    }
}

/* PyTorch's nearest source index: min(floor(float(i) * (float(in) / out)), in-1). */
static void nearest_index(int in, int out, int *idx)
{
    float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        int s;
        if (out == in)
            s = i;
        else if (out == 2 * in)
            s = i >> 1;
        else
            s = (int)floorf((float)i * scale);
        idx[i] = s < in - 1 ? s : in - 1;
    }
}

/* PyTorch's bilinear (align_corners=False) source indices and weights. */
static void bilinear_index(int in, int out, int *i0, int *i1, float *l1)
{
    float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        float s = scale * ((float)i + 0.5f) - 0.5f;
        if (s < 0)
            s = 0;
        int a = (int)s;
        i0[i] = a;
        i1[i] = a + (a < in - 1 ? 1 : 0);
        l1[i] = s - (float)a;
    }
}

int pm_colorize_run(const pm_model_desc *model, void *state, const pm_image *in, const pm_colorize_opts *opts,
                    pm_image *out, const pm_run_ctx *ctx)
{
    memset(out, 0, sizeof *out);
    pm_colorize_opts o = opts ? *opts : pm_colorize_default_opts();
    if (!model || !model->colorize)
        return pm_errorf(PM_EINVAL, "colorize needs a loaded colorization model (--model ddcolor.pth)");
    if (!in || !in->data || in->width < 1 || in->height < 1 ||
        (in->channels != 1 && in->channels != 3 && in->channels != 4))
        return pm_errorf(PM_EINVAL, "colorize needs a grey, RGB or RGBA image (got %d channels, %dx%d)",
                         in ? in->channels : 0, in ? in->width : 0, in ? in->height : 0);
    if (o.input_size < PM_COLORIZE_SIZE_MIN || o.input_size > PM_COLORIZE_SIZE_MAX ||
        o.input_size % PM_COLORIZE_SIZE_STEP)
        return pm_errorf(PM_EINVAL, "input size %d is not a multiple of %d from %d to %d; use e.g. %d",
                         o.input_size, PM_COLORIZE_SIZE_STEP, PM_COLORIZE_SIZE_MIN, PM_COLORIZE_SIZE_MAX,
                         PM_COLORIZE_SIZE_DEFAULT);
    if (o.upsample != PM_UPSAMPLE_NEAREST && o.upsample != PM_UPSAMPLE_BILINEAR)
        return pm_errorf(PM_EINVAL, "unknown upsampling mode %d; use nearest or bilinear", (int)o.upsample);
    int S = o.input_size, w = in->width, h = in->height;
    size_t plane = (size_t)S * S;
    float lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = (float)(i / 255.0);

    /* One block: resized RGB (3 planes' worth), its L, the network input, ab,
     * the resize work area and the index tables. */
    size_t idx_ints = 4 * ((size_t)w + h);
    size_t nwork = resize_work_floats(w, 3, S, S);
    size_t total = plane * 3 + plane + plane * 3 + plane * 2 + nwork + 2 * ((size_t)w + h) + idx_ints;
    float *block = pm_malloc(total * sizeof(float));
    if (!block)
        return pm_errorf(PM_ENOMEM, "out of memory: colorizing at input size %d needs %zu MB", S,
                         total * sizeof(float) >> 20);
    float *small = block, *sl = small + plane * 3, *xin = sl + plane, *ab = xin + plane * 3, *work = ab + plane * 2;
    float *bxl = work + nwork, *byl = bxl + w;
    int *nx = (int *)(byl + h), *ny = nx + w, *bx0 = ny + h, *bx1 = bx0 + w, *by0 = bx1 + w, *by1 = by0 + h;

    row_src rs = {NULL, in, lut, w, 3};
    resize_rows(&rs, h, small, S, S, work);
    pm_rgb_to_l_f32(small, 3, sl, plane);
    /* RGB of (L, 0, 0), interleaved into `small`, then planar into xin. */
    for (size_t i = 0; i < plane; i++)
        ab[i] = 0.0f;
    pm_lab_to_rgb_f32(sl, ab, ab, 1, small, 3, plane);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++)
            xin[c * plane + i] = small[i * 3 + c];

    int rc = model->colorize(state, xin, S, ab, ctx);
    if (rc)
        goto free_block;

    rc = pm_image_alloc(out, w, h, in->channels == 4 ? 4 : 3);
    if (rc)
        goto free_block;
    nearest_index(S, w, nx);
    nearest_index(S, h, ny);
    bilinear_index(S, w, bx0, bx1, bxl);
    bilinear_index(S, h, by0, by1, byl);
    merge_job j = {in, out, lut, ab, S, o.upsample, nx, ny, bx0, bx1, by0, by1, bxl, byl};
    pm_parallel_for((h + 7) / 8, 0, merge_band, &j);
free_block:
    pm_free(block);
    return rc;
}
