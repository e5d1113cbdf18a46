/* The metadata carrier: decoding with it, and encoding a result with what
 * the output format can hold of it (the privacy policy applied, the EXIF
 * orientation reset when the pixels were rotated, the stale EXIF thumbnail
 * removed, 16-bit samples merged back, the JPEG coefficient path). */
#include "image/image_internal.h"
#include "image/jpeg_meta.h"

#include <stdio.h>
#include <string.h>

void pm_image_meta_free(pm_image_meta *m)
{
    if (!m)
        return;
    pm_free(m->icc);
    pm_free(m->exif);
    pm_free(m->xmp);
    for (int i = 0; i < m->ntext; i++)
        pm_free(m->text[i].data);
    pm_free(m->text);
    pm_free(m->deep);
    pm_free(m->jpeg);
    memset(m, 0, sizeof *m);
}

/* Caller owns *out and *meta (also zeroed on failure). */
int pm_image_decode_meta(const uint8_t *data, size_t len, const pm_limits *lim, const char *name, pm_image *out,
                         pm_image_meta *meta)
{
    if (!meta)
        return pm_image_decode(data, len, lim, name, out);
    memset(meta, 0, sizeof *meta);
    meta->orientation = 1;
    if (!out)
        return pm_errorf(PM_EINVAL, "pm_image_decode_meta: out is NULL");
    memset(out, 0, sizeof *out);
    pm_image_info info;
    int rc = pm_image_probe(data, len, lim, &info); /* magic, file size, extension-free checks */
    if (rc)
        return rc;
    if (name) {
        enum pm_format by_name = pm_format_from_name(name);
        if (by_name != PM_FMT_UNKNOWN && by_name != info.format)
            return pm_image_decode(data, len, lim, name, out); /* its sentence names the right extension */
    }
    switch (info.format) {
    case PM_FMT_PNG: rc = pm_img_png_decode(data, len, lim, out, meta); break;
    case PM_FMT_JPEG: rc = pm_img_jpeg_decode(data, len, lim, out, meta); break;
    default: rc = pm_img_webp_decode(data, len, lim, out, meta); break;
    }
    if (rc) {
        pm_image_free(out);
        pm_image_meta_free(meta);
        return rc;
    }
    meta->format = info.format;
    return 0;
}

int pm_image_load_meta(const char *path, const pm_limits *lim, pm_image *out, pm_image_meta *meta)
{
    if (!meta)
        return pm_image_load(path, lim, out);
    memset(meta, 0, sizeof *meta);
    /* pm_image_load checks the limits from stat() first; then the bytes are decoded with the carrier. */
    pm_limits l = lim ? *lim : pm_default_limits();
    if (!l.max_file_bytes)
        l.max_file_bytes = pm_default_limits().max_file_bytes;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = pm_read_file(path, l.max_file_bytes > SIZE_MAX ? SIZE_MAX : (size_t)l.max_file_bytes, &buf, &n);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc == PM_ETOOBIG || rc == PM_ENOENT ? pm_image_load(path, lim, out) : rc;
    }
    rc = pm_image_decode_meta(buf, n, lim, path, out, meta);
    pm_free(buf);
    return rc;
}

/* ------------------------------------------------------------- encoding */

static void why(pm_encode_report *r, unsigned bit, const char *fmt, const char *what)
{
    r->dropped |= bit;
    if (r->nwhy < (int)(sizeof r->why / sizeof r->why[0]))
        snprintf(r->why[r->nwhy++], sizeof r->why[0], fmt, what);
}

/* Sets the digit after tiff:Orientation in an XMP packet to 1, in place. */
static void xmp_reset_orientation(uint8_t *x, size_t n)
{
    static const char *const keys[2] = {"tiff:Orientation=\"", "<tiff:Orientation>"};
    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(keys[k]);
        for (size_t i = 0; i + kl < n; i++)
            if (!memcmp(x + i, keys[k], kl) && x[i + kl] >= '1' && x[i + kl] <= '8')
                x[i + kl] = '1';
    }
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = pm_malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* Builds in *w (owned copies where edited) what the output keeps of `m`:
 * the policy applied, what the format cannot hold left out and reported. */
