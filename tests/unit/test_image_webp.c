/* WebP decoding (lossy, lossless, with and without alpha) and encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pixmend.h"
#include "support/image_assert.h"
#include "support/image_fixtures.h"

#define W 40
#define H 24

/* Flat 8x8 tiles of distinct colours (lossy codecs keep flat areas well);
 * alpha varies per tile, with fully transparent and opaque tiles. */
static void tiles(uint8_t *px, int channels)
{
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int t = (y / 8) * (W / 8) + x / 8;
            uint8_t *p = px + (y * W + x) * channels;
            p[0] = (uint8_t)(t * 17 + 20);
            p[1] = (uint8_t)(t * 41 + 60);
            p[2] = (uint8_t)(200 - t * 9);
            if (channels == 4)
                p[3] = t % 3 == 0 ? 255 : t % 3 == 1 ? 0 : (uint8_t)(t * 11);
        }
    }
}

/* Compares the centre pixel of every tile (RGB within tol; alpha exact). */
static void assert_tiles(const pm_image *img, const uint8_t *px, int channels, int tol, const char *what)
{
    for (int ty = 0; ty < H / 8; ty++) {
        for (int tx = 0; tx < W / 8; tx++) {
            int x = tx * 8 + 4, y = ty * 8 + 4;
            const uint8_t *g = img->data + ((size_t)y * W + x) * img->channels;
            const uint8_t *w = px + ((size_t)y * W + x) * channels;
            int transparent = channels == 4 && w[3] == 0;
            for (int k = 0; k < 3 && !transparent; k++) {
                int d = (int)g[k] - (int)w[k];
                if (d < -tol || d > tol)
                    fail_msg("%s: tile (%d,%d) channel %d is %d, want about %d", what, tx, ty, k, g[k], w[k]);
            }
            if (channels == 4 && g[3] != w[3])
                fail_msg("%s: tile (%d,%d) alpha is %d, want %d", what, tx, ty, g[3], w[3]);
        }
    }
}

static void test_lossless_rgb(void **state)
{
    (void)state;
    uint8_t px[W * H * 3];
    fx_random_bytes(px, sizeof px, 11); /* noise: only exact coding survives */
    size_t len;
    uint8_t *wp = fx_webp(px, W, H, 3, 1, 75, &len);
    pm_image_info info;
    FX_ASSERT_OK(pm_image_probe(wp, len, NULL, &info));
    assert_int_equal(info.format, PM_FMT_WEBP);
    assert_int_equal(info.width, W);
    assert_int_equal(info.height, H);
    assert_int_equal(info.channels, 3);
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(wp, len, NULL, "x.webp", &img));
    assert_int_equal(img.channels, 3);
    assert_memory_equal(img.data, px, sizeof px);
    pm_image_free(&img);
    free(wp);
}

static void test_lossless_alpha(void **state)
{
    (void)state;
    uint8_t px[W * H * 4];
    fx_random_bytes(px, sizeof px, 12);
    size_t len;
    uint8_t *wp = fx_webp(px, W, H, 4, 1, 75, &len);
    pm_image_info info;
    FX_ASSERT_OK(pm_image_probe(wp, len, NULL, &info));
    assert_int_equal(info.channels, 4);
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(wp, len, NULL, NULL, &img));
    assert_int_equal(img.channels, 4);
    assert_memory_equal(img.data, px, sizeof px);
    pm_image_free(&img);
    free(wp);
}

static void test_lossy_rgb(void **state)
{
    (void)state;
    uint8_t px[W * H * 3];
    tiles(px, 3);
    size_t len;
    uint8_t *wp = fx_webp(px, W, H, 3, 0, 95, &len);
    assert_int_equal(memcmp(wp + 12, "VP8 ", 4), 0); /* simple lossy file */
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(wp, len, NULL, NULL, &img));
    assert_int_equal(img.channels, 3);
    assert_tiles(&img, px, 3, 12, "lossy");
    pm_image_free(&img);
    free(wp);
}

