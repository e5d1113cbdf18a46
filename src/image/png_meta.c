/* PNG metadata: the chunks pixmend keeps (iCCP, eXIf, pHYs, iTXt XMP and
 * every tEXt, zTXt and iTXt) are read from the chunk walk in png.c, whose
 * lengths and CRCs are already checked, and written by splicing chunks after
 * IHDR of what libspng encoded (libspng sees pixels only). */
#include "image/image_internal.h"
#include "image/meta.h"

#include <string.h>
#include <zlib.h>

static const char xmp_keyword[] = "XML:com.adobe.xmp";

/* Inflates a zlib stream into a new buffer of at most `cap` bytes (caller
 * owns *out, pm_free). Returns 0, PM_ETOOBIG past the cap, PM_ECORRUPT. */
static int inflate_capped(const uint8_t *src, size_t n, size_t cap, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return PM_ENOMEM;
    size_t size = n * 4 + 1024 < cap ? n * 4 + 1024 : cap;
    uint8_t *buf = pm_malloc(size ? size : 1);
    int rc = 0;
    if (!buf) {
        rc = PM_ENOMEM;
        goto end_stream;
    }
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    for (;;) {
        zs.next_out = buf + zs.total_out;
        zs.avail_out = (uInt)(size - zs.total_out);
        int z = inflate(&zs, Z_NO_FLUSH);
        if (z == Z_STREAM_END)
            break;
        if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = PM_ECORRUPT;
            goto free_buf;
        }
        if (zs.avail_out == 0) {
            if (size >= cap) {
                rc = PM_ETOOBIG;
                goto free_buf;
            }
            size_t nsize = size * 2 < cap ? size * 2 : cap;
            uint8_t *nb = pm_realloc(buf, nsize);
            if (!nb) {
                rc = PM_ENOMEM;
                goto free_buf;
            }
            buf = nb;
            size = nsize;
        } else if (zs.avail_in == 0) {
            rc = PM_ECORRUPT; /* the stream ends without its end marker */
            goto free_buf;
        }
    }
    *out = buf;
    *out_len = zs.total_out;
    buf = NULL;
free_buf:
    pm_free(buf);
end_stream:
    inflateEnd(&zs);
    return rc;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = pm_malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* Keyword length of a text-like chunk (NUL-terminated, 1..79 bytes), or 0. */
static size_t keyword_len(const uint8_t *p, size_t n)
{
    const uint8_t *z = memchr(p, 0, n < 80 ? n : 80);
    return z && z != p ? (size_t)(z - p) : 0;
}

static void read_iccp(pm_image_meta *m, const uint8_t *p, size_t n)
{
    size_t k = keyword_len(p, n);
    if (!k || n < k + 2 || p[k + 1] != 0) {
        pm_warn("metadata_dropped", "the PNG's ICC profile chunk is damaged (bad name or method); it was dropped");
        return;
    }
    uint8_t *icc;
    size_t len;
    int rc = inflate_capped(p + k + 2, n - k - 2, PM_META_MAX_ICC, &icc, &len);
    if (rc == PM_ENOMEM)
        return;
    if (rc) {
        pm_warn("metadata_dropped", "the PNG's ICC profile is %s; it was dropped",
                rc == PM_ETOOBIG ? "larger than pixmend keeps" : "damaged (its compressed data does not inflate)");
        return;
    }
    if (pm_icc_check(icc, len)) {
        pm_warn("metadata_dropped", "the PNG's ICC profile is unusable (%s); it was dropped", pm_error_detail());
        pm_free(icc);
        return;
    }
    m->icc = icc;
    m->icc_len = len;
}

static void read_exif(pm_image_meta *m, const uint8_t *p, size_t n)
{
    if (n >= 6 && !memcmp(p, "Exif\0\0", 6)) { /* a few writers keep the JPEG prefix */
        p += 6;
        n -= 6;
    }
    if (pm_exif_check(p, n)) {
        pm_warn("metadata_dropped", "the PNG's EXIF block is unusable (%s); it was dropped", pm_error_detail());
        return;
    }
    m->exif = dup_bytes(p, n);
    m->exif_len = m->exif ? n : 0;
}

