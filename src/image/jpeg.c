/* JPEG through libturbojpeg (2.1 API). The marker structure is walked here
 * first: it finds the frame header (size, components, precision), the EXIF
 * orientation (APP1, parsed here for both TIFF byte orders), the Adobe APP14
 * marker (whose presence means inverted CMYK), counts the scans, and tells a
 * file that ends early from one that is damaged. */
#include "image/image_internal.h"
#include "image/jpeg_meta.h"

#include <stddef.h>
#include <string.h>
#include <turbojpeg.h>

/* More scans than any real encoder writes; libjpeg-turbo's TJFLAG_LIMITSCANS
 * uses the same bound. */
#define JPEG_MAX_SCANS 500
#define JPEG_MAX_SIDE 65535

struct jpeg_header {
    int width, height; /* as stored */
    int components, precision;
    int lossless;
    int adobe;         /* an Adobe APP14 marker is present */
    int orientation;   /* EXIF 1..8 */
    int scans;
};

static int is_sof(uint8_t m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

static int truncated_at(size_t len, const char *where)
{
    return pm_errorf(PM_ETRUNCATED, "the JPEG data ends after %zu bytes, %s; the file is truncated", len, where);
}

/* Walks markers from SOI to EOI. Trailing bytes after EOI are ignored. */
static int jpeg_walk(const uint8_t *d, size_t len, struct jpeg_header *h, pm_jpeg_meta_acc *acc)
{
    memset(h, 0, sizeof *h);
    h->orientation = 1;
    int seen_sof = 0, seen_exif = 0;
    size_t pos = 2;
    for (;;) {
        if (pos >= len)
            return truncated_at(len, "before its end marker (EOI)");
        if (d[pos] != 0xff)
            return pm_errorf(PM_ECORRUPT, "the JPEG data has 0x%02x at byte %zu where a marker should be; the file is damaged",
                             d[pos], pos);
        while (pos < len && d[pos] == 0xff) /* fill bytes */
            pos++;
        if (pos >= len)
            return truncated_at(len, "inside a marker");
        size_t mpos = pos - 1;
        uint8_t m = d[pos++];
        if (m == 0xd9) {
            if (!h->scans)
                return pm_errorf(PM_ECORRUPT, "the JPEG data ends (EOI) before any image data; the file is damaged");
            break;
        }
        if (m == 0xd8 || m == 0x00)
            return pm_errorf(PM_ECORRUPT, "the JPEG data has an unexpected marker 0x%02x at byte %zu; the file is damaged",
                             m, mpos);
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01)
            continue; /* standalone markers carry no length */
        if (len - pos < 2)
            return truncated_at(len, "inside a marker segment");
        size_t seglen = pm_img_be16(d + pos);
        if (seglen < 2)
            return pm_errorf(PM_ECORRUPT, "the JPEG marker 0x%02x at byte %zu has an invalid length; the file is damaged",
                             m, mpos);
        if (len - pos < seglen)
            return pm_errorf(PM_ETRUNCATED, "the JPEG data ends after %zu bytes, inside the marker segment 0x%02x that starts at byte %zu; the file is truncated",
                             len, m, mpos);
        const uint8_t *seg = d + pos + 2;
        size_t n = seglen - 2;
        pos += seglen;
        if (acc && m >= 0xe0 && m <= 0xe2)
            pm_img_jpeg_meta_segment(acc, m, seg, n);
        if (m == 0xe1 && !seen_exif && n >= 6 && !memcmp(seg, "Exif\0\0", 6)) {
            h->orientation = pm_exif_orientation(seg + 6, n - 6);
            seen_exif = 1;
        } else if (m == 0xee && n >= 12 && !memcmp(seg, "Adobe", 5)) {
            h->adobe = 1;
        } else if (is_sof(m)) {
            if (seen_sof)
                return pm_errorf(PM_ECORRUPT, "the JPEG data has a second frame header at byte %zu; the file is damaged",
                                 mpos);
            if (n < 6 || n < 6 + 3 * (size_t)seg[5])
                return pm_errorf(PM_ECORRUPT, "the JPEG frame header at byte %zu is too short; the file is damaged", mpos);
            h->precision = seg[0];
            h->height = pm_img_be16(seg + 1);
            h->width = pm_img_be16(seg + 3);
            h->components = seg[5];
            h->lossless = m == 0xc3 || m == 0xc7 || m == 0xcb || m == 0xcf;
            seen_sof = 1;
        } else if (m == 0xda) {
            if (!seen_sof)
                return pm_errorf(PM_ECORRUPT, "the JPEG data has image data before its frame header; the file is damaged");
            if (++h->scans > JPEG_MAX_SCANS)
                return pm_errorf(PM_ECORRUPT, "the JPEG has more than %d progressive scans, which no real encoder writes (a decompression bomb?)",
                                 JPEG_MAX_SCANS);
            /* Entropy-coded data: skip to the next marker that is not a
             * stuffed 0xff00, a restart marker or a fill byte. */
            for (;;) {
                const uint8_t *ff = memchr(d + pos, 0xff, len - pos);
                if (!ff || (size_t)(ff - d) + 1 >= len)
                    return truncated_at(len, "inside the image data");
                pos = (size_t)(ff - d);
                uint8_t nx = d[pos + 1];
                if (nx == 0x00 || (nx >= 0xd0 && nx <= 0xd7))
                    pos += 2;
                else if (nx == 0xff)
                    pos += 1;
                else
                    break;
            }
        }
    }
    if (!seen_sof)
        return pm_errorf(PM_ECORRUPT, "the JPEG has no frame header; the file is damaged");
    if (h->height == 0)
        return pm_errorf(PM_EUNSUPPORTED, "the JPEG gives its height in a DNL marker, which is not supported; re-save the image");
    if (h->width == 0)
        return pm_errorf(PM_ECORRUPT, "the JPEG frame header gives width 0; the file is damaged");
    if (h->precision != 8)
        return pm_errorf(PM_EUNSUPPORTED, "the JPEG has %d-bit samples; only 8-bit JPEG is supported (re-save it as 8-bit)",
                         h->precision);
    if (h->lossless)
        return pm_errorf(PM_EUNSUPPORTED, "lossless JPEG is not supported; convert it to PNG");
    if (h->components != 1 && h->components != 3 && h->components != 4)
        return pm_errorf(PM_EUNSUPPORTED, "the JPEG has %d colour components; only gray, RGB/YCbCr and CMYK are supported",
                         h->components);
    return 0;
}

