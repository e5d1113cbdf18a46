/* sRGB <-> L*a*b* the way OpenCV 4.x converts CV_32F images (see lab.h).
 *
 * Every table is built with single-precision operations in the order OpenCV
 * builds its own (which uses a software IEEE float), and with correctly
 * rounded double-precision gamma curves, so that table entries are equal,
 * not merely close. The unit test compares them against cv2 at run time. */
#include "pipeline/lab.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* The sRGB -> XYZ matrix (rows X, Y, Z; columns R, G, B), its inverse, and
 * the D65 white point, as OpenCV states them. */
static const double rgb2xyz[9] = {0.412453, 0.357580, 0.180423, 0.212671, 0.715160,
                                  0.072169, 0.019334, 0.119193, 0.950227};
static const double xyz2rgb[9] = {3.240479,  -1.53715,  -0.498535, -0.969256, 1.875991,
                                  0.041556,  0.055648,  -0.204043, 1.057311};
static const double d65[3] = {0.950456, 1.0, 1.088754};

enum {
    LUT_SHIFT = 5,
    LUT_DIM = (1 << LUT_SHIFT) + 1, /* 33 grid points per axis */
    BASE_SHIFT = 14,
    BASE = 1 << BASE_SHIFT,          /* inputs are rounded to 1/16384 */
    TRI_SHIFT = 8 - LUT_SHIFT + 1,   /* 4 bits of position inside a cell */
    TRI_BASE = 1 << TRI_SHIFT,
    GAMMA_TAB = 1024,                /* segments of the sRGB spline */
};

/* RGB -> Lab grid: for each cell origin (x = blue, y = green, z = red) the
 * 8 corner values of L, then of a, then of b (24 int16), as OpenCV packs them. */
static int16_t lab_lut[LUT_DIM * LUT_DIM * LUT_DIM * 3 * 8];
/* Trilinear weights for each in-cell position, 8 per position, summing to 2^12. */
static int16_t tri_w[TRI_BASE * TRI_BASE * TRI_BASE * 8];
/* Linear -> sRGB spline: 4 coefficients per segment. */
static float inv_gamma_spline[GAMMA_TAB * 4];
/* Lab -> RGB matrix (XYZ -> RGB scaled by the white point), rows R, G, B. */
static float lab2rgb_c[9];

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static float srgb_to_linear(float x)
{
    double xd = x;
    return (float)(xd <= 809.0 / 20000.0 ? xd / (323.0 / 25.0)
                                         : pow((xd + 11.0 / 200.0) / (1.0 + 11.0 / 200.0), 12.0 / 5.0));
}

static float linear_to_srgb(float x)
{
    double xd = x;
    return (float)(xd <= 7827.0 / 2500000.0 ? xd * (323.0 / 25.0)
                                            : pow(xd, 1.0 / (12.0 / 5.0)) * (1.0 + 11.0 / 200.0) - 11.0 / 200.0);
}

/* Cubic spline through f[0..n] with natural ends; tab gets 4 coefficients per
 * segment. Float operations in OpenCV's order. */
static void spline_build(const float *f, int n, float *tab)
{
    tab[0] = tab[1] = 0.0f;
    for (int i = 1; i < n; i++) {
        float t = (f[i + 1] - f[i] * 2.0f + f[i - 1]) * 3.0f;
        float l = 1.0f / (4.0f - tab[(i - 1) * 4]);
        tab[i * 4] = l;
        tab[i * 4 + 1] = (t - tab[(i - 1) * 4 + 1]) * l;
    }
    float cn = 0.0f;
    for (int j = 0; j < n; j++) {
        int i = n - j - 1;
        float c = tab[i * 4 + 1] - tab[i * 4] * cn;
        float b = f[i + 1] - f[i] - (cn + c * 2.0f) / 3.0f;
        float d = (cn - c) / 3.0f;
        tab[i * 4] = f[i];
        tab[i * 4 + 1] = b;
        tab[i * 4 + 2] = c;
        tab[i * 4 + 3] = d;
        cn = c;
    }
}

static inline float spline_eval(float x, const float *tab, int n)
{
    int ix = (int)x;
    if (ix < 0)
        ix = 0;
    if (ix > n - 1)
        ix = n - 1;
    x -= (float)ix;
    tab += ix * 4;
    return ((tab[3] * x + tab[2]) * x + tab[1]) * x + tab[0];
}

/* The cube root OpenCV's software float uses to build its table: a quartic
 * rational approximation (Turkowski's) in double on the mantissa scaled to
 * [0.125, 1), whose result mantissa is truncated, not rounded, to float.
 * Only called for normal positive x. */
