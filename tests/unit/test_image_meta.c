/* The metadata carrier: the EXIF editor (orientation, GPS, thumbnail) on
 * hand-built TIFF blocks in both byte orders and on every truncation of
 * them; the ICC check; 16-bit PNG samples kept exactly outside a repair;
 * what each output format keeps and reports; the JPEG coefficient path with
 * nothing changed reproduces the source's pixels everywhere. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "image/image_internal.h"
#include "image/meta.h"
#include "models/patchmatch.h"
#include "pipeline/pipeline.h"
#include "support/image_fixtures.h"

/* ------------------------------------------------------------ a TIFF block */

typedef struct tw {
    uint8_t b[512];
    size_t n;
    int le;
} tw;

static void put16(tw *t, size_t at, unsigned v)
{
    t->b[at + (t->le ? 0 : 1)] = (uint8_t)v;
    t->b[at + (t->le ? 1 : 0)] = (uint8_t)(v >> 8);
}

static void put32(tw *t, size_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        t->b[at + (size_t)(t->le ? i : 3 - i)] = (uint8_t)(v >> (8 * i));
}

static void entry(tw *t, size_t at, unsigned tag, unsigned type, uint32_t count, uint32_t value)
{
    put16(t, at, tag);
    put16(t, at + 2, type);
    put32(t, at + 4, count);
    if (type == 3 && count == 1) {
        put32(t, at + 8, 0);
        put16(t, at + 8, value);
    } else {
        put32(t, at + 8, value);
    }
}

#define GPS_LAT_AT 200  /* three RATIONALs: 48/1 51/1 29/1 */
#define THUMB_AT 300    /* 40 bytes of thumbnail */

/* IFD0 at 8: Make (ASCII at 100), Orientation, GPS pointer (IFD at 150),
 * next = IFD1 at 250 (JPEGInterchangeFormat at 300, length 40). */