/* iTXt whose keyword is XMP's: the packet goes to m->xmp. Returns 1 if taken. */
static int read_xmp(pm_image_meta *m, const uint8_t *p, size_t n)
{
    size_t k = keyword_len(p, n);
    if (k != sizeof xmp_keyword - 1 || memcmp(p, xmp_keyword, k) || n < k + 3)
        return 0;
    const uint8_t *q = p + k + 1, *end = p + n;
    int compressed = q[0];
    q += 2;
    const uint8_t *z = memchr(q, 0, (size_t)(end - q)); /* language tag */
    if (!z)
        return 0;
    q = z + 1;
    z = memchr(q, 0, (size_t)(end - q)); /* translated keyword */
    if (!z)
        return 0;
    q = z + 1;
    if (compressed) {
        uint8_t *x;
        size_t len;
        if (inflate_capped(q, (size_t)(end - q), PM_META_MAX_XMP, &x, &len) == 0) {
            m->xmp = x;
            m->xmp_len = len;
        }
        return 1;
    }
    if ((size_t)(end - q) > PM_META_MAX_XMP)
        return 1;
    m->xmp = dup_bytes(q, (size_t)(end - q));
    m->xmp_len = m->xmp ? (size_t)(end - q) : 0;
    return 1;
}

static void read_text(pm_image_meta *m, const uint8_t *type, const uint8_t *p, size_t n)
{
    size_t total = 0;
    for (int i = 0; i < m->ntext; i++)
        total += m->text[i].len;
    if (total + n > PM_META_MAX_TEXT || m->ntext >= 4096 || !keyword_len(p, n))
        return;
    pm_png_text *t = pm_realloc(m->text, (size_t)(m->ntext + 1) * sizeof *t);
    if (!t)
        return;
    m->text = t;
    pm_png_text *e = &t[m->ntext];
    memcpy(e->type, type, 4);
    e->type[4] = '\0';
    e->data = dup_bytes(p, n);
    if (!e->data)
        return;
    e->len = n;
    m->ntext++;
}

void pm_img_png_meta_chunk(pm_image_meta *m, const uint8_t *type, const uint8_t *p, size_t n)
{
    if (!memcmp(type, "iCCP", 4) && !m->icc)
        read_iccp(m, p, n);
    else if (!memcmp(type, "eXIf", 4) && !m->exif)
        read_exif(m, p, n);
    else if (!memcmp(type, "pHYs", 4) && n == 9) {
        m->res_x = pm_img_be32(p);
        m->res_y = pm_img_be32(p + 4);
        m->res_unit = p[8] == 1 ? PM_RES_PER_METRE : PM_RES_ASPECT;
        if (!m->res_x || !m->res_y)
            m->res_unit = PM_RES_NONE;
    } else if (!memcmp(type, "sRGB", 4) && n == 1 && p[0] <= 3) {
        m->png_srgb = p[0] + 1;
    } else if (!memcmp(type, "gAMA", 4) && n == 4 && pm_img_be32(p)) {
        m->png_gama = pm_img_be32(p);
    } else if (!memcmp(type, "cHRM", 4) && n == 32) {
        memcpy(m->png_chrm, p, 32);
        m->has_chrm = 1;
    } else if (!memcmp(type, "iTXt", 4) && !m->xmp && read_xmp(m, p, n)) {
        return;
    } else if (!memcmp(type, "tEXt", 4) || !memcmp(type, "zTXt", 4) || !memcmp(type, "iTXt", 4)) {
        read_text(m, type, p, n);
    }
}

