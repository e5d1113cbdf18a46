/* JPEG decoding: baseline, progressive, grayscale, Adobe CMYK, all eight EXIF
 * orientations in both TIFF byte orders; JPEG encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "pixmend.h"
#include "support/image_assert.h"
#include "support/image_fixtures.h"

#define W 48
#define H 32
#define B 16 /* corner block size */
#define TOL 12

enum corner { TL, TR, BL, BR };
static const uint8_t corner_rgb[4][3] = {
    {220, 30, 30},  /* stored top-left: red */
    {30, 200, 40},  /* stored top-right: green */
    {30, 40, 210},  /* stored bottom-left: blue */
    {230, 220, 40}, /* stored bottom-right: yellow */
};

/* W x H RGB, gray background, one coloured B x B block in each corner. */
static void corner_image(uint8_t *px)
{
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            uint8_t *p = px + (y * W + x) * 3;
            int c = -1;
            if (y < B && x < B)
                c = TL;
            else if (y < B && x >= W - B)
                c = TR;
            else if (y >= H - B && x < B)
                c = BL;
            else if (y >= H - B && x >= W - B)
                c = BR;
            for (int k = 0; k < 3; k++)
                p[k] = c < 0 ? 128 : corner_rgb[c][k];
        }
    }
}

static void assert_rgb_near(const pm_image *img, int x, int y, const uint8_t *want, int tol, const char *what)
{
    const uint8_t *p = img->data + ((size_t)y * img->width + x) * img->channels;
    for (int k = 0; k < 3; k++) {
        int d = (int)p[k] - (int)want[k];
        if (d < -tol || d > tol)
            fail_msg("%s: pixel (%d,%d) is (%d,%d,%d), want about (%d,%d,%d)", what, x, y, p[0], p[1], p[2], want[0],
                     want[1], want[2]);
    }
}

/* Checks which stored corner shows at each displayed corner. */
static void assert_corners(const pm_image *img, const int shown[4], const char *what)
{
    int w = img->width, h = img->height, i = 4;
    assert_rgb_near(img, i, i, corner_rgb[shown[TL]], TOL, what);
    assert_rgb_near(img, w - 1 - i, i, corner_rgb[shown[TR]], TOL, what);
    assert_rgb_near(img, i, h - 1 - i, corner_rgb[shown[BL]], TOL, what);
    assert_rgb_near(img, w - 1 - i, h - 1 - i, corner_rgb[shown[BR]], TOL, what);
}

static int has_marker(const uint8_t *d, size_t n, uint8_t m)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (d[i] == 0xff && d[i + 1] == m)
            return 1;
    return 0;
}

static const int upright[4] = {TL, TR, BL, BR};

static void test_baseline(void **state)
{
    (void)state;
    uint8_t px[W * H * 3];
    corner_image(px);
    size_t len;
    uint8_t *j = fx_jpeg(px, W, H, TJPF_RGB, TJSAMP_420, 90, 0, &len);
    assert_true(has_marker(j, len, 0xc0));
    pm_image_info info;
    FX_ASSERT_OK(pm_image_probe(j, len, NULL, &info));
    assert_int_equal(info.format, PM_FMT_JPEG);
    assert_int_equal(info.width, W);
    assert_int_equal(info.height, H);
    assert_int_equal(info.channels, 3);
    assert_int_equal(info.orientation, 1);
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(j, len, NULL, "a.jpg", &img));
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    assert_int_equal(img.channels, 3);
    assert_corners(&img, upright, "baseline");
    const uint8_t gray[3] = {128, 128, 128};
    assert_rgb_near(&img, W / 2, H / 2, gray, 4, "baseline centre");
    pm_image_free(&img);
    free(j);
}

static void test_progressive(void **state)
{
    (void)state;
    uint8_t px[W * H * 3];
    corner_image(px);
    size_t len;
    uint8_t *j = fx_jpeg(px, W, H, TJPF_RGB, TJSAMP_444, 95, TJFLAG_PROGRESSIVE, &len);
    assert_true(has_marker(j, len, 0xc2)); /* really progressive */
    assert_false(has_marker(j, len, 0xc0));
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(j, len, NULL, NULL, &img));
    assert_int_equal(img.channels, 3);
    assert_corners(&img, upright, "progressive");
    pm_image_free(&img);
    free(j);
}

static void test_grayscale(void **state)
{
    (void)state;
    uint8_t px[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            px[y * W + x] = (uint8_t)(x * 4 + y);
    size_t len;
    uint8_t *j = fx_jpeg(px, W, H, TJPF_GRAY, TJSAMP_GRAY, 95, 0, &len);
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(j, len, NULL, NULL, &img));
    assert_int_equal(img.channels, 1); /* gray stays one channel */
    for (int i = 0; i < W * H; i++) {
        int d = (int)img.data[i] - (int)px[i];
        if (d < -4 || d > 4)
            fail_msg("gray pixel %d is %d, want about %d", i, img.data[i], px[i]);
    }
    pm_image_free(&img);
    free(j);
}

/* TurboJPEG writes CMYK as Adobe does (an APP14 "Adobe" marker, samples
 * inverted: 255 = no ink), so stored (C,M,Y,K) shows as R = C*K/255 etc. */
