/* Generators for image-layer tests; see image_fixtures.h. */
#include "image_fixtures.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <webp/encode.h>
#include <zlib.h>

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

size_t fx_png_rowbytes(int w, int color, int depth)
{
    int ch = color == 0 || color == 3 ? 1 : color == 2 ? 3 : color == 4 ? 2 : 4;
    return ((size_t)w * ch * depth + 7) / 8;
}

uint8_t *fx_png(const void *raw, int w, int h, int color, int depth, int interlace,
                const uint8_t *plte, int n_plte, const uint8_t *trns, int n_trns, size_t *len)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    assert_non_null(ctx);
    assert_int_equal(spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1), 0);
    struct spng_ihdr ihdr = {(uint32_t)w, (uint32_t)h, (uint8_t)depth, (uint8_t)color, 0, 0, (uint8_t)interlace};
    assert_int_equal(spng_set_ihdr(ctx, &ihdr), 0);
    if (plte) {
        struct spng_plte p;
        memset(&p, 0, sizeof p);
        p.n_entries = (uint32_t)n_plte;
        for (int i = 0; i < n_plte; i++) {
            p.entries[i].red = plte[3 * i];
            p.entries[i].green = plte[3 * i + 1];
            p.entries[i].blue = plte[3 * i + 2];
        }
        assert_int_equal(spng_set_plte(ctx, &p), 0);
    }
    if (trns) {
        struct spng_trns t;
        memset(&t, 0, sizeof t);
        if (color == 3) {
            t.n_type3_entries = (uint32_t)n_trns;
            memcpy(t.type3_alpha, trns, (size_t)n_trns);
        } else if (color == 0) {
            t.gray = (uint16_t)((trns[0] << 8) | trns[1]);
        } else {
            t.red = (uint16_t)((trns[0] << 8) | trns[1]);
            t.green = (uint16_t)((trns[2] << 8) | trns[3]);
            t.blue = (uint16_t)((trns[4] << 8) | trns[5]);
        }
        assert_int_equal(spng_set_trns(ctx, &t), 0);
    }
    size_t n = fx_png_rowbytes(w, color, depth) * (size_t)h;
    int e = spng_encode_image(ctx, raw, n, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (e)
        fail_msg("spng_encode_image: %s", spng_strerror(e));
    void *buf = spng_get_png_buffer(ctx, len, &e);
    assert_non_null(buf);
    spng_ctx_free(ctx);
    return buf;
}

static void append(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    while (*len + n > *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *buf = realloc(*buf, *cap);
        assert_non_null(*buf);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

static void append_chunk(uint8_t **buf, size_t *len, size_t *cap, const char *type, const uint8_t *data,
                         uint32_t n)
{
    uint8_t hdr[8];
    put_be32(hdr, n);
    memcpy(hdr + 4, type, 4);
    append(buf, len, cap, hdr, 8);
    if (n)
        append(buf, len, cap, data, n);
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)type, 4);
    if (n)
        crc = (uint32_t)crc32(crc, data, n);
    uint8_t c[4];
    put_be32(c, crc);
    append(buf, len, cap, c, 4);
}

uint8_t *fx_png_zero_rows(uint32_t w, uint32_t h, int color, int depth, uint32_t rows, size_t *len)
{
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    append(&buf, &n, &cap, sig, 8);
    uint8_t ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)color;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    append_chunk(&buf, &n, &cap, "IHDR", ihdr, 13);

    size_t rowlen = fx_png_rowbytes((int)w, color, depth) + 1;
    uint8_t *row = calloc(rowlen, 1);
    size_t zcap = 1 << 16, zlen = 0;
    uint8_t *z = malloc(zcap);
    assert_true(row && z);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit(&zs, 9), Z_OK);
    for (uint32_t r = 0; r <= rows; r++) {
        int finish = r == rows;
        zs.next_in = row;
        zs.avail_in = finish ? 0 : (uInt)rowlen;
        for (;;) {
            if (zcap - zlen < 4096) {
                zcap *= 2;
                z = realloc(z, zcap);
                assert_non_null(z);
            }
            zs.next_out = z + zlen;
            zs.avail_out = (uInt)(zcap - zlen);
            int zr = deflate(&zs, finish ? Z_FINISH : Z_NO_FLUSH);
            assert_true(zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR);
            zlen = zcap - zs.avail_out;
            if (finish ? zr == Z_STREAM_END : zs.avail_in == 0)
                break;
        }
    }
    deflateEnd(&zs);
    append_chunk(&buf, &n, &cap, "IDAT", z, (uint32_t)zlen);
    append_chunk(&buf, &n, &cap, "IEND", NULL, 0);
    free(row);
    free(z);
    *len = n;
    return buf;
}