static void build_tiff(tw *t, int le, int orientation)
{
    memset(t, 0, sizeof *t);
    t->le = le;
    t->n = THUMB_AT + 40;
    t->b[0] = t->b[1] = le ? 'I' : 'M';
    put16(t, 2, 42);
    put32(t, 4, 8);
    put16(t, 8, 3);
    entry(t, 10, 0x010f, 2, 11, 100);
    entry(t, 22, 0x0112, 3, 1, (unsigned)orientation);
    entry(t, 34, 0x8825, 4, 1, 150);
    put32(t, 46, 250);
    memcpy(t->b + 100, "PixmendCam", 11);
    put16(t, 150, 2);
    entry(t, 152, 0x0001, 2, 2, 0); /* 'N' inline */
    t->b[160] = 'N';
    entry(t, 164, 0x0002, 5, 3, GPS_LAT_AT);
    put32(t, 176, 0);
    for (int i = 0; i < 3; i++) {
        put32(t, GPS_LAT_AT + 8 * (size_t)i, (uint32_t)(i == 0 ? 48 : i == 1 ? 51 : 29));
        put32(t, GPS_LAT_AT + 8 * (size_t)i + 4, 1);
    }
    put16(t, 250, 2);
    entry(t, 252, 0x0201, 4, 1, THUMB_AT);
    entry(t, 264, 0x0202, 4, 1, 40);
    put32(t, 276, 0);
    memset(t->b + THUMB_AT, 0xab, 40);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void test_exif_editor(void **state)
{
    (void)state;
    for (int le = 0; le <= 1; le++) {
        tw t;
        build_tiff(&t, le, 6);
        assert_int_equal(pm_exif_check(t.b, t.n), 0);
        assert_int_equal(pm_exif_orientation(t.b, t.n), 6);
        assert_int_equal(pm_exif_set_orientation(t.b, t.n, 1), 1);
        assert_int_equal(pm_exif_orientation(t.b, t.n), 1);

        assert_int_equal(pm_exif_strip_gps(t.b, t.n), 1);
        assert_true(all_zero(t.b + GPS_LAT_AT, 24)); /* the coordinates themselves */
        assert_true(all_zero(t.b + 150, 2 + 24 + 4)); /* the GPS IFD */
        assert_int_equal(le ? pm_img_le16(t.b + 8) : pm_img_be16(t.b + 8), 2); /* one entry fewer */
        assert_int_equal(pm_exif_check(t.b, t.n), 0);
        assert_int_equal(pm_exif_orientation(t.b, t.n), 1);
        assert_memory_equal(t.b + 100, "PixmendCam", 11);
        assert_int_equal(pm_exif_strip_gps(t.b, t.n), 0); /* nothing left to strip */

        /* The next-IFD offset moved up with the entries and still names IFD1. */
        assert_int_equal(le ? pm_img_le32(t.b + 34) : pm_img_be32(t.b + 34), 250);
        assert_int_equal(pm_exif_drop_thumbnail(t.b, t.n), 1);
        assert_true(all_zero(t.b + THUMB_AT, 40));
        assert_true(all_zero(t.b + 34, 4));
        assert_int_equal(pm_exif_drop_thumbnail(t.b, t.n), 0);
    }
}

/* Every prefix of the block, and every byte damaged: no read or write
 * outside it (ASan), and the answers stay in range. */
static void test_exif_truncated_and_damaged(void **state)
{
    (void)state;
    tw t;
    build_tiff(&t, 1, 8);
    for (size_t n = 0; n <= t.n; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, t.b, n);
        int o = pm_exif_orientation(c, n);
        assert_true(o >= 1 && o <= 8);
        int g = pm_exif_strip_gps(c, n);
        assert_true(g == 0 || g == 1 || g == PM_ECORRUPT);
        (void)pm_exif_drop_thumbnail(c, n);
        (void)pm_exif_set_orientation(c, n, 1);
        (void)pm_exif_check(c, n);
        free(c);
    }
    for (size_t i = 0; i < t.n; i++)
        for (int v = 0; v < 3; v++) {
            tw d = t;
            d.b[i] = (uint8_t)(v == 0 ? 0xff : v == 1 ? 0 : d.b[i] ^ 0x80);
            (void)pm_exif_orientation(d.b, d.n);
            (void)pm_exif_strip_gps(d.b, d.n);
            (void)pm_exif_drop_thumbnail(d.b, d.n);
        }
    /* A GPS directory that is IFD0 itself (found by fuzz_meta). */
    build_tiff(&t, 1, 1);
    put32(&t, 34 + 8, 8);
    assert_int_equal(pm_exif_strip_gps(t.b, t.n), 1);
    assert_int_equal(pm_exif_check(t.b, t.n), 0);
    /* A GPS pointer out of the block: the location cannot be removed safely. */
    build_tiff(&t, 1, 1);
    put32(&t, 34 + 8, 100000);
    assert_int_equal(pm_exif_strip_gps(t.b, t.n), PM_ECORRUPT);
    assert_int_not_equal(pm_exif_check((const uint8_t *)"MM\0*\0\0\0\x08", 8), 0);
}

/* A minimal well-formed ICC header with one tag. */
static void build_icc(uint8_t *p, size_t n, const char *space)
{
    memset(p, 0, n);
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    memcpy(p + 16, space, 4);
    memcpy(p + 36, "acsp", 4);
    p[131] = 1;
    memcpy(p + 132, "desc", 4);
    p[139] = 144; /* offset 144 */
    p[143] = 8;   /* length 8 */
}

static void test_icc_check(void **state)
{
    (void)state;
    uint8_t p[160];
    build_icc(p, sizeof p, "RGB ");
    assert_int_equal(pm_icc_check(p, sizeof p), 0);
    assert_int_equal(pm_icc_channels(p, sizeof p), 3);
    assert_int_not_equal(pm_icc_check(p, 100), 0);  /* shorter than declared */
    p[36] = 'x';
    assert_int_not_equal(pm_icc_check(p, sizeof p), 0);
    build_icc(p, sizeof p, "GRAY");
    assert_int_equal(pm_icc_channels(p, sizeof p), 1);
    p[139] = 200; /* tag past the end */
    assert_int_not_equal(pm_icc_check(p, sizeof p), 0);
    build_icc(p, sizeof p, "RGB ");
    p[131] = 200; /* tag table past the end */
    assert_int_not_equal(pm_icc_check(p, sizeof p), 0);
}

/* ------------------------------------------------------------- 16-bit PNG */

