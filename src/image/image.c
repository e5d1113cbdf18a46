/* pm_image: allocation, copies and channel conversion. */
#include "image/image_internal.h"

#include <string.h>

static int valid_shape(int width, int height, int channels)
{
    if (width <= 0 || height <= 0)
        return pm_errorf(PM_EINVAL, "image size %dx%d is invalid; both sides must be at least 1 px",
                         width, height);
    if (channels != 1 && channels != 3 && channels != 4)
        return pm_errorf(PM_EINVAL, "%d channels is invalid; an image has 1 (gray), 3 (RGB) or 4 (RGBA)",
                         channels);
    if ((uint32_t)width > PM_IMG_HARD_MAX_SIDE || (uint32_t)height > PM_IMG_HARD_MAX_SIDE)
        return pm_errorf(PM_EINVAL, "image size %dx%d is invalid; no side may exceed %u px",
                         width, height, PM_IMG_HARD_MAX_SIDE);
    return 0;
}

/* Caller owns *out; the buffer holds max(min_bytes, w*h*c) bytes, uninitialised. */
int pm_img_alloc_raw(pm_image *out, int width, int height, int channels, size_t min_bytes)
{
    memset(out, 0, sizeof *out);
    int rc = valid_shape(width, height, channels);
    if (rc)
        return rc;
    size_t n = (size_t)width * (size_t)height * (size_t)channels;
    if (n < min_bytes)
        n = min_bytes;
    out->data = pm_malloc(n);
    if (!out->data)
        return pm_errorf(PM_ENOMEM, "out of memory allocating a %dx%d image (%zu bytes)",
                         width, height, n);
    out->width = width;
    out->height = height;
    out->channels = channels;
    return 0;
}

/* Caller owns *out (pm_image_free). */
int pm_image_alloc(pm_image *out, int width, int height, int channels)
{
    if (!out)
        return pm_errorf(PM_EINVAL, "pm_image_alloc: out is NULL");
    int rc = pm_img_alloc_raw(out, width, height, channels, 0);
    if (rc)
        return rc;
    memset(out->data, 0, (size_t)width * (size_t)height * (size_t)channels);
    return 0;
}

void pm_image_free(pm_image *img)
{
    if (!img)
        return;
    pm_free(img->data);
    memset(img, 0, sizeof *img);
}

static int valid_image(const pm_image *img)
{
    if (!img || !img->data)
        return pm_errorf(PM_EINVAL, "image is NULL or has no pixels");
    return valid_shape(img->width, img->height, img->channels);
}

/* Caller owns *dst. */
int pm_image_clone(pm_image *dst, const pm_image *src)
{
    if (!dst)
        return pm_errorf(PM_EINVAL, "pm_image_clone: dst is NULL");
    memset(dst, 0, sizeof *dst);
    int rc = valid_image(src);
    if (rc)
        return rc;
    rc = pm_img_alloc_raw(dst, src->width, src->height, src->channels, 0);
    if (rc)
        return rc;
    memcpy(dst->data, src->data, (size_t)src->width * src->height * src->channels);
    return 0;
}

/* BT.601 luma with rounding, integer only. */
static inline uint8_t luma(const uint8_t *p)
{
    return (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
}

/* Caller owns *dst. */
int pm_image_convert(pm_image *dst, const pm_image *src, int channels)
{
    if (!dst)
        return pm_errorf(PM_EINVAL, "pm_image_convert: dst is NULL");
    memset(dst, 0, sizeof *dst);
    int rc = valid_image(src);
    if (rc)
        return rc;
    if (channels == src->channels)
        return pm_image_clone(dst, src);
    rc = pm_img_alloc_raw(dst, src->width, src->height, channels, 0);
    if (rc)
        return rc;
    size_t n = (size_t)src->width * (size_t)src->height;
    const uint8_t *s = src->data;
    uint8_t *d = dst->data;
    int sc = src->channels;
    for (size_t i = 0; i < n; i++, s += sc, d += channels) {
        if (sc == 1) {
            d[0] = s[0];
            if (channels >= 3) {
                d[1] = s[0];
                d[2] = s[0];
            }
        } else if (channels == 1) {
            d[0] = luma(s);
        } else {
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
        }
        if (channels == 4)
            d[3] = sc == 4 ? s[3] : 255;
    }
    return 0;
}