void fx_png_fix_crc(uint8_t *png, size_t pos)
{
    uint32_t n = ((uint32_t)png[pos] << 24) | ((uint32_t)png[pos + 1] << 16) | ((uint32_t)png[pos + 2] << 8) |
                 png[pos + 3];
    uint32_t crc = (uint32_t)crc32(0, png + pos + 4, n + 4);
    put_be32(png + pos + 8 + n, crc);
}

uint8_t *fx_jpeg(const uint8_t *pixels, int w, int h, int pf, int subsamp, int quality, int flags, size_t *len)
{
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *jbuf = NULL;
    unsigned long jlen = 0;
    if (tjCompress2(tj, pixels, w, 0, h, pf, &jbuf, &jlen, subsamp, quality, flags) != 0)
        fail_msg("tjCompress2: %s", tjGetErrorStr2(tj));
    uint8_t *out = malloc(jlen);
    assert_non_null(out);
    memcpy(out, jbuf, jlen);
    *len = jlen;
    tjFree(jbuf);
    tjDestroy(tj);
    return out;
}

static void put16(uint8_t *p, unsigned v, int be)
{
    if (be) {
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
    } else {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
    }
}

static void put32(uint8_t *p, uint32_t v, int be)
{
    if (be) {
        put16(p, v >> 16, 1);
        put16(p + 2, v & 0xffff, 1);
    } else {
        put16(p, v & 0xffff, 0);
        put16(p + 2, v >> 16, 0);
    }
}

uint8_t *fx_jpeg_with_exif(const uint8_t *jpeg, size_t len, int orientation, int be, size_t *out_len)
{
    /* TIFF: header (8) + IFD0 count (2) + 2 entries (24) + next-IFD (4) */
    uint8_t tiff[38];
    memset(tiff, 0, sizeof tiff);
    memcpy(tiff, be ? "MM" : "II", 2);
    put16(tiff + 2, 42, be);
    put32(tiff + 4, 8, be);
    put16(tiff + 8, 2, be);
    uint8_t *e = tiff + 10;
    put16(e, 0x010f, be); /* Make, ASCII, 4 bytes inline */
    put16(e + 2, 2, be);
    put32(e + 4, 4, be);
    memcpy(e + 8, "pm!", 4);
    e += 12;
    put16(e, 0x0112, be); /* Orientation, SHORT, 1 */
    put16(e + 2, 3, be);
    put32(e + 4, 1, be);
    put16(e + 8, (unsigned)orientation, be);
    /* next IFD offset stays 0 */
    size_t seg = 2 + 6 + sizeof tiff;
    uint8_t *out = malloc(len + 2 + seg);
    assert_non_null(out);
    memcpy(out, jpeg, 2); /* SOI */
    uint8_t *p = out + 2;
    p[0] = 0xff;
    p[1] = 0xe1;
    p[2] = (uint8_t)(seg >> 8);
    p[3] = (uint8_t)seg;
    memcpy(p + 4, "Exif\0\0", 6);
    memcpy(p + 10, tiff, sizeof tiff);
    memcpy(out + 2 + 2 + seg, jpeg + 2, len - 2);
    *out_len = len + 2 + seg;
    return out;
}

uint8_t *fx_webp(const uint8_t *pixels, int w, int h, int channels, int lossless, int quality, size_t *len)
{
    WebPConfig cfg;
    assert_true(WebPConfigInit(&cfg));
    cfg.lossless = lossless;
    cfg.exact = lossless;
    cfg.quality = (float)quality;
    WebPPicture pic;
    assert_true(WebPPictureInit(&pic));
    pic.width = w;
    pic.height = h;
    pic.use_argb = 1;
    if (channels == 4)
        assert_true(WebPPictureImportRGBA(&pic, pixels, w * 4));
    else
        assert_true(WebPPictureImportRGB(&pic, pixels, w * 3));
    WebPMemoryWriter wr;
    WebPMemoryWriterInit(&wr);
    pic.writer = WebPMemoryWrite;
    pic.custom_ptr = &wr;
    if (!WebPEncode(&cfg, &pic))
        fail_msg("WebPEncode failed: %d", (int)pic.error_code);
    uint8_t *out = malloc(wr.size);
    assert_non_null(out);
    memcpy(out, wr.mem, wr.size);
    *len = wr.size;
    WebPMemoryWriterClear(&wr);
    WebPPictureFree(&pic);
    return out;
}

void fx_random_bytes(uint8_t *out, size_t n, uint32_t seed)
{
    uint32_t x = seed ? seed : 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out[i] = (uint8_t)(x >> 11);
    }
}