static void test_deep_png_exact_outside_the_mask(void **state)
{
    (void)state;
    void *pm_state = NULL;
    pm_model_opts mo = {0};
    assert_int_equal(pm_model_patchmatch.load(NULL, &mo, &pm_state), 0);
    const int w = 48, h = 40;
    for (int ch = 1; ch <= 4; ch += ch == 1 ? 2 : 1) { /* 1, 3, 4 */
        pm_image shape = {w, h, ch, NULL};
        uint16_t *deep = malloc((size_t)w * h * ch * 2);
        for (int i = 0; i < w * h * ch; i++)
            deep[i] = (uint16_t)(i * 2654435761u >> 12);
        if (ch == 4)
            for (int i = 0; i < w * h; i++)
                deep[i * 4 + 3] = (uint16_t)(40000 + i);
        uint8_t *png;
        size_t len;
        shape.data = malloc((size_t)w * h * ch);
        assert_int_equal(pm_img_png_encode(&shape, deep, &png, &len), 0);
        free(shape.data);

        pm_image img, mask, res;
        pm_image_meta meta;
        assert_int_equal(pm_image_decode_meta(png, len, NULL, "x.png", &img, &meta), 0);
        pm_free(png);
        assert_non_null(meta.deep);
        assert_int_equal(meta.deep_channels, ch);
        assert_memory_equal(meta.deep, deep, (size_t)w * h * ch * 2);
        for (int i = 0; i < w * h * ch; i++)
            assert_int_equal(img.data[i], deep[i] >> 8);

        assert_int_equal(pm_image_alloc(&mask, w, h, 1), 0);
        for (int y = 10; y < 20; y++)
            memset(mask.data + (size_t)y * w + 12, 255, 14);
        assert_int_equal(pm_inpaint_run(&pm_model_patchmatch, pm_state, &img, &mask, NULL, &res, NULL), 0);

        pm_encode_req q = {&res, &img, &meta, pm_default_encode_opts(PM_FMT_PNG), {0, 0, 0}, 1};
        pm_encode_report rep;
        assert_int_equal(pm_image_encode_full(&q, &png, &len, &rep), 0);
        assert_true(rep.kept & PM_KEEP_DEPTH);
        pm_image back;
        pm_image_meta bm;
        assert_int_equal(pm_image_decode_meta(png, len, NULL, NULL, &back, &bm), 0);
        assert_non_null(bm.deep);
        int inside_changed = 0;
        for (int i = 0; i < w * h; i++)
            for (int k = 0; k < ch; k++) {
                size_t s = (size_t)i * ch + k;
                if (!mask.data[i])
                    assert_int_equal(bm.deep[s], deep[s]);
                else if (bm.deep[s] != deep[s])
                    inside_changed = 1;
            }
        assert_true(inside_changed);
        /* JPEG holds 8 bits: said so. */
        pm_free(png);
        q.opts = pm_default_encode_opts(PM_FMT_WEBP);
        if (ch != 1) {
            assert_int_equal(pm_image_encode_full(&q, &png, &len, &rep), 0);
            assert_true(rep.dropped & PM_KEEP_DEPTH);
            assert_true(rep.nwhy >= 1);
            pm_free(png);
        }
        pm_image_meta_free(&bm);
        pm_image_free(&back);
        pm_image_free(&res);
        pm_image_free(&mask);
        pm_image_meta_free(&meta);
        pm_image_free(&img);
        free(deep);
    }
    pm_model_patchmatch.unload(pm_state);
}

/* ------------------------------------------------- formats and the policy */

