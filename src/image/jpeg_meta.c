/* JPEG metadata: collected from the marker walk in jpeg.c (APP0 JFIF
 * density, APP1 Exif, APP1 XMP, APP2 ICC_PROFILE in up to 255 numbered
 * pieces) and written by splicing markers after SOI of an encoded JPEG, in
 * the order JFIF, Exif, XMP, ICC that readers expect. */
#include "image/image_internal.h"
#include "image/jpeg_meta.h"

#include <string.h>

static const char xmp_sig[] = "http://ns.adobe.com/xap/1.0/"; /* + NUL */
static const char icc_sig[] = "ICC_PROFILE";                  /* + NUL, seq, count */

#define SEG_MAX 65533u /* payload bytes of one marker segment */

void pm_img_jpeg_meta_segment(pm_jpeg_meta_acc *a, uint8_t marker, const uint8_t *seg, size_t n)
{
    pm_image_meta *m = a->m;
    if (marker == 0xe0 && !a->seen_jfif && n >= 12 && !memcmp(seg, "JFIF\0", 5)) {
        a->seen_jfif = 1;
        unsigned x = pm_img_be16(seg + 8), y = pm_img_be16(seg + 10);
        if ((seg[7] == 1 || seg[7] == 2) && x && y) {
            m->res_unit = seg[7] == 1 ? PM_RES_PER_INCH : PM_RES_PER_CM;
            m->res_x = x;
            m->res_y = y;
        }
    } else if (marker == 0xe1 && !a->seen_exif && n >= 6 && !memcmp(seg, "Exif\0\0", 6)) {
        a->seen_exif = 1;
        if (pm_exif_check(seg + 6, n - 6)) {
            pm_warn("metadata_dropped", "the JPEG's EXIF block is unusable (%s); it was dropped", pm_error_detail());
            return;
        }
        m->exif = pm_malloc(n - 6);
        if (m->exif) {
            memcpy(m->exif, seg + 6, n - 6);
            m->exif_len = n - 6;
        }
    } else if (marker == 0xe1 && !a->seen_xmp && n > sizeof xmp_sig && !memcmp(seg, xmp_sig, sizeof xmp_sig)) {
        a->seen_xmp = 1;
        size_t k = n - sizeof xmp_sig;
        m->xmp = pm_malloc(k);
        if (m->xmp) {
            memcpy(m->xmp, seg + sizeof xmp_sig, k);
            m->xmp_len = k;
        }
    } else if (marker == 0xe2 && n >= sizeof icc_sig + 2 && !memcmp(seg, icc_sig, sizeof icc_sig)) {
        unsigned seq = seg[sizeof icc_sig], count = seg[sizeof icc_sig + 1];
        if (seq == 0 || count == 0 || seq > count || (a->icc_count && count != (unsigned)a->icc_count) ||
            a->icc_seg[seq]) {
            a->icc_bad = 1;
            return;
        }
        a->icc_count = (int)count;
        a->icc_seg[seq] = seg + sizeof icc_sig + 2;
        a->icc_len[seq] = n - sizeof icc_sig - 2;
    }
}

void pm_img_jpeg_meta_finish(pm_jpeg_meta_acc *a)
{
    if (!a->icc_count && !a->icc_bad)
        return;
    size_t total = 0;
    for (int i = 1; i <= a->icc_count; i++) {
        if (!a->icc_seg[i])
            a->icc_bad = 1;
        total += a->icc_len[i];
    }
    if (a->icc_bad || !a->icc_count) {
        pm_warn("metadata_dropped", "the JPEG's ICC profile is damaged (pieces missing or repeated); it was dropped");
        return;
    }
    uint8_t *p = pm_malloc(total ? total : 1);
    if (!p)
        return;
    size_t at = 0;
    for (int i = 1; i <= a->icc_count; i++) {
        memcpy(p + at, a->icc_seg[i], a->icc_len[i]);
        at += a->icc_len[i];
    }
    if (pm_icc_check(p, total)) {
        pm_warn("metadata_dropped", "the JPEG's ICC profile is unusable (%s); it was dropped", pm_error_detail());
        pm_free(p);
        return;
    }
    a->m->icc = p;
    a->m->icc_len = total;
}

/* ------------------------------------------------------------- writing */

/* One marker segment from a header part and a body part (total <= SEG_MAX). */
static void sb_marker(pm_bytes *b, uint8_t marker, const void *h, size_t hn, const void *d, size_t dn)
{
    size_t seglen = hn + dn + 2;
    uint8_t m[4] = {0xff, marker, (uint8_t)(seglen >> 8), (uint8_t)seglen};
    pm_bytes_put(b, m, 4);
    pm_bytes_put(b, h, hn);
    pm_bytes_put(b, d, dn);
}