static int select_meta(const pm_encode_req *q, int coef, pm_image_meta *w, pm_encode_report *r)
{
    const pm_image_meta *m = q->meta;
    enum pm_format f = q->opts.format;
    const char *fname = pm_format_name(f);
    memset(w, 0, sizeof *w);
    if (!m || q->policy.strip_metadata)
        return 0;
    if (m->icc) {
        int want = q->img->channels == 1 ? 1 : 3, have = pm_icc_channels(m->icc, m->icc_len);
        if (have != want)
            why(r, PM_KEEP_ICC, "the ICC profile describes %s colours, not the result's; it was dropped",
                have == 4 ? "CMYK" : have == 1 ? "grey" : have == 3 ? "RGB" : "other");
        else if (!(w->icc = dup_bytes(m->icc, m->icc_len)))
            return PM_ENOMEM;
        else
            w->icc_len = m->icc_len;
    }
    if (m->exif) {
        if (!(w->exif = dup_bytes(m->exif, m->exif_len)))
            return PM_ENOMEM;
        w->exif_len = m->exif_len;
        pm_exif_drop_thumbnail(w->exif, w->exif_len);
        if (m->orientation != 1 && !coef)
            pm_exif_set_orientation(w->exif, w->exif_len, 1);
        if (q->policy.strip_gps) {
            int g = pm_exif_strip_gps(w->exif, w->exif_len);
            if (g < 0) {
                pm_free(w->exif);
                w->exif = NULL;
                why(r, PM_KEEP_EXIF, "%s", "the EXIF block could not be searched for a location safely; it was dropped (--strip-gps)");
            }
            r->gps_removed |= g > 0;
        }
    }
    if (m->xmp) {
        if (q->policy.strip_gps && pm_xmp_has_gps(m->xmp, m->xmp_len)) {
            r->gps_removed = 1;
            why(r, PM_KEEP_XMP, "%s", "the XMP packet names a location; it was dropped (--strip-gps)");
        } else if (!(w->xmp = dup_bytes(m->xmp, m->xmp_len))) {
            return PM_ENOMEM;
        } else {
            w->xmp_len = m->xmp_len;
            if (m->orientation != 1 && !coef)
                xmp_reset_orientation(w->xmp, w->xmp_len);
        }
    }
    if (m->res_unit != PM_RES_NONE) {
        if (f == PM_FMT_WEBP)
            why(r, PM_KEEP_DPI, "%s cannot hold the resolution (DPI); it was dropped", fname);
        else if (f == PM_FMT_JPEG && m->res_unit == PM_RES_ASPECT)
            why(r, PM_KEEP_DPI, "%s keeps no pixel aspect ratio without a DPI; it was dropped", fname);
        else {
            w->res_unit = m->res_unit;
            w->res_x = m->res_x;
            w->res_y = m->res_y;
        }
    }
    if (m->png_srgb || m->png_gama || m->has_chrm) {
        if (f == PM_FMT_PNG) {
            w->png_srgb = m->png_srgb;
            w->png_gama = m->png_gama;
            w->has_chrm = m->has_chrm;
            memcpy(w->png_chrm, m->png_chrm, sizeof w->png_chrm);
        } else if ((m->png_gama && m->png_gama != 45455) || (m->has_chrm && !m->png_srgb)) {
            why(r, PM_KEEP_COLOUR, "%s cannot hold the PNG's gamma and chromaticities (gAMA, cHRM); it is shown as sRGB",
                fname);
        }
    }
    if (m->ntext) {
        if (f != PM_FMT_PNG) {
            why(r, PM_KEEP_TEXT, "%s cannot hold PNG text chunks (e.g. generation parameters); they were dropped", fname);
        } else {
            w->text = (pm_png_text *)m->text; /* borrowed: not freed with *w */
            w->ntext = m->ntext;
        }
    }
    if (f == PM_FMT_JPEG) {
        unsigned bad = pm_img_jpeg_meta_fits(w);
        if (bad & PM_KEEP_EXIF) {
            pm_free(w->exif);
            w->exif = NULL;
            why(r, PM_KEEP_EXIF, "the EXIF block is larger than one %s marker holds (64 KiB); it was dropped", fname);
        }
        if (bad & PM_KEEP_XMP) {
            pm_free(w->xmp);
            w->xmp = NULL;
            why(r, PM_KEEP_XMP, "the XMP packet is larger than one %s marker holds (64 KiB); it was dropped", fname);
        }
        if (bad & PM_KEEP_ICC) {
            pm_free(w->icc);
            w->icc = NULL;
            why(r, PM_KEEP_ICC, "the ICC profile is larger than %s markers hold (16 MiB); it was dropped", fname);
        }
        if (bad & PM_KEEP_DPI) {
            w->res_unit = PM_RES_NONE;
            why(r, PM_KEEP_DPI, "the resolution does not fit %s's JFIF header; it was dropped", fname);
        }
    }
    return 0;
}