static void test_formats_keep_and_report(void **state)
{
    (void)state;
    pm_image img;
    assert_int_equal(pm_image_alloc(&img, 32, 24, 3), 0);
    for (size_t i = 0; i < 32 * 24 * 3; i++)
        img.data[i] = (uint8_t)(i * 7);
    uint8_t icc[160];
    build_icc(icc, sizeof icc, "RGB ");
    tw t;
    build_tiff(&t, 0, 1);
    pm_png_text text = {"tEXt", (uint8_t *)"parameters\0a cat", 16};
    pm_image_meta m = {0};
    m.icc = icc;
    m.icc_len = sizeof icc;
    m.exif = t.b;
    m.exif_len = t.n;
    m.xmp = (uint8_t *)"<x:xmpmeta/>";
    m.xmp_len = 12;
    m.res_unit = PM_RES_PER_INCH;
    m.res_x = m.res_y = 300;
    m.text = &text;
    m.ntext = 1;
    m.orientation = 1;
    static const enum pm_format fmts[3] = {PM_FMT_PNG, PM_FMT_JPEG, PM_FMT_WEBP};
    for (int f = 0; f < 3; f++) {
        for (int strip = 0; strip <= 1; strip++) {
            pm_encode_req q = {&img, &img, &m, pm_default_encode_opts(fmts[f]), {strip, 0, 0}, 0};
            pm_encode_report rep;
            uint8_t *out;
            size_t len;
            assert_int_equal(pm_image_encode_full(&q, &out, &len, &rep), 0);
            pm_image back;
            pm_image_meta bm;
            assert_int_equal(pm_image_decode_meta(out, len, NULL, NULL, &back, &bm), 0);
            if (strip) {
                assert_int_equal(rep.kept, 0);
                assert_null(bm.icc);
                assert_null(bm.exif);
                assert_null(bm.xmp);
                assert_int_equal(bm.ntext, 0);
            } else {
                assert_int_equal(bm.icc_len, sizeof icc);
                assert_memory_equal(bm.icc, icc, sizeof icc);
                assert_int_equal(bm.xmp_len, 12);
                assert_int_equal(pm_exif_orientation(bm.exif, bm.exif_len), 1);
                assert_true(all_zero(bm.exif + THUMB_AT, 40)); /* the stale thumbnail is gone */
                assert_int_equal(bm.ntext, fmts[f] == PM_FMT_PNG ? 1 : 0);
                assert_int_equal(!!(rep.dropped & PM_KEEP_TEXT), fmts[f] != PM_FMT_PNG);
                assert_int_equal(!!(rep.dropped & PM_KEEP_DPI), fmts[f] == PM_FMT_WEBP);
                if (fmts[f] == PM_FMT_JPEG) {
                    assert_int_equal(bm.res_unit, PM_RES_PER_INCH);
                    assert_int_equal(bm.res_x, 300);
                }
                if (fmts[f] == PM_FMT_PNG) {
                    assert_int_equal(bm.res_unit, PM_RES_PER_METRE);
                    assert_int_equal(bm.res_x, 11811);
                }
            }
            pm_image_meta_free(&bm);
            pm_image_free(&back);
            pm_free(out);
        }
    }
    /* A profile larger than one JPEG marker: split into numbered APP2 pieces and joined again. */
    size_t big = 150000;
    uint8_t *bicc = malloc(big);
    build_icc(bicc, big, "RGB ");
    for (size_t i = 160; i < big; i++)
        bicc[i] = (uint8_t)(i * 31);
    pm_image_meta mb = {0};
    mb.icc = bicc;
    mb.icc_len = big;
    {
        pm_encode_req q = {&img, &img, &mb, pm_default_encode_opts(PM_FMT_JPEG), {0, 0, 0}, 0};
        uint8_t *out;
        size_t len;
        assert_int_equal(pm_image_encode_full(&q, &out, &len, NULL), 0);
        int pieces = 0;
        for (size_t i = 0; i + 16 < len; i++)
            pieces += out[i] == 0xff && out[i + 1] == 0xe2 && !memcmp(out + i + 4, "ICC_PROFILE", 12);
        assert_int_equal(pieces, 3);
        pm_image back;
        pm_image_meta bm;
        assert_int_equal(pm_image_decode_meta(out, len, NULL, NULL, &back, &bm), 0);
        assert_int_equal(bm.icc_len, big);
        assert_memory_equal(bm.icc, bicc, big);
        pm_image_meta_free(&bm);
        pm_image_free(&back);
        pm_free(out);
    }
    free(bicc);
    /* A CMYK profile does not describe an RGB result. */
    memcpy(icc + 16, "CMYK", 4);
    pm_encode_req q = {&img, &img, &m, pm_default_encode_opts(PM_FMT_PNG), {0, 0, 0}, 0};
    pm_encode_report rep;
    uint8_t *out;
    size_t len;
    assert_int_equal(pm_image_encode_full(&q, &out, &len, &rep), 0);
    assert_true(rep.dropped & PM_KEEP_ICC);
    assert_false(rep.kept & PM_KEEP_ICC);
    pm_free(out);
    pm_image_free(&img);
}