static float cv_cbrtf(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    int ex = (int)((u >> 23) & 0xff) - 127;
    int shx = ex % 3;
    shx -= shx >= 0 ? 3 : 0;
    ex = (ex - shx) / 3 - 1;
    uint64_t fb = ((uint64_t)(shx + 1023) << 52) | ((uint64_t)(u & 0x7fffff) << 29);
    double fr;
    memcpy(&fr, &fb, 8);
    fr = ((((45.2548339756803022511987494 * fr + 192.2798368355061050458134625) * fr +
            119.1654824285581628956914143) * fr + 13.43250139086239872172837314) * fr +
          0.1636161226585754240958355063) /
         ((((14.80884093219134573786480845 * fr + 151.9714051044435648658557668) * fr +
            168.5254414101568283957668343) * fr + 33.9905941350215598754191872) * fr + 1.0);
    memcpy(&fb, &fr, 8);
    uint32_t r = (u & 0x80000000u) | ((uint32_t)(ex + 127) << 23) | (uint32_t)((fb & 0xfffffffffffffull) >> 29);
    float y;
    memcpy(&y, &r, 4);
    return y;
}

/* Float, round half to even (what cvRound does). */
static inline int round_even(float v)
{
    return (int)lrintf(v);
}

static void build_tables(void)
{
    /* XYZ scaled by the white point, columns in (blue, green, red) order. */
    float s[9];
    for (int i = 0; i < 3; i++) {
        double w = 1.0 / d65[i];
        s[i * 3 + 0] = (float)(rgb2xyz[i * 3 + 2] * w);
        s[i * 3 + 1] = (float)(rgb2xyz[i * 3 + 1] * w);
        s[i * 3 + 2] = (float)(rgb2xyz[i * 3 + 0] * w);
    }
    const float lthresh = 216.0f / 24389.0f; /* (6/29)^3 */
    const float lscale = 841.0f / 108.0f;    /* (29/3)^3 / (29*4) */
    const float lbias = 16.0f / 116.0f;
    const float k9033 = 24389.0f / 27.0f;    /* (29/3)^3 */

    static int16_t grid[LUT_DIM * LUT_DIM * LUT_DIM * 3];
    for (int p = 0; p < LUT_DIM; p++)
        for (int q = 0; q < LUT_DIM; q++)
            for (int r = 0; r < LUT_DIM; r++) {
                float cb = srgb_to_linear((float)p / 32.0f);
                float cg = srgb_to_linear((float)q / 32.0f);
                float cr = srgb_to_linear((float)r / 32.0f);
                float X = cb * s[0] + cg * s[1] + cr * s[2];
                float Y = cb * s[3] + cg * s[4] + cr * s[5];
                float Z = cb * s[6] + cg * s[7] + cr * s[8];
                float fx = X > lthresh ? cv_cbrtf(X) : fmaf(X, lscale, lbias);
                float fy = Y > lthresh ? cv_cbrtf(Y) : fmaf(Y, lscale, lbias);
                float fz = Z > lthresh ? cv_cbrtf(Z) : fmaf(Z, lscale, lbias);
                float L = Y > lthresh ? 116.0f * fy - 16.0f : k9033 * Y;
                float a = 500.0f * (fx - fy);
                float b = 200.0f * (fy - fz);
                int idx = (p + q * LUT_DIM + r * LUT_DIM * LUT_DIM) * 3;
                grid[idx] = (int16_t)round_even((float)BASE * L / 100.0f);
                grid[idx + 1] = (int16_t)round_even((float)BASE * (a + 128.0f) / 256.0f);
                grid[idx + 2] = (int16_t)round_even((float)BASE * (b + 128.0f) / 256.0f);
            }
    /* Repack: each cell origin holds its 8 corners (clamped at the far faces). */
    for (int p = 0; p < LUT_DIM; p++)
        for (int q = 0; q < LUT_DIM; q++)
            for (int r = 0; r < LUT_DIM; r++)
                for (int dp = 0; dp < 2; dp++)
                    for (int dq = 0; dq < 2; dq++)
                        for (int dr = 0; dr < 2; dr++) {
                            int pp = p + dp < LUT_DIM - 1 ? p + dp : LUT_DIM - 1;
                            int qq = q + dq < LUT_DIM - 1 ? q + dq : LUT_DIM - 1;
                            int rr = r + dr < LUT_DIM - 1 ? r + dr : LUT_DIM - 1;
                            int src = (pp + qq * LUT_DIM + rr * LUT_DIM * LUT_DIM) * 3;
                            int dst = (p + q * LUT_DIM + r * LUT_DIM * LUT_DIM) * 24 + 4 * dp + 2 * dq + dr;
                            lab_lut[dst] = grid[src];
                            lab_lut[dst + 8] = grid[src + 1];
                            lab_lut[dst + 16] = grid[src + 2];
                        }
    for (int p = 0; p < TRI_BASE; p++)
        for (int q = 0; q < TRI_BASE; q++)
            for (int r = 0; r < TRI_BASE; r++) {
                int pp = TRI_BASE - p, qq = TRI_BASE - q, rr = TRI_BASE - r;
                int16_t *w = &tri_w[8 * (p + TRI_BASE * q + TRI_BASE * TRI_BASE * r)];
                w[0] = (int16_t)(pp * qq * rr);
                w[1] = (int16_t)(pp * qq * r);
                w[2] = (int16_t)(pp * q * rr);
                w[3] = (int16_t)(pp * q * r);
                w[4] = (int16_t)(p * qq * rr);
                w[5] = (int16_t)(p * qq * r);
                w[6] = (int16_t)(p * q * rr);
                w[7] = (int16_t)(p * q * r);
            }

    static float ig[GAMMA_TAB + 1];
    for (int i = 0; i <= GAMMA_TAB; i++)
        ig[i] = linear_to_srgb((1.0f / (float)GAMMA_TAB) * (float)i);
    spline_build(ig, GAMMA_TAB, inv_gamma_spline);

    for (int i = 0; i < 3; i++) /* output row i from X, Y, Z */
        for (int j = 0; j < 3; j++)
            lab2rgb_c[i * 3 + j] = (float)(xyz2rgb[i * 3 + j] * d65[j]);
}

