/* Growing and shrinking masks (pipeline/mask.c) against a brute-force disc,
 * and the JPEG quality estimate (image/jpeg_quality.c) against files
 * libjpeg-turbo wrote at known qualities. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/mask.h"
#include "pipeline/pipeline.h"

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

/* The definition: grow sets a pixel with a set pixel within dx^2+dy^2 <= r^2;
 * shrink keeps a set pixel with no unset pixel that near; outside is neither. */
static void brute(const uint8_t *in, uint8_t *out, int w, int h, int radius)
{
    int grow = radius > 0, r = grow ? radius : -radius;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int found = 0;
            for (int dy = -r; dy <= r && !found; dy++)
                for (int dx = -r; dx <= r && !found; dx++) {
                    int X = x + dx, Y = y + dy;
                    if (dx * dx + dy * dy > r * r || X < 0 || Y < 0 || X >= w || Y >= h)
                        continue;
                    found = (in[Y * w + X] != 0) == grow;
                }
            int set = in[y * w + x] != 0;
            out[y * w + x] = (grow ? found : set && !found) ? 255 : 0;
        }
}

/* Random masks of a few densities and shapes (sparse dots, blobs, stripes)
 * at radii from -9 to 9, and a radius larger than the image. */
static void test_dilate_matches_brute_force(void **st)
{
    (void)st;
    static const int sizes[][2] = {{1, 1}, {1, 17}, {23, 1}, {31, 19}, {40, 40}, {57, 33}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        for (int density = 0; density < 4; density++) {
            pm_image m = {0};
            assert_int_equal(pm_image_alloc(&m, w, h, 1), 0);
            for (int i = 0; i < w * h; i++) {
                int x = i % w, y = i / w;
                switch (density) {
                case 0: m.data[i] = rnd() % 50 == 0 ? 200 : 0; break;            /* sparse dots */
                case 1: m.data[i] = rnd() % 2 ? 1 : 0; break;                    /* noise */
                case 2: m.data[i] = (x - w / 2) * (x - w / 2) + (y - h / 3) * (y - h / 3) < 60 ? 9 : 0; break;
                default: m.data[i] = (x / 5 + y / 7) % 3 == 0 ? 255 : 0; break;  /* stripes */
                }
            }
            uint8_t *want = malloc((size_t)w * h);
            assert_non_null(want);
            for (int r = -9; r <= 9; r++) {
                pm_image c = {0};
                assert_int_equal(pm_image_clone(&c, &m), 0);
                brute(m.data, want, w, h, r);
                if (r == 0)
                    for (int i = 0; i < w * h; i++)
                        want[i] = m.data[i] ? 255 : 0;
                assert_int_equal(pm_mask_dilate(&c, r), 0);
                if (memcmp(c.data, want, (size_t)w * h) != 0) {
                    for (int i = 0; i < w * h; i++)
                        if (c.data[i] != want[i])
                            fail_msg("%dx%d density %d radius %d: pixel (%d, %d) is %d, the disc says %d", w, h,
                                     density, r, i % w, i / w, c.data[i], want[i]);
                }
                pm_image_free(&c);
            }
            free(want);
            pm_image_free(&m);
        }
    }
}

/* One pixel grown by r is exactly the digital disc: its area is the count of
 * lattice points with x^2 + y^2 <= r^2 (Gauss's circle problem values). */
static void test_single_pixel_is_a_disc(void **st)
{
    (void)st;
    static const int radius[] = {1, 2, 3, 5, 10, 100};
    static const int area[] = {5, 13, 29, 81, 317, 31417};
    for (int k = 0; k < 6; k++) {
        int n = 2 * radius[k] + 11;
        pm_image m = {0};
        assert_int_equal(pm_image_alloc(&m, n, n, 1), 0);
        m.data[(n / 2) * n + n / 2] = 255;
        size_t holes = 0;
        pm_image out = {0};
        assert_int_equal(pm_mask_prepare(&m, radius[k], &out, &holes), 0);
        assert_int_equal(holes, area[k]);
        /* Shrinking it back by the same radius leaves the centre only. */
        assert_int_equal(pm_mask_dilate(&out, -radius[k]), 0);
        for (int i = 0; i < n * n; i++)
            assert_int_equal(out.data[i], i == (n / 2) * n + n / 2 ? 255 : 0);
        pm_image_free(&out);
        pm_image_free(&m);
    }
}

static void test_bounds_and_channels(void **st)
{
    (void)st;
    pm_image m = {0}, rgb = {0}, out = {0};
    assert_int_equal(pm_image_alloc(&m, 8, 8, 1), 0);
    assert_int_equal(pm_mask_dilate(&m, PM_MASK_DILATE_MAX + 1), PM_EINVAL);
    assert_non_null(strstr(pm_error_detail(), "at most 256"));
    assert_int_equal(pm_mask_dilate(&m, -PM_MASK_DILATE_MAX - 1), PM_EINVAL);
    assert_int_equal(pm_mask_dilate(&m, PM_MASK_DILATE_MAX), 0); /* the bound itself is fine */
    assert_int_equal(pm_image_alloc(&rgb, 8, 8, 3), 0);
    assert_int_equal(pm_mask_dilate(&rgb, 2), PM_EINVAL);
    /* pm_mask_prepare reads the first channel of any mask. */
    rgb.data[(3 * 8 + 3) * 3] = 1;
    rgb.data[(5 * 8 + 6) * 3 + 1] = 255; /* green only: not selected */
    size_t holes = 0;
    assert_int_equal(pm_mask_prepare(&rgb, 0, &out, &holes), 0);
    assert_int_equal(holes, 1);
    assert_int_equal(out.channels, 1);
    assert_int_equal(out.data[3 * 8 + 3], 255);
    pm_image_free(&out);
    assert_int_equal(pm_mask_prepare(&rgb, 1, &out, &holes), 0);
    assert_int_equal(holes, 5);
    pm_image_free(&out);
    pm_image_free(&rgb);
    pm_image_free(&m);
}