/* Pixels rotated by the decoder: EXIF and XMP orientation both say 1 after. */
static void test_orientation_reset_in_exif_and_xmp(void **state)
{
    (void)state;
    pm_image img;
    assert_int_equal(pm_image_alloc(&img, 8, 8, 3), 0);
    tw t;
    build_tiff(&t, 1, 6);
    static const char xmp[] = "<rdf:Description tiff:Orientation=\"6\"/><tiff:Orientation>6</tiff:Orientation>";
    pm_image_meta m = {0};
    m.exif = t.b;
    m.exif_len = t.n;
    m.xmp = (uint8_t *)xmp;
    m.xmp_len = sizeof xmp - 1;
    m.orientation = 6;
    for (int f = 0; f < 3; f++) {
        static const enum pm_format fmts[3] = {PM_FMT_PNG, PM_FMT_JPEG, PM_FMT_WEBP};
        pm_encode_req q = {&img, &img, &m, pm_default_encode_opts(fmts[f]), {0, 0, 0}, 0};
        uint8_t *out;
        size_t len;
        assert_int_equal(pm_image_encode_full(&q, &out, &len, NULL), 0);
        pm_image back;
        pm_image_meta bm;
        assert_int_equal(pm_image_decode_meta(out, len, NULL, NULL, &back, &bm), 0);
        assert_int_equal(bm.orientation, 1); /* JPEG: nothing left to apply */
        assert_int_equal(pm_exif_orientation(bm.exif, bm.exif_len), 1);
        assert_int_equal(bm.xmp_len, sizeof xmp - 1);
        assert_non_null(memchr(bm.xmp, '1', bm.xmp_len));
        assert_null(memchr(bm.xmp, '6', bm.xmp_len));
        assert_int_equal(back.width, 8);
        pm_image_meta_free(&bm);
        pm_image_free(&back);
        pm_free(out);
    }
    assert_int_equal(pm_exif_orientation(t.b, t.n), 6); /* the source's block is not edited */
    pm_image_free(&img);
}

/* ------------------------------------------------------------------ JPEG */

static void test_jpeg_coef_unchanged_is_identical(void **state)
{
    (void)state;
    const int w = 70, h = 45; /* not a multiple of the iMCU */
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        px[i] = (uint8_t)((i % 211) + (i / 300));
    static const int samp[3] = {TJSAMP_444, TJSAMP_422, TJSAMP_420};
    for (int s = 0; s < 3; s++)
        for (int prog = 0; prog <= 1; prog++) {
            size_t len;
            uint8_t *j = fx_jpeg(px, w, h, TJPF_RGB, samp[s], 80, prog ? TJFLAG_PROGRESSIVE : 0, &len);
            pm_image img, back;
            pm_image_meta meta;
            assert_int_equal(pm_image_decode_meta(j, len, NULL, NULL, &img, &meta), 0);
            assert_non_null(meta.jpeg);
            pm_encode_req q = {&img, &img, &meta, pm_default_encode_opts(PM_FMT_JPEG), {0, 0, 0}, 1};
            pm_encode_report rep;
            uint8_t *out;
            size_t olen;
            assert_int_equal(pm_image_encode_full(&q, &out, &olen, &rep), 0);
            assert_true(rep.kept & PM_KEEP_BLOCKS);
            assert_int_equal(rep.blocks_encoded, 0);
            assert_true(rep.blocks_total > 0);
            assert_int_equal(pm_image_decode(out, olen, NULL, NULL, &back), 0);
            assert_memory_equal(back.data, img.data, (size_t)w * h * 3);
            pm_image_free(&back);
            pm_free(out);
            /* One pixel changed: only its iMCU is re-encoded. */
            pm_image changed;
            assert_int_equal(pm_image_clone(&changed, &img), 0);
            changed.data[(20 * w + 30) * 3] ^= 0x40;
            q.img = &changed;
            assert_int_equal(pm_image_encode_full(&q, &out, &olen, &rep), 0);
            pm_image_free(&changed);
            int mcu = s == 0 ? 1 : s == 1 ? 2 : 4;
            assert_int_equal(rep.blocks_encoded, mcu + 2);
            pm_free(out);
            pm_image_meta_free(&meta);
            pm_image_free(&img);
            free(j);
        }
    free(px);
}

/* A quantisation table with a zero entry decodes but cannot encode (found
 * by fuzz_meta): the result is re-encoded whole, with a note. */