static void free_selected(pm_image_meta *w)
{
    pm_free(w->icc);
    pm_free(w->exif);
    pm_free(w->xmp);
    memset(w, 0, sizeof *w);
}

/* 16-bit samples for a PNG of `img`: the source's where img's 8-bit sample is
 * still the source's high byte (never touched), img's sample * 257 where it
 * changed. Caller owns *out (pm_free). */
static int merge_deep(const pm_image *img, const pm_image_meta *m, uint16_t **out)
{
    size_t n = (size_t)img->width * img->height * img->channels;
    uint16_t *d = pm_malloc(n * 2);
    if (!d)
        return pm_errorf(PM_ENOMEM, "out of memory encoding a %dx%d 16-bit PNG", img->width, img->height);
    for (size_t i = 0; i < n; i++) {
        uint16_t s = m->deep[i];
        d[i] = (uint8_t)(s >> 8) == img->data[i] ? s : (uint16_t)(img->data[i] * 257u);
    }
    *out = d;
    return 0;
}

static int same_shape(const pm_image *a, const pm_image *b)
{
    return a && b && a->width == b->width && a->height == b->height && a->channels == b->channels;
}

/* Encodes the pixels: 16-bit PNG, the JPEG coefficient path, or plain. */
static int encode_pixels(const pm_encode_req *q, int *coef, uint8_t **out, size_t *len, pm_encode_report *r)
{
    const pm_image_meta *m = q->meta;
    enum pm_format f = q->opts.format;
    if (m && m->deep) {
        int fits = m->deep_channels == q->img->channels && q->source && same_shape(q->img, q->source);
        if (f == PM_FMT_PNG && fits) {
            uint16_t *deep = NULL;
            int rc = merge_deep(q->img, m, &deep);
            if (rc)
                return rc;
            rc = pm_img_png_encode(q->img, deep, out, len);
            pm_free(deep);
            if (rc == 0)
                r->kept |= PM_KEEP_DEPTH;
            return rc;
        }
        why(r, PM_KEEP_DEPTH, f == PM_FMT_PNG ? "%s: the result's shape differs from the 16-bit source; written at 8 bits"
                                              : "%s holds 8 bits a sample; the 16-bit source was written at 8 bits",
            pm_format_name(f));
    }
    if (*coef) {
        int rc = pm_img_jpeg_encode_coef(m->jpeg, m->jpeg_len, m->orientation, q->source, q->img, out, len,
                                         &r->blocks_total, &r->blocks_encoded);
        if (rc == 0) {
            r->kept |= PM_KEEP_BLOCKS;
            return 0;
        }
        if (rc == PM_ENOMEM)
            return rc;
        *coef = 0;
        r->blocks_total = r->blocks_encoded = 0;
        char msg[120];
        snprintf(msg, sizeof msg, "%s", pm_error_detail());
        why(r, PM_KEEP_BLOCKS, "the JPEG was re-encoded whole (%s)", msg);
    }
    return pm_image_encode(q->img, &q->opts, out, len);
}