static void test_cmyk_adobe(void **state)
{
    (void)state;
    const uint8_t stored[3][4] = {{255, 0, 0, 255}, {200, 150, 100, 128}, {255, 255, 255, 0}};
    const uint8_t shown[3][3] = {{255, 0, 0}, {100, 75, 50}, {0, 0, 0}};
    uint8_t px[48 * 16 * 4];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 48; x++)
            memcpy(px + (y * 48 + x) * 4, stored[x / 16], 4);
    size_t len;
    uint8_t *j = fx_jpeg(px, 48, 16, TJPF_CMYK, TJSAMP_444, 98, 0, &len);
    assert_true(has_marker(j, len, 0xee));
    int adobe = 0;
    for (size_t i = 0; i + 5 <= len; i++)
        adobe |= !memcmp(j + i, "Adobe", 5);
    assert_true(adobe);
    pm_image_info info;
    FX_ASSERT_OK(pm_image_probe(j, len, NULL, &info));
    assert_int_equal(info.channels, 3);
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(j, len, NULL, NULL, &img));
    assert_int_equal(img.channels, 3);
    for (int b = 0; b < 3; b++)
        assert_rgb_near(&img, b * 16 + 8, 8, shown[b], 8, "CMYK");
    pm_image_free(&img);
    free(j);
}

/* Where each stored corner shows up, from the EXIF definitions of the
 * orientations ("row 0 is at the visual ..., column 0 at the visual ..."). */
static const int shown_for[9][4] = {
    {0, 0, 0, 0},
    {TL, TR, BL, BR}, /* 1: row 0 top, column 0 left */
    {TR, TL, BR, BL}, /* 2: row 0 top, column 0 right (mirrored) */
    {BR, BL, TR, TL}, /* 3: row 0 bottom, column 0 right (180) */
    {BL, BR, TL, TR}, /* 4: row 0 bottom, column 0 left (flipped) */
    {TL, BL, TR, BR}, /* 5: row 0 left, column 0 top (transposed) */
    {BL, TL, BR, TR}, /* 6: row 0 right, column 0 top (turn 90 clockwise) */
    {BR, TR, BL, TL}, /* 7: row 0 right, column 0 bottom (transverse) */
    {TR, BR, TL, BL}, /* 8: row 0 left, column 0 bottom (turn 90 anticlockwise) */
};

static void test_exif_orientations(void **state)
{
    (void)state;
    uint8_t px[W * H * 3];
    corner_image(px);
    size_t len;
    uint8_t *j = fx_jpeg(px, W, H, TJPF_RGB, TJSAMP_444, 95, 0, &len);
    for (int be = 0; be <= 1; be++) {
        for (int o = 1; o <= 8; o++) {
            char what[64];
            snprintf(what, sizeof what, "orientation %d (%s)", o, be ? "big-endian" : "little-endian");
            size_t elen;
            uint8_t *e = fx_jpeg_with_exif(j, len, o, be, &elen);
            int dw = o >= 5 ? H : W, dh = o >= 5 ? W : H;
            pm_image_info info;
            FX_ASSERT_OK(pm_image_probe(e, elen, NULL, &info));
            assert_int_equal(info.orientation, o);
            assert_int_equal(info.width, dw);
            assert_int_equal(info.height, dh);
            pm_image img;
            FX_ASSERT_OK(pm_image_decode(e, elen, NULL, NULL, &img));
            if (img.width != dw || img.height != dh)
                fail_msg("%s: decoded %dx%d, want %dx%d", what, img.width, img.height, dw, dh);
            assert_corners(&img, shown_for[o], what);
            pm_image_free(&img);
            free(e);
        }
    }
    free(j);
}

/* Damaged EXIF is ignored (orientation 1), never trusted. */
static void test_exif_malformed(void **state)
{
    (void)state;
    uint8_t px[W * H * 3];
    corner_image(px);
    size_t len, elen;
    uint8_t *j = fx_jpeg(px, W, H, TJPF_RGB, TJSAMP_444, 95, 0, &len);
    /* TIFF starts after SOI(2) + marker(2) + length(2) + "Exif\0\0"(6). */
    const size_t tiff = 12;
    struct {
        size_t off[2];
        uint8_t val[2];
        int want;
    } damage[] = {
        {{tiff + 2, 0}, {43, 0}, 1},           /* TIFF magic */
        {{tiff + 7, 0}, {0x7f, 0}, 1},         /* IFD offset past the segment */
        {{tiff + 4, 0}, {0xff, 0}, 1},         /* IFD offset huge */
        {{tiff + 31, 0}, {9, 0}, 1},           /* orientation value 9 */
        {{tiff + 0, 0}, {'X', 0}, 1},          /* byte order */
        {{tiff + 25, 0}, {7, 0}, 1},           /* orientation stored as UNDEFINED */
        {{tiff + 9, 0}, {0xff, 0}, 6},         /* 255 entries claimed: found before the end */
        {{tiff + 9, tiff + 23}, {0xff, 0x13}, 1}, /* ... and no orientation tag: stops at the end */
    };
    for (size_t d = 0; d < sizeof damage / sizeof damage[0]; d++) {
        uint8_t *e = fx_jpeg_with_exif(j, len, 6, 1, &elen);
        for (int k = 0; k < 2; k++)
            if (damage[d].off[k])
                e[damage[d].off[k]] = damage[d].val[k];
        pm_image_info info;
        FX_ASSERT_OK(pm_image_probe(e, elen, NULL, &info));
        if (info.orientation != damage[d].want)
            fail_msg("damage %zu: orientation %d, want %d", d, info.orientation, damage[d].want);
        pm_image img;
        FX_ASSERT_OK(pm_image_decode(e, elen, NULL, NULL, &img));
        assert_corners(&img, shown_for[damage[d].want], "malformed exif");
        pm_image_free(&img);
        free(e);
    }
    /* Sanity: undamaged, the same file is rotated. */
    uint8_t *e = fx_jpeg_with_exif(j, len, 6, 1, &elen);
    pm_image_info info;
    FX_ASSERT_OK(pm_image_probe(e, elen, NULL, &info));
    assert_int_equal(info.orientation, 6);
    free(e);
    free(j);
}