void pm_lab_init(void)
{
    pthread_once(&tables_once, build_tables);
}

static inline float clip01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* Fixed-point trilinear lookup of one pixel; L, a, b in units of 1/16384. */
static inline void lut_lookup(float r, float g, float b, int out[3], int only_l)
{
    int cx = round_even(clip01(b) * (float)BASE);
    int cy = round_even(clip01(g) * (float)BASE);
    int cz = round_even(clip01(r) * (float)BASE);
    int tx = cx >> (BASE_SHIFT - LUT_SHIFT), ty = cy >> (BASE_SHIFT - LUT_SHIFT), tz = cz >> (BASE_SHIFT - LUT_SHIFT);
    const int16_t *cell = &lab_lut[24 * (tx + LUT_DIM * ty + LUT_DIM * LUT_DIM * tz)];
    const int mask = TRI_BASE - 1;
    int x = (cx >> (BASE_SHIFT - 8 - 1)) & mask;
    int y = (cy >> (BASE_SHIFT - 8 - 1)) & mask;
    int z = (cz >> (BASE_SHIFT - 8 - 1)) & mask;
    const int16_t *w = &tri_w[8 * (x + TRI_BASE * y + TRI_BASE * TRI_BASE * z)];
    for (int c = 0; c < (only_l ? 1 : 3); c++) {
        int acc = 0;
        for (int k = 0; k < 8; k++)
            acc += cell[c * 8 + k] * w[k];
        out[c] = (acc + (1 << (TRI_SHIFT * 3 - 1))) >> (TRI_SHIFT * 3);
    }
}

void pm_rgb_to_lab_f32(const float *rgb, int in_step, float *lab, int out_step, size_t n)
{
    pm_lab_init();
    for (size_t i = 0; i < n; i++, rgb += in_step, lab += out_step) {
        int v[3];
        lut_lookup(rgb[0], rgb[1], rgb[2], v, 0);
        lab[0] = (float)v[0] * (100.0f / (float)BASE);
        lab[1] = (float)v[1] * (256.0f / (float)BASE) - 128.0f;
        lab[2] = (float)v[2] * (256.0f / (float)BASE) - 128.0f;
    }
}

void pm_rgb_to_l_f32(const float *rgb, int in_step, float *l, size_t n)
{
    pm_lab_init();
    for (size_t i = 0; i < n; i++, rgb += in_step) {
        int v[3];
        lut_lookup(rgb[0], rgb[1], rgb[2], v, 1);
        l[i] = (float)v[0] * (100.0f / (float)BASE);
    }
}

void pm_lab_to_rgb_f32(const float *l, const float *a, const float *b, int in_step,
                       float *rgb, int out_step, size_t n)
{
    pm_lab_init();
    const float *c = lab2rgb_c;
    const float k16_116 = 16.0f / 116.0f;
    const float fthresh = 6.0f / 29.0f;
    const float inv903 = 1.0f / 903.3f, inv116 = 1.0f / 116.0f, inv7787 = 1.0f / 7.787f;
    const float inv500 = 1.0f / 500.0f, ninv200 = -1.0f / 200.0f;
    for (size_t i = 0; i < n; i++, rgb += out_step) {
        size_t k = i * (size_t)in_step;
        float li = l[k], ai = a[k], bi = b[k];
        float y, fy;
        if (li <= 8.0f) {
            y = li * inv903;
            fy = 7.787f * y + k16_116;
        } else {
            fy = (li + 16.0f) * inv116;
            y = fy * fy * fy;
        }
        float fxz[2] = {ai * inv500 + fy, bi * ninv200 + fy};
        for (int j = 0; j < 2; j++) {
            float f = fxz[j];
            fxz[j] = f <= fthresh ? (f - k16_116) * inv7787 : f * f * f;
        }
        float x = fxz[0], z = fxz[1];
        for (int ch = 0; ch < 3; ch++) {
            float v = c[ch * 3 + 0] * x + (c[ch * 3 + 1] * y + c[ch * 3 + 2] * z);
            rgb[ch] = spline_eval(clip01(v) * (float)GAMMA_TAB, inv_gamma_spline, GAMMA_TAB);
        }
    }
}
