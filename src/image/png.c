/* PNG through libspng. Before libspng sees the data, the chunk structure is
 * walked here (lengths, CRCs, IHDR, IEND) so that truncation and damage get
 * their own codes and no pixel buffer is sized from an unchecked header.
 * libspng allocates through the counting allocator, so its memory shows in
 * pm_mem_in_use(). */
#include "image/image_internal.h"
#include "image/meta.h"

#include <spng.h>
#include <string.h>
#include <zlib.h>

/* Ancillary chunks (text, ICC profiles, EXIF) are only metadata to us.
 * libspng also caps the number of chunks (1000 by default). */
#define PNG_CHUNK_SIZE_LIMIT (8u * 1024u * 1024u)
#define PNG_CHUNK_CACHE_LIMIT (16u * 1024u * 1024u)

struct png_header {
    uint32_t width, height;
    uint8_t depth, color, interlace;
    int has_plte, has_trns;
};

static struct spng_alloc pm_spng_alloc = {pm_malloc, pm_realloc, pm_calloc, pm_free};

static int is_letter(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int valid_depth(uint8_t color, uint8_t depth)
{
    switch (color) {
    case 0: return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3: return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6: return depth == 8 || depth == 16;
    default: return 0;
    }
}

static int parse_ihdr(const uint8_t *p, struct png_header *h)
{
    h->width = pm_img_be32(p);
    h->height = pm_img_be32(p + 4);
    h->depth = p[8];
    h->color = p[9];
    h->interlace = p[12];
    if (h->width == 0 || h->height == 0 || h->width > 0x7fffffffu || h->height > 0x7fffffffu)
        return pm_errorf(PM_ECORRUPT, "the PNG header gives an invalid size %ux%u; the file is damaged",
                         h->width, h->height);
    if (!valid_depth(h->color, h->depth))
        return pm_errorf(PM_ECORRUPT, "the PNG header gives colour type %u with bit depth %u, which PNG does not allow; the file is damaged",
                         h->color, h->depth);
    if (p[10] != 0 || p[11] != 0 || p[12] > 1)
        return pm_errorf(PM_ECORRUPT, "the PNG header names an unknown compression, filter or interlace method; the file is damaged");
    return 0;
}

/* Walks every chunk: each must fit in the data and carry a correct CRC; the
 * first is IHDR, and IEND must be reached. Fills *h. The size limits (lim may
 * be NULL for the defaults) are checked as soon as IHDR is read, so an
 * oversized image is reported as such even when the rest is damaged. */
static int png_walk(const uint8_t *d, size_t len, const pm_limits *lim, struct png_header *h, pm_image_meta *meta)
{
    memset(h, 0, sizeof *h);
    size_t pos = 8;
    int seen_ihdr = 0, seen_idat = 0;
    for (;;) {
        if (len - pos < 12) {
            if (len == pos)
                return pm_errorf(PM_ETRUNCATED, "the PNG data ends after %zu bytes, before its IEND chunk; the file is truncated",
                                 len);
            return pm_errorf(PM_ETRUNCATED, "the PNG data ends after %zu bytes, inside a chunk header; the file is truncated",
                             len);
        }
        const uint8_t *c = d + pos;
        uint32_t clen = pm_img_be32(c);
        const uint8_t *type = c + 4;
        if (!is_letter(type[0]) || !is_letter(type[1]) || !is_letter(type[2]) || !is_letter(type[3]))
            return pm_errorf(PM_ECORRUPT, "the PNG chunk at byte %zu has an invalid type; the file is damaged", pos);
        if (clen > 0x7fffffffu)
            return pm_errorf(PM_ECORRUPT, "the PNG %.4s chunk at byte %zu claims %u bytes, more than PNG allows; the file is damaged",
                             (const char *)type, pos, clen);
        if (len - pos - 12 < clen)
            return pm_errorf(PM_ETRUNCATED, "the PNG data ends after %zu bytes, inside the %.4s chunk that starts at byte %zu and needs %u bytes; the file is truncated",
                             len, (const char *)type, pos, clen);
        uint32_t want = pm_img_be32(c + 8 + clen);
        uint32_t got = (uint32_t)crc32(crc32(0L, Z_NULL, 0), type, clen + 4);
        if (want != got)
            return pm_errorf(PM_ECORRUPT, "the PNG %.4s chunk at byte %zu has a bad CRC; the file is damaged",
                             (const char *)type, pos);
        if (!seen_ihdr) {
            if (memcmp(type, "IHDR", 4) || clen != 13)
                return pm_errorf(PM_ECORRUPT, "the PNG data does not start with a valid IHDR chunk; the file is damaged");
            int rc = parse_ihdr(c + 8, h);
            if (rc == 0)
                rc = pm_img_check_limits((int)h->width, (int)h->height, lim);
            if (rc)
                return rc;
            seen_ihdr = 1;
        } else if (!memcmp(type, "PLTE", 4)) {
            h->has_plte = 1;
        } else if (!memcmp(type, "tRNS", 4)) {
            h->has_trns = 1;
        } else if (!memcmp(type, "IDAT", 4)) {
            seen_idat = 1;
        } else if (!memcmp(type, "IEND", 4)) {
            break;
        } else if (meta && (type[0] & 0x20)) {
            pm_img_png_meta_chunk(meta, type, c + 8, clen); /* ancillary: lower-case first letter */
        }
        pos += 12 + (size_t)clen;
    }
    if (!seen_idat)
        return pm_errorf(PM_ECORRUPT, "the PNG has no image data (IDAT chunk); the file is damaged");
    if (h->color == 3 && !h->has_plte)
        return pm_errorf(PM_ECORRUPT, "the PNG is palette-based but has no palette (PLTE chunk); the file is damaged");
    if (h->color == 4 || h->color == 6)
        h->has_trns = 0; /* not allowed with an alpha channel; ignore it */
    return 0;
}

static int png_channels(const struct png_header *h)
{
    if (h->color == 4 || h->color == 6 || h->has_trns)
        return 4;
    return h->color == 0 ? 1 : 3;
}

int pm_img_png_probe(const uint8_t *data, size_t len, const pm_limits *lim, pm_image_info *info)
{
    struct png_header h;
    int rc = png_walk(data, len, lim, &h, NULL);
    if (rc)
        return rc;
    info->format = PM_FMT_PNG;
    info->width = (int)h.width;
    info->height = (int)h.height;
    info->channels = png_channels(&h);
    info->orientation = 1;
    return 0;
}

/* Maps a libspng decoding error to our codes; the structure walk already
 * caught truncation and CRC damage, so what remains is inside the streams. */
static int spng_fail(int err)
{
    switch (err) {
    case SPNG_EMEM:
        return pm_errorf(PM_ENOMEM, "out of memory decoding the PNG");
    case SPNG_EOF:
        return pm_errorf(PM_ETRUNCATED, "the PNG data ends early; the file is truncated");
    case SPNG_EIDAT_TOO_SHORT:
        return pm_errorf(PM_ECORRUPT, "the PNG image data ends before the last row; the file is damaged");
    case SPNG_ECHUNK_LIMITS:
        return pm_errorf(PM_ETOOBIG, "the PNG metadata chunks exceed %u MiB; strip the metadata and retry",
                         PNG_CHUNK_CACHE_LIMIT >> 20);
    case SPNG_ECHUNK_UNKNOWN_CRITICAL:
        return pm_errorf(PM_EUNSUPPORTED, "the PNG uses a critical chunk this decoder does not know (an APNG or PNG extension?)");
    default:
        return pm_errorf(PM_ECORRUPT, "the PNG data is damaged: %s", spng_strerror(err));
    }
}

/* A copy of the PNG with its critical chunks only (IHDR, PLTE, tRNS, IDAT,
 * IEND), for a second try when libspng refuses an ancillary chunk; the walk
 * has checked every length. Caller owns *out (pm_free). */
static int critical_copy(const uint8_t *d, size_t len, uint8_t **out, size_t *out_len)
{
    uint8_t *c = pm_malloc(len);
    if (!c)
        return pm_errorf(PM_ENOMEM, "out of memory decoding the PNG");
    memcpy(c, d, 8);
    size_t pos = 8, n = 8;
    while (len - pos >= 12) {
        uint32_t clen = pm_img_be32(d + pos);
        const uint8_t *type = d + pos + 4;
        if (!(type[0] & 0x20) || !memcmp(type, "tRNS", 4)) {
            memcpy(c + n, d + pos, 12 + (size_t)clen);
            n += 12 + (size_t)clen;
        }
        if (!memcmp(type, "IEND", 4))
            break;
        pos += 12 + (size_t)clen;
    }
    *out = c;
    *out_len = n;
    return 0;
}

/* Decodes the pixels with libspng into `dst` (need bytes) in format `fmt`. */
static int spng_pixels(const uint8_t *data, size_t len, const struct png_header *h, int fmt, int flags,
                       void *dst, size_t need)
{
    spng_ctx *ctx = spng_ctx_new2(&pm_spng_alloc, 0);
    if (!ctx)
        return pm_errorf(PM_ENOMEM, "out of memory starting the PNG decoder");
    int err = spng_set_png_buffer(ctx, data, len);
    if (!err)
        err = spng_set_image_limits(ctx, h->width, h->height);
    if (!err)
        err = spng_set_chunk_limits(ctx, PNG_CHUNK_SIZE_LIMIT, PNG_CHUNK_CACHE_LIMIT);
    size_t want = 0;
    if (!err)
        err = spng_decoded_image_size(ctx, fmt, &want);
    int rc = 0;
    if (!err && want != need)
        rc = pm_errorf(PM_EINTERNAL, "libspng wants %zu bytes for a %ux%u image; expected %zu", want, h->width,
                       h->height, need);
    else if (!err)
        err = spng_decode_image(ctx, dst, need, fmt, flags);
    if (err)
        rc = spng_fail(err);
    spng_ctx_free(ctx);
    return rc;
}

/* Caller owns *out on success, and what *meta (may be NULL) gained. A 16-bit
 * image is decoded at 16 bits; the 8-bit pixels are the high bytes, and with
 * `meta` the 16-bit samples are kept in meta->deep. */
int pm_img_png_decode(const uint8_t *data, size_t len, const pm_limits *lim, pm_image *out, pm_image_meta *meta)
{
    struct png_header h;
    int rc = png_walk(data, len, lim, &h, meta);
    if (rc)
        return rc;
    rc = pm_img_check_limits((int)h.width, (int)h.height, lim);
    if (rc)
        return rc;

    int channels = png_channels(&h);
    /* 16-bit: kept at 16 bits for the carrier (meta->deep); without one,
     * grey is reduced in place and colour is reduced by libspng. */
    int deep = h.depth == 16 && meta;
    int gray16 = h.depth == 16 && channels == 1 && !meta;
    int fmt, flags = 0;
    if (channels == 1) {
        fmt = deep || gray16 ? SPNG_FMT_PNG : SPNG_FMT_G8;
    } else {
        fmt = deep ? SPNG_FMT_RGBA16 : channels == 4 ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8; /* no RGB16 in libspng */
        flags = SPNG_DECODE_TRNS;
    }
    int dc = channels == 3 && deep ? 4 : channels;
    size_t packed = (size_t)h.width * h.height * (size_t)channels;
    size_t need = (size_t)h.width * h.height * (size_t)dc * (deep || gray16 ? 2 : 1);
    uint16_t *wide = NULL;
    rc = pm_img_alloc_raw(out, (int)h.width, (int)h.height, channels, deep ? packed : need);
    if (rc)
        return rc;
    if (deep && !(wide = pm_malloc(need))) {
        rc = pm_errorf(PM_ENOMEM, "out of memory decoding a %ux%u 16-bit PNG", h.width, h.height);
        goto free_image;
    }
    void *dst = deep ? (void *)wide : (void *)out->data;
    rc = spng_pixels(data, len, &h, fmt, flags, dst, need);
    if (rc && rc != PM_ENOMEM && rc != PM_EINTERNAL) {
        /* libspng refuses some damaged ancillary chunks; the pixels do not need them. */
        uint8_t *c = NULL;
        size_t cn = 0;
        int rc2 = critical_copy(data, len, &c, &cn);
        if (rc2 == 0) {
            if (cn < len && spng_pixels(c, cn, &h, fmt, flags, dst, need) == 0) {
                pm_warn("metadata_dropped", "the PNG has a damaged metadata chunk (%s); it was skipped",
                        pm_error_detail());
                rc = 0;
            }
            pm_free(c);
        }
    }
    if (rc)
        goto free_image;
    if (gray16) {
        /* Host-endian 16-bit samples to their high byte, in place, front to back. */
        const uint16_t *g = (const uint16_t *)(const void *)out->data;
        for (size_t i = 0; i < packed; i++)
            out->data[i] = (uint8_t)(g[i] >> 8);
    }
    if (deep) {
        /* Packs the 16-bit samples to `channels` and takes their high bytes. */
        for (size_t i = 0, px = (size_t)h.width * h.height; i < px; i++)
            for (int k = 0; k < channels; k++) {
                uint16_t v = wide[i * dc + k];
                wide[i * channels + k] = v;
                out->data[i * channels + k] = (uint8_t)(v >> 8);
            }
        meta->deep = wide;
        meta->deep_channels = channels;
        wide = NULL;
    }
    pm_free(wide);
    return 0;

free_image:
    pm_free(wide);
    pm_image_free(out);
    return rc;
}

/* Caller owns *out_data (pm_free): libspng allocates it with pm_malloc. */
int pm_img_png_encode(const pm_image *img, const uint16_t *deep, uint8_t **out_data, size_t *out_len)
{
    int rc = 0;
    spng_ctx *ctx = spng_ctx_new2(&pm_spng_alloc, SPNG_CTX_ENCODER);
    if (!ctx)
        return pm_errorf(PM_ENOMEM, "out of memory starting the PNG encoder");
    struct spng_ihdr ihdr;
    memset(&ihdr, 0, sizeof ihdr);
    ihdr.width = (uint32_t)img->width;
    ihdr.height = (uint32_t)img->height;
    ihdr.bit_depth = deep ? 16 : 8;
    ihdr.color_type = img->channels == 1 ? SPNG_COLOR_TYPE_GRAYSCALE
                      : img->channels == 3 ? SPNG_COLOR_TYPE_TRUECOLOR
                                           : SPNG_COLOR_TYPE_TRUECOLOR_ALPHA;
    int err = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    if (!err)
        err = spng_set_ihdr(ctx, &ihdr);
    size_t n = (size_t)img->width * img->height * img->channels * (deep ? 2 : 1);
    if (!err) /* SPNG_FMT_PNG: 16-bit samples in host order */
        err = spng_encode_image(ctx, deep ? (const void *)deep : (const void *)img->data, n, SPNG_FMT_PNG,
                                SPNG_ENCODE_FINALIZE);
    if (err) {
        rc = err == SPNG_EMEM ? pm_errorf(PM_ENOMEM, "out of memory encoding a %dx%d PNG", img->width, img->height)
                              : pm_errorf(PM_EINTERNAL, "PNG encoding failed: %s", spng_strerror(err));
        goto free_ctx;
    }
    size_t len = 0;
    void *buf = spng_get_png_buffer(ctx, &len, &err);
    if (!buf || err) {
        rc = pm_errorf(PM_EINTERNAL, "PNG encoding failed: %s", spng_strerror(err));
        goto free_ctx;
    }
    *out_data = buf;
    *out_len = len;

free_ctx:
    spng_ctx_free(ctx);
    return rc;
}