/* A large mask with the largest radius: the transform stays exact far from
 * the seeds (checked at sample points against the distance formula). */
static void test_large_radius_exact(void **st)
{
    (void)st;
    int w = 1200, h = 900, r = PM_MASK_DILATE_MAX;
    pm_image m = {0};
    assert_int_equal(pm_image_alloc(&m, w, h, 1), 0);
    static const int seeds[][2] = {{100, 100}, {700, 450}, {1150, 880}, {400, 820}};
    for (int i = 0; i < 4; i++)
        m.data[seeds[i][1] * w + seeds[i][0]] = 255;
    assert_int_equal(pm_mask_dilate(&m, r), 0);
    for (int k = 0; k < 20000; k++) {
        int x = (int)(rnd() % (uint32_t)w), y = (int)(rnd() % (uint32_t)h), in = 0;
        for (int i = 0; i < 4; i++) {
            long long dx = x - seeds[i][0], dy = y - seeds[i][1];
            in |= dx * dx + dy * dy <= (long long)r * r;
        }
        if ((m.data[y * w + x] != 0) != in)
            fail_msg("pixel (%d, %d): %d, wanted %d", x, y, m.data[y * w + x], in);
    }
    pm_image_free(&m);
}

/* JPEGs written by libjpeg-turbo at known qualities come back at that quality
 * (colour with both tables, and grey with the luminance table only). */
static void test_jpeg_quality_estimate(void **st)
{
    (void)st;
    pm_image rgb = {0}, grey = {0};
    assert_int_equal(pm_image_alloc(&rgb, 64, 48, 3), 0);
    for (size_t i = 0; i < (size_t)64 * 48 * 3; i++)
        rgb.data[i] = (uint8_t)(i * 7 + (rnd() & 31));
    assert_int_equal(pm_image_convert(&grey, &rgb, 1), 0);
    static const int qualities[] = {5, 10, 25, 40, 50, 60, 75, 85, 90, 92, 95, 98};
    for (int g = 0; g < 2; g++)
        for (size_t k = 0; k < sizeof qualities / sizeof qualities[0]; k++) {
            pm_encode_opts o = pm_default_encode_opts(PM_FMT_JPEG);
            o.quality = qualities[k];
            uint8_t *buf = NULL;
            size_t len = 0;
            assert_int_equal(pm_image_encode(g ? &grey : &rgb, &o, &buf, &len), 0);
            int q = 0;
            assert_int_equal(pm_jpeg_estimate_quality(buf, len, &q), 0);
            if (q < qualities[k] - 1 || q > qualities[k] + 1)
                fail_msg("%s JPEG written at quality %d is estimated at %d", g ? "grey" : "colour", qualities[k], q);
            pm_encode_opts like;
            assert_int_equal(pm_encode_opts_like(buf, len, &like), 0);
            assert_int_equal(like.format, PM_FMT_JPEG);
            assert_int_equal(like.quality, q);
            pm_free(buf);
        }
    pm_image_free(&grey);
    pm_image_free(&rgb);
}

static void test_jpeg_quality_bad_input(void **st)
{
    (void)st;
    int q = 0;
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10};
    assert_int_equal(pm_jpeg_estimate_quality(png, sizeof png, &q), PM_EFORMAT);
    /* SOI, then a DQT whose length runs past the end. */
    static const uint8_t cut[] = {0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00, 1, 2, 3};
    assert_int_equal(pm_jpeg_estimate_quality(cut, sizeof cut, &q), PM_ETRUNCATED);
    /* SOI then straight to the scan: no table. */
    static const uint8_t none[] = {0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9};
    assert_int_equal(pm_jpeg_estimate_quality(none, sizeof none, &q), PM_ECORRUPT);
}

/* PNG in: PNG out; WebP in: WebP out, lossless exactly when the input is. */
static void test_encode_like_png_webp(void **st)
{
    (void)st;
    pm_image img = {0};
    assert_int_equal(pm_image_alloc(&img, 16, 16, 3), 0);
    for (int lossless = 0; lossless < 2; lossless++) {
        pm_encode_opts o = pm_default_encode_opts(PM_FMT_WEBP);
        o.lossless = lossless;
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(pm_image_encode(&img, &o, &buf, &len), 0);
        pm_encode_opts like;
        assert_int_equal(pm_encode_opts_like(buf, len, &like), 0);
        assert_int_equal(like.format, PM_FMT_WEBP);
        assert_int_equal(like.lossless, lossless);
        pm_free(buf);
    }
    pm_encode_opts o = pm_default_encode_opts(PM_FMT_PNG);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(pm_image_encode(&img, &o, &buf, &len), 0);
    pm_encode_opts like;
    assert_int_equal(pm_encode_opts_like(buf, len, &like), 0);
    assert_int_equal(like.format, PM_FMT_PNG);
    pm_free(buf);
    assert_int_equal(pm_encode_opts_like((const uint8_t *)"hello", 5, &like), PM_EFORMAT);
    pm_image_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dilate_matches_brute_force),
        cmocka_unit_test(test_single_pixel_is_a_disc),
        cmocka_unit_test(test_bounds_and_channels),
        cmocka_unit_test(test_large_radius_exact),
        cmocka_unit_test(test_jpeg_quality_estimate),
        cmocka_unit_test(test_jpeg_quality_bad_input),
        cmocka_unit_test(test_encode_like_png_webp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