static void test_lossy_alpha(void **state)
{
    (void)state;
    uint8_t px[W * H * 4];
    tiles(px, 4);
    size_t len;
    uint8_t *wp = fx_webp(px, W, H, 4, 0, 95, &len);
    assert_int_equal(memcmp(wp + 12, "VP8X", 4), 0); /* extended file with ALPH */
    pm_image_info info;
    FX_ASSERT_OK(pm_image_probe(wp, len, NULL, &info));
    assert_int_equal(info.channels, 4);
    pm_image img;
    FX_ASSERT_OK(pm_image_decode(wp, len, NULL, NULL, &img));
    assert_int_equal(img.channels, 4);
    assert_tiles(&img, px, 4, 12, "lossy+alpha");
    pm_image_free(&img);
    free(wp);
}

static void test_encode(void **state)
{
    (void)state;
    pm_image img;
    FX_ASSERT_OK(pm_image_alloc(&img, W, H, 4));
    tiles(img.data, 4);
    uint8_t *buf = NULL;
    size_t n = 0;
    pm_image back;

    /* Lossless keeps everything, including RGB under alpha 0. */
    pm_encode_opts o = pm_default_encode_opts(PM_FMT_WEBP);
    o.lossless = 1;
    FX_ASSERT_OK(pm_image_encode(&img, &o, &buf, &n));
    assert_int_equal(pm_format_sniff(buf, n), PM_FMT_WEBP);
    FX_ASSERT_OK(pm_image_decode(buf, n, NULL, NULL, &back));
    assert_int_equal(back.channels, 4);
    assert_memory_equal(back.data, img.data, (size_t)W * H * 4);
    pm_image_free(&back);
    pm_free(buf);

    /* Lossy keeps alpha exactly and colours closely; lower quality is smaller. */
    o = pm_default_encode_opts(PM_FMT_WEBP);
    FX_ASSERT_OK(pm_image_encode(&img, &o, &buf, &n));
    FX_ASSERT_OK(pm_image_decode(buf, n, NULL, NULL, &back));
    assert_int_equal(back.channels, 4);
    assert_tiles(&back, img.data, 4, 12, "encoded lossy");
    pm_image_free(&back);
    uint8_t *small = NULL;
    size_t sn = 0;
    pm_image rgb;
    FX_ASSERT_OK(pm_image_convert(&rgb, &img, 3));
    fx_random_bytes(rgb.data, (size_t)W * H * 3, 4);
    o.quality = 95;
    pm_free(buf);
    FX_ASSERT_OK(pm_image_encode(&rgb, &o, &buf, &n));
    o.quality = 5;
    FX_ASSERT_OK(pm_image_encode(&rgb, &o, &small, &sn));
    assert_true(sn < n);
    pm_free(small);
    pm_free(buf);

    /* RGB stays RGB; gray becomes RGB with equal channels. */
    o = pm_default_encode_opts(PM_FMT_WEBP);
    o.lossless = 1;
    FX_ASSERT_OK(pm_image_encode(&rgb, &o, &buf, &n));
    FX_ASSERT_OK(pm_image_decode(buf, n, NULL, NULL, &back));
    assert_int_equal(back.channels, 3);
    assert_memory_equal(back.data, rgb.data, (size_t)W * H * 3);
    pm_image_free(&back);
    pm_free(buf);
    pm_image gray;
    FX_ASSERT_OK(pm_image_convert(&gray, &rgb, 1));
    FX_ASSERT_OK(pm_image_encode(&gray, &o, &buf, &n));
    FX_ASSERT_OK(pm_image_decode(buf, n, NULL, NULL, &back));
    assert_int_equal(back.channels, 3);
    for (int i = 0; i < W * H; i++)
        for (int k = 0; k < 3; k++)
            assert_int_equal(back.data[i * 3 + k], gray.data[i]);
    pm_image_free(&back);
    pm_free(buf);
    pm_image_free(&gray);
    pm_image_free(&rgb);
    pm_image_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lossless_rgb),
        cmocka_unit_test(test_lossless_alpha),
        cmocka_unit_test(test_lossy_rgb),
        cmocka_unit_test(test_lossy_alpha),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