/* Stray bytes before EOI (common from cameras) give a libjpeg warning only;
 * the image is complete and is accepted. */
static void test_extraneous_bytes_accepted(void **state)
{
    (void)state;
    uint8_t px[W * H * 3];
    corner_image(px);
    size_t len;
    uint8_t *j = fx_jpeg(px, W, H, TJPF_RGB, TJSAMP_444, 95, 0, &len);
    assert_int_equal(j[len - 2], 0xff);
    assert_int_equal(j[len - 1], 0xd9);
    uint8_t *k = malloc(len + 4);
    memcpy(k, j, len - 2);
    memset(k + len - 2, 0x00, 4);
    k[len + 2] = 0xff;
    k[len + 3] = 0xd9;
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(k, len + 4, NULL, NULL, &img));
    assert_corners(&img, upright, "extraneous bytes");
    pm_image_free(&img);
    /* Trailing data after EOI is ignored too. */
    uint8_t *t = malloc(len + 100);
    memcpy(t, j, len);
    fx_random_bytes(t + len, 100, 9);
    FX_ASSERT_OK(pm_image_decode(t, len + 100, NULL, NULL, &img));
    pm_image_free(&img);
    free(t);
    free(k);
    free(j);
}

static void test_encode(void **state)
{
    (void)state;
    pm_image img;
    FX_ASSERT_OK(pm_image_alloc(&img, W, H, 3));
    corner_image(img.data);
    pm_encode_opts o = pm_default_encode_opts(PM_FMT_JPEG);
    uint8_t *hi = NULL, *lo = NULL;
    size_t hn = 0, ln = 0;
    FX_ASSERT_OK(pm_image_encode(&img, &o, &hi, &hn));
    o.quality = 10;
    FX_ASSERT_OK(pm_image_encode(&img, &o, &lo, &ln));
    assert_true(ln < hn);
    pm_image back;
    FX_ASSERT_OK(pm_image_decode(hi, hn, NULL, "x.jpg", &back));
    assert_int_equal(back.channels, 3);
    assert_corners(&back, upright, "encoded q92");
    pm_image_free(&back);
    pm_free(hi);
    pm_free(lo);

    /* RGBA: alpha dropped. Gray: stays gray. */
    pm_image rgba, gray;
    FX_ASSERT_OK(pm_image_convert(&rgba, &img, 4));
    for (int i = 0; i < W * H; i++)
        rgba.data[i * 4 + 3] = (uint8_t)i;
    o = pm_default_encode_opts(PM_FMT_JPEG);
    FX_ASSERT_OK(pm_image_encode(&rgba, &o, &hi, &hn));
    FX_ASSERT_OK(pm_image_decode(hi, hn, NULL, NULL, &back));
    assert_int_equal(back.channels, 3);
    assert_corners(&back, upright, "encoded from RGBA");
    pm_image_free(&back);
    pm_free(hi);
    FX_ASSERT_OK(pm_image_convert(&gray, &img, 1));
    FX_ASSERT_OK(pm_image_encode(&gray, &o, &hi, &hn));
    FX_ASSERT_OK(pm_image_decode(hi, hn, NULL, NULL, &back));
    assert_int_equal(back.channels, 1);
    for (int i = 0; i < W * H; i++) {
        int d = (int)back.data[i] - (int)gray.data[i];
        if (d < -6 || d > 6)
            fail_msg("gray round trip pixel %d: %d vs %d", i, back.data[i], gray.data[i]);
    }
    pm_image_free(&back);
    pm_free(hi);
    pm_image_free(&gray);
    pm_image_free(&rgba);
    pm_image_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baseline),
        cmocka_unit_test(test_progressive),
        cmocka_unit_test(test_grayscale),
        cmocka_unit_test(test_cmyk_adobe),
        cmocka_unit_test(test_exif_orientations),
        cmocka_unit_test(test_exif_malformed),
        cmocka_unit_test(test_extraneous_bytes_accepted),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