/* Caller owns *out_data (pm_free). */
int pm_image_encode_full(const pm_encode_req *q, uint8_t **out_data, size_t *out_len, pm_encode_report *rep)
{
    pm_encode_report local;
    pm_encode_report *r = rep ? rep : &local;
    memset(r, 0, sizeof *r);
    if (!q || !out_data || !out_len)
        return pm_errorf(PM_EINVAL, "pm_image_encode_full: req, out_data and out_len must not be NULL");
    *out_data = NULL;
    *out_len = 0;
    const pm_image_meta *m = q->meta;
    int coef = q->keep_blocks && !q->policy.jpeg_reencode && q->opts.format == PM_FMT_JPEG && m && m->jpeg &&
               same_shape(q->img, q->source);
    uint8_t *buf = NULL;
    size_t len = 0;
    pm_image_meta w;
    int rc;
    if (coef && m->orientation != 1) {
        /* Kept blocks are stored unrotated: without the EXIF orientation
         * that says so (stripped, or unusable) the photo would show turned. */
        pm_encode_report scratch;
        memset(&scratch, 0, sizeof scratch);
        if ((rc = select_meta(q, coef, &w, &scratch)) == 0 &&
            (!w.exif || pm_exif_orientation(w.exif, w.exif_len) != m->orientation)) {
            coef = 0;
            why(r, PM_KEEP_BLOCKS, "%s", "the JPEG was re-encoded whole: its blocks are stored rotated and the "
                                         "output carries no EXIF orientation to say so");
        }
        w.text = NULL;
        free_selected(&w);
        if (rc)
            return pm_errorf(PM_ENOMEM, "out of memory copying the image's metadata");
    }
    /* The pixels first: a failed coefficient path falls back to a whole
     * encode, which changes what the metadata must say (the orientation). */
    rc = encode_pixels(q, &coef, &buf, &len, r);
    if (rc)
        return rc;
    if ((rc = select_meta(q, coef, &w, r)) != 0) {
        rc = pm_errorf(PM_ENOMEM, "out of memory copying the image's metadata");
        goto free_meta;
    }
    if (w.icc || w.exif || w.xmp || w.res_unit != PM_RES_NONE || w.ntext || w.png_srgb || w.png_gama || w.has_chrm) {
        if (q->opts.format == PM_FMT_PNG)
            rc = pm_img_png_put_meta(&buf, &len, &w);
        else if (q->opts.format == PM_FMT_JPEG)
            rc = pm_img_jpeg_put_meta(&buf, &len, &w);
        else
            rc = pm_img_webp_put_meta(&buf, &len, &w);
    }
    if (rc == 0)
        r->kept |= (w.icc ? PM_KEEP_ICC : 0) | (w.exif ? PM_KEEP_EXIF : 0) | (w.xmp ? PM_KEEP_XMP : 0) |
                   (w.res_unit != PM_RES_NONE ? PM_KEEP_DPI : 0) | (w.ntext ? PM_KEEP_TEXT : 0) |
                   (w.png_srgb || w.png_gama || w.has_chrm ? PM_KEEP_COLOUR : 0);
free_meta:
    if (rc == 0) {
        *out_data = buf;
        *out_len = len;
        buf = NULL;
    }
    pm_free(buf);
    w.text = NULL; /* borrowed */
    w.ntext = 0;
    free_selected(&w);
    return rc;
}

int pm_image_save_full(const char *path, const pm_encode_req *req, pm_encode_report *rep)
{
    if (!path || !req)
        return pm_errorf(PM_EINVAL, "pm_image_save_full: path and req must not be NULL");
    enum pm_format by_name = pm_format_from_name(path);
    pm_encode_req q = *req;
    if (q.opts.format == PM_FMT_UNKNOWN)
        q.opts.format = by_name;
    if (by_name != PM_FMT_UNKNOWN && q.opts.format != by_name)
        return pm_errorf(PM_EEXTENSION, "asked to write %s data to %s, whose extension says %s; choose a matching name",
                         pm_format_name(q.opts.format), path, pm_format_name(by_name));
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = pm_image_encode_full(&q, &buf, &n, rep);
    if (rc)
        return rc;
    rc = pm_write_file_atomic(path, buf, n);
    pm_free(buf);
    return rc;
}

void pm_bytes_put(pm_bytes *b, const void *d, size_t n)
{
    if (b->failed || !n)
        return;
    if (b->cap - b->len < n) {
        size_t nc = (b->cap + n) * 2;
        uint8_t *np = pm_realloc(b->p, nc);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