static void display_size(const struct jpeg_header *h, int *w, int *hh)
{
    int swap = h->orientation >= 5;
    *w = swap ? h->height : h->width;
    *hh = swap ? h->width : h->height;
}

int pm_img_jpeg_probe(const uint8_t *data, size_t len, pm_image_info *info)
{
    struct jpeg_header h;
    int rc = jpeg_walk(data, len, &h, NULL);
    if (rc)
        return rc;
    info->format = PM_FMT_JPEG;
    display_size(&h, &info->width, &info->height);
    info->channels = h.components == 1 ? 1 : 3;
    info->orientation = h.orientation;
    return 0;
}

/* CMYK (4 bytes/px) to RGB (3 bytes/px) in place, front to back. With an
 * Adobe marker the samples are inverted (255 = no ink), which is how
 * Photoshop writes them and libjpeg-turbo hands them over. */
static void cmyk_to_rgb(uint8_t *p, size_t npix, int inverted)
{
    const uint8_t *s = p;
    uint8_t *d = p;
    for (size_t i = 0; i < npix; i++, s += 4, d += 3) {
        unsigned c = s[0], m = s[1], y = s[2], k = s[3];
        if (!inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        d[0] = (uint8_t)((c * k + 127) / 255);
        d[1] = (uint8_t)((m * k + 127) / 255);
        d[2] = (uint8_t)((y * k + 127) / 255);
    }
}

/* Display pixel (x, y) comes from stored pixel (sx, sy) = (ax*x + bx*y + cx,
 * ay*x + by*y + cy) of an image stored W x H; identity for orientation 1. */
void pm_img_orient_map(int orientation, int W, int H, int m[6])
{
    int ax = 1, bx = 0, cx = 0, ay = 0, by = 1, cy = 0;
    switch (orientation) {
    case 2: ax = -1; cx = W - 1; by = 1; break;
    case 3: ax = -1; cx = W - 1; by = -1; cy = H - 1; break;
    case 4: ax = 1; by = -1; cy = H - 1; break;
    case 5: ax = 0; bx = 1; ay = 1; by = 0; break;
    case 6: ax = 0; bx = 1; ay = -1; by = 0; cy = H - 1; break;
    case 7: ax = 0; bx = -1; cx = W - 1; ay = -1; by = 0; cy = H - 1; break;
    case 8: ax = 0; bx = -1; cx = W - 1; ay = 1; by = 0; break;
    default: break;
    }
    m[0] = ax;
    m[1] = bx;
    m[2] = cx;
    m[3] = ay;
    m[4] = by;
    m[5] = cy;
}

/* Applies EXIF orientation 2..8 into a new image; on success *img is
 * replaced (the old pixels freed). */
int pm_img_orient(pm_image *img, int orientation)
{
    int W = img->width, H = img->height, c = img->channels;
    if (orientation < 2 || orientation > 8)
        return 0;
    int mp[6];
    pm_img_orient_map(orientation, W, H, mp);
    int ax = mp[0], bx = mp[1], cx = mp[2], ay = mp[3], by = mp[4], cy = mp[5];
    int ow = orientation >= 5 ? H : W;
    int oh = orientation >= 5 ? W : H;
    pm_image rot;
    int rc = pm_img_alloc_raw(&rot, ow, oh, c, 0);
    if (rc)
        return rc;
    ptrdiff_t step = ((ptrdiff_t)ay * W + ax) * c; /* source bytes per output pixel */
    for (int y = 0; y < oh; y++) {
        ptrdiff_t sx = (ptrdiff_t)bx * y + cx, sy = (ptrdiff_t)by * y + cy;
        ptrdiff_t off = (sy * W + sx) * c; /* offsets, not pointers: no pointer leaves the buffer */
        const uint8_t *s = img->data;
        uint8_t *d = rot.data + (size_t)y * ow * c;
        if (c == 1) {
            for (int x = 0; x < ow; x++, off += step)
                d[x] = s[off];
        } else {
            for (int x = 0; x < ow; x++, off += step, d += c)
                for (int k = 0; k < c; k++)
                    d[k] = s[off + k];
        }
    }
    pm_image_free(img);
    *img = rot;
    return 0;
}

static int tj_fail(tjhandle tj)
{
    const char *msg = tjGetErrorStr2(tj);
    if (strstr(msg, "Premature end"))
        return pm_errorf(PM_ETRUNCATED, "the JPEG data ends early (%s); the file is truncated", msg);
    if (strstr(msg, "scans"))
        return pm_errorf(PM_ECORRUPT, "the JPEG has too many progressive scans (a decompression bomb?): %s", msg);
    if (strstr(msg, "Unsupported") || strstr(msg, "unsupported") || strstr(msg, "not supported"))
        return pm_errorf(PM_EUNSUPPORTED, "this JPEG uses a feature the decoder does not support: %s", msg);
    if (strstr(msg, "memory"))
        return pm_errorf(PM_ENOMEM, "out of memory decoding the JPEG: %s", msg);
    return pm_errorf(PM_ECORRUPT, "the JPEG data is damaged: %s", msg);
}

/* After a libjpeg warning the image is complete but may be damaged. Damage
 * ("Corrupt JPEG data: bad Huffman code", an early end) is an error; stray
 * bytes before a marker (many cameras write them), a bad ICC marker, an
 * unknown JFIF revision or Adobe transform are not. TurboJPEG reports the
 * first warning only. */
static int warning_is_harmless(const char *msg)
{
    if (strstr(msg, "Premature end"))
        return 0;
    if (strstr(msg, "extraneous bytes") || strstr(msg, "bad ICC marker"))
        return 1;
    return strstr(msg, "Corrupt JPEG data") == NULL;
}

/* Caller owns *out on success, and what *meta (may be NULL) gained: the
 * metadata markers, the orientation applied, a copy of the source. */
int pm_img_jpeg_decode(const uint8_t *data, size_t len, const pm_limits *lim, pm_image *out, pm_image_meta *meta)
{
    struct jpeg_header h;
    pm_jpeg_meta_acc acc;
    memset(&acc, 0, sizeof acc);
    acc.m = meta;
    int rc = jpeg_walk(data, len, &h, meta ? &acc : NULL);
    if (rc)
        return rc;
    if (meta) {
        pm_img_jpeg_meta_finish(&acc);
        meta->orientation = h.orientation;
        if (h.components != 4 && (meta->jpeg = pm_malloc(len)) != NULL) {
            memcpy(meta->jpeg, data, len);
            meta->jpeg_len = len;
        }
    }
    int dw, dh;
    display_size(&h, &dw, &dh);
    rc = pm_img_check_limits(dw, dh, lim);
    if (rc)
        return rc;

    int pf, channels;
    size_t bytes = (size_t)h.width * (size_t)h.height;
    if (h.components == 1) {
        pf = TJPF_GRAY;
        channels = 1;
    } else if (h.components == 3) {
        pf = TJPF_RGB;
        channels = 3;
        bytes *= 3;
    } else {
        pf = TJPF_CMYK;
        channels = 3;
        bytes *= 4;
    }
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return pm_errorf(PM_ENOMEM, "cannot start the JPEG decoder: %s", tjGetErrorStr2(NULL));
    rc = pm_img_alloc_raw(out, h.width, h.height, channels, bytes);
    if (rc)
        goto destroy_tj;
    if (tjDecompress2(tj, data, (unsigned long)len, out->data, h.width, 0, h.height, pf,
                      TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS) != 0) {
        if (tjGetErrorCode(tj) != TJERR_WARNING || !warning_is_harmless(tjGetErrorStr2(tj))) {
            rc = tj_fail(tj);
            goto free_image;
        }
        pm_debug("jpeg_warning", "JPEG decoded with a warning: %s", tjGetErrorStr2(tj));
    }
    if (h.components == 4)
        cmyk_to_rgb(out->data, (size_t)h.width * h.height, h.adobe);
    rc = pm_img_orient(out, h.orientation);
    if (rc)
        goto free_image;
    tjDestroy(tj);
    return 0;

free_image:
    pm_image_free(out);
destroy_tj:
    tjDestroy(tj);
    return rc;
}

/* Caller owns *out_data (pm_free). Alpha is dropped. 4:4:4 chroma at
 * quality >= 90, 4:2:0 below. */
int pm_img_jpeg_encode(const pm_image *img, int quality, uint8_t **out_data, size_t *out_len)
{
    if (img->width > JPEG_MAX_SIDE || img->height > JPEG_MAX_SIDE)
        return pm_errorf(PM_EUNSUPPORTED, "JPEG cannot store a %dx%d image (at most %d px a side); save it as PNG",
                         img->width, img->height, JPEG_MAX_SIDE);
    int pf = img->channels == 1 ? TJPF_GRAY : img->channels == 3 ? TJPF_RGB : TJPF_RGBX;
    int subsamp = img->channels == 1 ? TJSAMP_GRAY : quality >= 90 ? TJSAMP_444 : TJSAMP_420;
    int rc = 0;
    tjhandle tj = tjInitCompress();
    if (!tj)
        return pm_errorf(PM_ENOMEM, "cannot start the JPEG encoder: %s", tjGetErrorStr2(NULL));
    unsigned char *jbuf = NULL;
    unsigned long jlen = 0;
    if (tjCompress2(tj, img->data, img->width, 0, img->height, pf, &jbuf, &jlen, subsamp, quality,
                    TJFLAG_ACCURATEDCT) != 0) {
        rc = pm_errorf(PM_EINTERNAL, "JPEG encoding failed: %s", tjGetErrorStr2(tj));
        goto free_jbuf;
    }
    uint8_t *buf = pm_malloc(jlen);
    if (!buf) {
        rc = pm_errorf(PM_ENOMEM, "out of memory encoding a %dx%d JPEG", img->width, img->height);
        goto free_jbuf;
    }
    memcpy(buf, jbuf, jlen);
    *out_data = buf;
    *out_len = jlen;

free_jbuf:
    tjFree(jbuf);
    tjDestroy(tj);
    return rc;
}
