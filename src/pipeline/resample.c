/* Image resampling for the pipelines. */
#include "pipeline/resample.h"

#include <math.h>

static int check(const pm_image *src, int w, int h)
{
    if (w < 1 || h < 1 || !src->data || src->width < 1 || src->height < 1)
        return pm_errorf(PM_EINVAL, "cannot resize a %dx%d image to %dx%d", src->width, src->height, w, h);
    return 0;
}

/* Source span [lo, hi) of destination index i along an axis. */
static void span(int i, int in, int out, int *lo, int *hi)
{
    *lo = (int)((long long)i * in / out);
    *hi = (int)(((long long)(i + 1) * in + out - 1) / out);
    if (*hi <= *lo)
        *hi = *lo + 1;
    if (*hi > in)
        *hi = in;
}

int pm_resize_area(pm_image *dst, const pm_image *src, int w, int h)
{
    int rc = check(src, w, h);
    if (rc || (rc = pm_image_alloc(dst, w, h, src->channels)))
        return rc;
    int c = src->channels;
    for (int y = 0; y < h; y++) {
        int y0, y1;
        span(y, src->height, h, &y0, &y1);
        for (int x = 0; x < w; x++) {
            int x0, x1;
            span(x, src->width, w, &x0, &x1);
            for (int k = 0; k < c; k++) {
                unsigned long sum = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        sum += src->data[((size_t)yy * src->width + xx) * c + k];
                unsigned long n = (unsigned long)(y1 - y0) * (x1 - x0);
                dst->data[((size_t)y * w + x) * c + k] = (uint8_t)((sum + n / 2) / n);
            }
        }
    }
    return 0;
}

int pm_resize_bilinear(pm_image *dst, const pm_image *src, int w, int h)
{
    int rc = check(src, w, h);
    if (rc || (rc = pm_image_alloc(dst, w, h, src->channels)))
        return rc;
    int c = src->channels;
    float sx = (float)src->width / w, sy = (float)src->height / h;
    for (int y = 0; y < h; y++) {
        float fy = (y + 0.5f) * sy - 0.5f;
        if (fy < 0) fy = 0;
        int y0 = (int)fy;
        int y1 = y0 + 1 < src->height ? y0 + 1 : src->height - 1;
        float wy = fy - y0;
        for (int x = 0; x < w; x++) {
            float fx = (x + 0.5f) * sx - 0.5f;
            if (fx < 0) fx = 0;
            int x0 = (int)fx;
            int x1 = x0 + 1 < src->width ? x0 + 1 : src->width - 1;
            float wx = fx - x0;
            const uint8_t *a = src->data + ((size_t)y0 * src->width + x0) * c;
            const uint8_t *b = src->data + ((size_t)y0 * src->width + x1) * c;
            const uint8_t *d = src->data + ((size_t)y1 * src->width + x0) * c;
            const uint8_t *e = src->data + ((size_t)y1 * src->width + x1) * c;
            for (int k = 0; k < c; k++) {
                float top = a[k] + (b[k] - a[k]) * wx;
                float bot = d[k] + (e[k] - d[k]) * wx;
                float v = top + (bot - top) * wy;
                dst->data[((size_t)y * w + x) * c + k] = (uint8_t)lrintf(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    return 0;
}

int pm_resize_nearest(pm_image *dst, const pm_image *src, int w, int h)
{
    int rc = check(src, w, h);
    if (rc || (rc = pm_image_alloc(dst, w, h, src->channels)))
        return rc;
    int c = src->channels;
    for (int y = 0; y < h; y++) {
        int sy = (int)(((long long)y * 2 + 1) * src->height / (2LL * h));
        for (int x = 0; x < w; x++) {
            int sx = (int)(((long long)x * 2 + 1) * src->width / (2LL * w));
            for (int k = 0; k < c; k++)
                dst->data[((size_t)y * w + x) * c + k] = src->data[((size_t)sy * src->width + sx) * c + k];
        }
    }
    return 0;
}

int pm_resize_mask_any(pm_image *dst, const pm_image *src, int w, int h)
{
    int rc = check(src, w, h);
    if (rc || (rc = pm_image_alloc(dst, w, h, 1)))
        return rc;
    int c = src->channels;
    for (int y = 0; y < h; y++) {
        int y0, y1;
        span(y, src->height, h, &y0, &y1);
        for (int x = 0; x < w; x++) {
            int x0, x1, on = 0;
            span(x, src->width, w, &x0, &x1);
            for (int yy = y0; yy < y1 && !on; yy++)
                for (int xx = x0; xx < x1 && !on; xx++)
                    on = src->data[((size_t)yy * src->width + xx) * c] != 0;
            dst->data[(size_t)y * w + x] = on ? 255 : 0;
        }
    }
    return 0;
}