unsigned pm_img_jpeg_meta_fits(const pm_image_meta *m)
{
    unsigned bad = 0;
    if (m->exif && m->exif_len + 6 > SEG_MAX)
        bad |= PM_KEEP_EXIF;
    if (m->xmp && m->xmp_len + sizeof xmp_sig > SEG_MAX)
        bad |= PM_KEEP_XMP;
    if (m->icc && m->icc_len > 255u * (SEG_MAX - sizeof icc_sig - 2))
        bad |= PM_KEEP_ICC;
    if (m->res_unit == PM_RES_PER_METRE && (m->res_x / 100 > 65535 || m->res_y / 100 > 65535))
        bad |= PM_KEEP_DPI;
    return bad;
}

/* JFIF density from the carrier's resolution: per inch or per cm as given;
 * PNG's pixels per metre become per cm when that is exact, else per inch. */
static void jfif_density(const pm_image_meta *m, uint8_t *unit, unsigned *x, unsigned *y)
{
    uint32_t rx = m->res_x, ry = m->res_y;
    if (m->res_unit == PM_RES_PER_INCH || m->res_unit == PM_RES_PER_CM) {
        *unit = m->res_unit == PM_RES_PER_INCH ? 1 : 2;
    } else if (rx % 100 == 0 && ry % 100 == 0) {
        *unit = 2;
        rx /= 100;
        ry /= 100;
    } else {
        *unit = 1;
        rx = (uint32_t)(rx * 0.0254 + 0.5);
        ry = (uint32_t)(ry * 0.0254 + 0.5);
    }
    *x = rx > 65535 ? 65535 : rx ? rx : 1;
    *y = ry > 65535 ? 65535 : ry ? ry : 1;
}

/* Replaces *buf (an encoded JPEG) with one carrying `m`'s markers after SOI;
 * the encoder's own APP0 JFIF is replaced when `m` has a density. The caller
 * has checked pm_img_jpeg_meta_fits. Frees the old buffer on success. */
int pm_img_jpeg_put_meta(uint8_t **buf, size_t *len, const pm_image_meta *m)
{
    const uint8_t *d = *buf;
    size_t n = *len, pos = 2;
    if (n < 4 || d[0] != 0xff || d[1] != 0xd8)
        return pm_errorf(PM_EINTERNAL, "the encoded JPEG does not start with SOI");
    int has_density = m->res_unit == PM_RES_PER_INCH || m->res_unit == PM_RES_PER_CM ||
                      m->res_unit == PM_RES_PER_METRE;
    /* The encoder's APP0 JFIF, if it wrote one, is kept unless ours replaces it. */
    size_t jfif_end = 2;
    if (n >= 6 && d[2] == 0xff && d[3] == 0xe0) {
        size_t sl = pm_img_be16(d + 4);
        if (sl + 4 <= n)
            jfif_end = 4 + sl;
    }
    pm_bytes b = {0};
    pm_bytes_put(&b, d, 2);
    if (has_density) {
        uint8_t unit;
        unsigned x, y;
        jfif_density(m, &unit, &x, &y);
        uint8_t app0[14] = {'J', 'F', 'I', 'F', 0, 1, 1, unit, (uint8_t)(x >> 8), (uint8_t)x,
                            (uint8_t)(y >> 8), (uint8_t)y, 0, 0};
        sb_marker(&b, 0xe0, app0, sizeof app0, NULL, 0);
        pos = jfif_end;
    } else {
        pm_bytes_put(&b, d + 2, jfif_end - 2);
        pos = jfif_end;
    }
    if (m->exif)
        sb_marker(&b, 0xe1, "Exif\0", 6, m->exif, m->exif_len);
    if (m->xmp)
        sb_marker(&b, 0xe1, xmp_sig, sizeof xmp_sig, m->xmp, m->xmp_len);
    if (m->icc) {
        size_t piece = SEG_MAX - sizeof icc_sig - 2;
        size_t count = (m->icc_len + piece - 1) / piece;
        for (size_t i = 0; i < count; i++) {
            uint8_t h[sizeof icc_sig + 2];
            memcpy(h, icc_sig, sizeof icc_sig);
            h[sizeof icc_sig] = (uint8_t)(i + 1);
            h[sizeof icc_sig + 1] = (uint8_t)count;
            size_t take = m->icc_len - i * piece < piece ? m->icc_len - i * piece : piece;
            sb_marker(&b, 0xe2, h, sizeof h, m->icc + i * piece, take);
        }
    }
    pm_bytes_put(&b, d + pos, n - pos);
    if (b.failed) {
        pm_free(b.p);
        return pm_errorf(PM_ENOMEM, "out of memory adding metadata to the JPEG");
    }
    pm_free(*buf);
    *buf = b.p;
    *len = b.len;
    return 0;
}