static void test_jpeg_coef_zero_quant(void **state)
{
    (void)state;
    uint8_t px[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++)
        px[i] = (uint8_t)(i * 5);
    size_t len;
    uint8_t *plain = fx_jpeg(px, 16, 16, TJPF_RGB, TJSAMP_444, 90, 0, &len);
    /* Rotated by EXIF (orientation 6), so the whole encode must also reset it. */
    uint8_t *j = fx_jpeg_with_exif(plain, len, 6, 1, &len);
    free(plain);
    size_t dqt = 2;
    while (dqt + 4 < len && !(j[dqt] == 0xff && j[dqt + 1] == 0xdb))
        dqt += 2 + (size_t)((j[dqt + 2] << 8) | j[dqt + 3]);
    assert_true(dqt + 10 < len);
    j[dqt + 5 + 20] = 0; /* an AC entry of the first table */
    pm_image img, changed;
    pm_image_meta meta;
    assert_int_equal(pm_image_decode_meta(j, len, NULL, NULL, &img, &meta), 0);
    assert_int_equal(pm_image_clone(&changed, &img), 0);
    changed.data[0] ^= 1;
    pm_encode_req q = {&changed, &img, &meta, pm_default_encode_opts(PM_FMT_JPEG), {0, 0, 0}, 1};
    pm_encode_report rep;
    uint8_t *out;
    size_t olen;
    assert_int_equal(pm_image_encode_full(&q, &out, &olen, &rep), 0);
    assert_true(rep.dropped & PM_KEEP_BLOCKS);
    assert_non_null(strstr(rep.why[0], "zero entry"));
    pm_image back;
    pm_image_meta bm;
    assert_int_equal(pm_image_decode_meta(out, olen, NULL, NULL, &back, &bm), 0);
    assert_int_equal(bm.orientation, 1); /* upright pixels, tag reset */
    assert_non_null(bm.exif);
    pm_image_meta_free(&bm);
    pm_image_free(&back);
    pm_free(out);
    pm_image_free(&changed);
    pm_image_meta_free(&meta);
    pm_image_free(&img);
    free(j);
}

/* A grey JPEG keeps its blocks too (one component, one block an iMCU). */
static void test_jpeg_coef_gray(void **state)
{
    (void)state;
    const int w = 40, h = 24;
    uint8_t px[40 * 24];
    for (int i = 0; i < w * h; i++)
        px[i] = (uint8_t)(i * 13 + i / 7);
    size_t len;
    uint8_t *j = fx_jpeg(px, w, h, TJPF_GRAY, TJSAMP_GRAY, 75, 0, &len);
    pm_image img, changed, back;
    pm_image_meta meta;
    assert_int_equal(pm_image_decode_meta(j, len, NULL, NULL, &img, &meta), 0);
    assert_int_equal(img.channels, 1);
    assert_int_equal(pm_image_clone(&changed, &img), 0);
    changed.data[5 * w + 30] ^= 0x80; /* block (3, 0) */
    pm_encode_req q = {&changed, &img, &meta, pm_default_encode_opts(PM_FMT_JPEG), {0, 0, 0}, 1};
    pm_encode_report rep;
    uint8_t *out;
    size_t olen;
    assert_int_equal(pm_image_encode_full(&q, &out, &olen, &rep), 0);
    assert_int_equal(rep.blocks_total, 15);
    assert_int_equal(rep.blocks_encoded, 1);
    assert_int_equal(pm_image_decode(out, olen, NULL, NULL, &back), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (x < 24 || x >= 32 || y >= 8)
                assert_int_equal(back.data[y * w + x], img.data[y * w + x]);
    pm_image_free(&back);
    pm_free(out);
    pm_image_free(&changed);
    pm_image_meta_free(&meta);
    pm_image_free(&img);
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exif_editor),
        cmocka_unit_test(test_exif_truncated_and_damaged),
        cmocka_unit_test(test_icc_check),
        cmocka_unit_test(test_deep_png_exact_outside_the_mask),
        cmocka_unit_test(test_formats_keep_and_report),
        cmocka_unit_test(test_orientation_reset_in_exif_and_xmp),
        cmocka_unit_test(test_jpeg_coef_unchanged_is_identical),
        cmocka_unit_test(test_jpeg_coef_gray),
        cmocka_unit_test(test_jpeg_coef_zero_quant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