/* ------------------------------------------------------------- writing */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One chunk from up to two payload parts. */
static void cb_chunk(pm_bytes *b, const char *type, const void *a, size_t an, const void *c, size_t cn)
{
    uint8_t hdr[8], crc[4];
    put_be32(hdr, (uint32_t)(an + cn));
    memcpy(hdr + 4, type, 4);
    uLong z = crc32(0L, Z_NULL, 0);
    z = crc32(z, (const Bytef *)type, 4);
    if (an)
        z = crc32(z, a, (uInt)an);
    if (cn)
        z = crc32(z, c, (uInt)cn);
    put_be32(crc, (uint32_t)z);
    pm_bytes_put(b, hdr, 8);
    if (an)
        pm_bytes_put(b, a, an);
    if (cn)
        pm_bytes_put(b, c, cn);
    pm_bytes_put(b, crc, 4);
}

/* Replaces *buf (an encoded PNG: signature + IHDR first) with one that has
 * the chunks of `m` after IHDR. Frees the old buffer on success. */
int pm_img_png_put_meta(uint8_t **buf, size_t *len, const pm_image_meta *m)
{
    const size_t head = 8 + 12 + 13; /* signature + IHDR */
    if (*len < head)
        return pm_errorf(PM_EINTERNAL, "the encoded PNG is too short to add metadata to");
    pm_bytes b = {0};
    pm_bytes_put(&b, *buf, head);
    int rc = 0;
    if (m->icc) {
        uLongf zn = compressBound((uLong)m->icc_len);
        uint8_t *z = pm_malloc(zn);
        if (!z || compress2(z, &zn, m->icc, (uLong)m->icc_len, 9) != Z_OK) {
            pm_free(z);
            rc = pm_errorf(PM_ENOMEM, "out of memory compressing the ICC profile");
            goto free_buf;
        }
        static const uint8_t name[] = "ICC Profile\0"; /* name, NUL, method 0 */
        cb_chunk(&b, "iCCP", name, sizeof name, z, zn);
        pm_free(z);
    }
    if (m->has_chrm)
        cb_chunk(&b, "cHRM", m->png_chrm, 32, NULL, 0);
    if (m->png_gama) {
        uint8_t g[4];
        put_be32(g, m->png_gama);
        cb_chunk(&b, "gAMA", g, 4, NULL, 0);
    }
    if (m->png_srgb && !m->icc) { /* PNG allows one of iCCP and sRGB */
        uint8_t intent = (uint8_t)(m->png_srgb - 1);
        cb_chunk(&b, "sRGB", &intent, 1, NULL, 0);
    }
    if (m->res_unit != PM_RES_NONE) {
        /* pHYs counts pixels per metre (or gives an aspect ratio only). */
        double k = m->res_unit == PM_RES_PER_INCH ? 1.0 / 0.0254 : m->res_unit == PM_RES_PER_CM ? 100.0 : 1.0;
        double x = m->res_x * k + 0.5, y = m->res_y * k + 0.5;
        uint8_t p[9];
        put_be32(p, x > 4294967295.0 ? 0xffffffffu : (uint32_t)x);
        put_be32(p + 4, y > 4294967295.0 ? 0xffffffffu : (uint32_t)y);
        p[8] = m->res_unit == PM_RES_ASPECT ? 0 : 1;
        cb_chunk(&b, "pHYs", p, 9, NULL, 0);
    }
    if (m->exif)
        cb_chunk(&b, "eXIf", m->exif, m->exif_len, NULL, 0);
    if (m->xmp) {
        static const uint8_t hdr[] = "XML:com.adobe.xmp\0\0\0\0\0"; /* keyword, flag, method, lang, tkey */
        cb_chunk(&b, "iTXt", hdr, sizeof hdr - 1, m->xmp, m->xmp_len);
    }
    for (int i = 0; i < m->ntext; i++)
        cb_chunk(&b, m->text[i].type, m->text[i].data, m->text[i].len, NULL, 0);
    pm_bytes_put(&b, *buf + head, *len - head);
    if (b.failed) {
        rc = pm_errorf(PM_ENOMEM, "out of memory adding metadata to the PNG");
        goto free_buf;
    }
    pm_free(*buf);
    *buf = b.p;
    *len = b.len;
    return 0;
free_buf:
    pm_free(b.p);
    return rc;
}
