/* PNG decoding of every colour type and bit depth (with palettes, tRNS and
 * Adam7), checked pixel by pixel against the samples the file was built
 * from; PNG encoding round trips. */
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

struct png_case {
    int color, depth, interlace, trns;
    int w, h;
};

static int nchan(int color)
{
    return color == 0 || color == 3 ? 1 : color == 2 ? 3 : color == 4 ? 2 : 4;
}

/* The sample value stored at (x, y, channel c). */
static unsigned sample(int x, int y, int c, int depth)
{
    unsigned v = (unsigned)(x * 37 + y * 101 + c * 59 + 13);
    if (depth == 16)
        v = v * 2731u + (unsigned)(x * y);
    return v & ((1u << depth) - 1u);
}

/* A sample scaled to 8 bits the way PNG defines it (v * 255 / max, exact for
 * 1, 2, 4 bits), 16-bit samples reduced to their high byte. */
static uint8_t to8(unsigned v, int depth)
{
    if (depth == 16)
        return (uint8_t)(v >> 8);
    return (uint8_t)(v * 255u / ((1u << depth) - 1u));
}

static void palette_entry(int i, uint8_t rgb[3])
{
    rgb[0] = (uint8_t)(i * 53 + 7);
    rgb[1] = (uint8_t)(i * 97 + 11);
    rgb[2] = (uint8_t)(i * 31 + 200);
}

static uint8_t palette_alpha(int i, int n_trns)
{
    return i < n_trns ? (uint8_t)(i * 40 + 3) : 255;
}

/* Packs samples as PNG stores them (host-order 16-bit for libspng's
 * SPNG_FMT_PNG); returns a malloc'ed buffer. */
static uint8_t *pack(const struct png_case *k)
{
    int nc = nchan(k->color);
    size_t rb = fx_png_rowbytes(k->w, k->color, k->depth);
    uint8_t *raw = calloc(rb * (size_t)k->h, 1);
    assert_non_null(raw);
    for (int y = 0; y < k->h; y++) {
        uint8_t *row = raw + rb * (size_t)y;
        for (int x = 0; x < k->w; x++) {
            for (int c = 0; c < nc; c++) {
                unsigned v = sample(x, y, c, k->depth);
                size_t idx = (size_t)x * nc + c;
                if (k->depth == 16) {
                    uint16_t s = (uint16_t)v;
                    memcpy(row + 2 * idx, &s, 2);
                } else if (k->depth == 8) {
                    row[idx] = (uint8_t)v;
                } else {
                    size_t bit = idx * (size_t)k->depth;
                    row[bit / 8] |= (uint8_t)(v << (8 - k->depth - bit % 8));
                }
            }
        }
    }
    return raw;
}

static void check_case(const struct png_case *k)
{
    char what[96];
    snprintf(what, sizeof what, "colour %d depth %d interlace %d trns %d %dx%d", k->color, k->depth, k->interlace,
             k->trns, k->w, k->h);
    uint8_t *raw = pack(k);

    uint8_t plte[256 * 3];
    int n_plte = 0;
    uint8_t trns[256];
    int n_trns = 0;
    if (k->color == 3) {
        n_plte = 1 << k->depth;
        for (int i = 0; i < n_plte; i++)
            palette_entry(i, plte + 3 * i);
        if (k->trns) {
            n_trns = n_plte / 2 + 1; /* entries past the tRNS list are opaque */
            for (int i = 0; i < n_trns; i++)
                trns[i] = palette_alpha(i, n_trns);
        }
    } else if (k->trns) {
        /* The key is the colour of pixel (1, 1), so some pixels match it. */
        int nc = nchan(k->color);
        for (int c = 0; c < nc; c++) {
            unsigned v = sample(1, 1, c, k->depth);
            trns[2 * c] = (uint8_t)(v >> 8);
            trns[2 * c + 1] = (uint8_t)v;
        }
        n_trns = 2 * nc;
    }
    size_t len;
    uint8_t *png = fx_png(raw, k->w, k->h, k->color, k->depth, k->interlace, n_plte ? plte : NULL, n_plte,
                          k->trns ? trns : NULL, n_trns, &len);

    int want_ch = (k->color == 4 || k->color == 6 || k->trns) ? 4 : k->color == 0 ? 1 : 3;
    pm_image_info info;
    FX_ASSERT_OK(pm_image_probe(png, len, NULL, &info));
    assert_int_equal(info.format, PM_FMT_PNG);
    assert_int_equal(info.width, k->w);
    assert_int_equal(info.height, k->h);
    assert_int_equal(info.channels, want_ch);
    assert_int_equal(info.orientation, 1);

    pm_image img;
    FX_ASSERT_OK(pm_image_decode(png, len, NULL, "case.png", &img));
    assert_int_equal(img.width, k->w);
    assert_int_equal(img.height, k->h);
    if (img.channels != want_ch)
        fail_msg("%s: %d channels, want %d", what, img.channels, want_ch);

    int nc = nchan(k->color);
    for (int y = 0; y < k->h; y++) {
        for (int x = 0; x < k->w; x++) {
            uint8_t want[4] = {0, 0, 0, 255};
            unsigned s[4];
            for (int c = 0; c < nc; c++)
                s[c] = sample(x, y, c, k->depth);
            switch (k->color) {
            case 0:
                want[0] = want[1] = want[2] = to8(s[0], k->depth);
                if (k->trns && s[0] == sample(1, 1, 0, k->depth))
                    want[3] = 0;
                break;
            case 2:
                for (int c = 0; c < 3; c++)
                    want[c] = to8(s[c], k->depth);
                if (k->trns && s[0] == sample(1, 1, 0, k->depth) && s[1] == sample(1, 1, 1, k->depth) &&
                    s[2] == sample(1, 1, 2, k->depth))
                    want[3] = 0;
                break;
            case 3:
                palette_entry((int)s[0], want);
                want[3] = palette_alpha((int)s[0], n_trns);
                break;
            case 4:
                want[0] = want[1] = want[2] = to8(s[0], k->depth);
                want[3] = to8(s[1], k->depth);
                break;
            default:
                for (int c = 0; c < 4; c++)
                    want[c] = to8(s[c], k->depth);
            }
            const uint8_t *got = img.data + ((size_t)y * k->w + x) * want_ch;
            for (int c = 0; c < want_ch; c++) {
                uint8_t w = want_ch == 1 ? want[0] : want[c];
                if (got[c] != w)
                    fail_msg("%s: pixel (%d,%d) channel %d is %d, want %d", what, x, y, c, got[c], w);
            }
        }
    }
    pm_image_free(&img);
    free(png);
    free(raw);
}

static void test_gray(void **state)
{
    (void)state;
    const int depths[] = {1, 2, 4, 8, 16};
    for (int i = 0; i < 5; i++) {
        check_case(&(struct png_case){0, depths[i], 0, 0, 13, 7});
        check_case(&(struct png_case){0, depths[i], 1, 0, 19, 11});
    }
}

static void test_gray_trns(void **state)
{
    (void)state;
    check_case(&(struct png_case){0, 8, 0, 1, 13, 7});
    check_case(&(struct png_case){0, 16, 0, 1, 13, 7});
    check_case(&(struct png_case){0, 4, 1, 1, 19, 11});
}

static void test_gray_alpha(void **state)
{
    (void)state;
    check_case(&(struct png_case){4, 8, 0, 0, 13, 7});
    check_case(&(struct png_case){4, 16, 0, 0, 13, 7});
    check_case(&(struct png_case){4, 8, 1, 0, 19, 11});
}

static void test_palette(void **state)
{
    (void)state;
    const int depths[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        check_case(&(struct png_case){3, depths[i], 0, 0, 13, 7});
        check_case(&(struct png_case){3, depths[i], 0, 1, 13, 7});
    }
    check_case(&(struct png_case){3, 4, 1, 1, 19, 11});
    check_case(&(struct png_case){3, 8, 1, 0, 19, 11});
}

static void test_rgb(void **state)
{
    (void)state;
    check_case(&(struct png_case){2, 8, 0, 0, 13, 7});
    check_case(&(struct png_case){2, 16, 0, 0, 13, 7});
    check_case(&(struct png_case){2, 8, 1, 0, 19, 11});
    check_case(&(struct png_case){2, 8, 0, 1, 13, 7});
    check_case(&(struct png_case){2, 16, 0, 1, 13, 7});
    check_case(&(struct png_case){2, 8, 0, 0, 1, 1});
}

static void test_rgba(void **state)
{
    (void)state;
    check_case(&(struct png_case){6, 8, 0, 0, 13, 7});
    check_case(&(struct png_case){6, 16, 0, 0, 13, 7});
    check_case(&(struct png_case){6, 16, 1, 0, 19, 11});
}

static void test_encode_round_trip(void **state)
{
    (void)state;
    const int chans[] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        pm_image img;
        FX_ASSERT_OK(pm_image_alloc(&img, 37, 23, chans[i]));
        fx_random_bytes(img.data, (size_t)37 * 23 * chans[i], (uint32_t)(i + 1));
        pm_encode_opts o = pm_default_encode_opts(PM_FMT_PNG);
        uint8_t *buf = NULL;
        size_t n = 0;
        FX_ASSERT_OK(pm_image_encode(&img, &o, &buf, &n));
        assert_int_equal(pm_format_sniff(buf, n), PM_FMT_PNG);
        pm_image back;
        FX_ASSERT_OK(pm_image_decode(buf, n, NULL, "x.png", &back));
        assert_int_equal(back.channels, chans[i]);
        assert_int_equal(back.width, 37);
        assert_int_equal(back.height, 23);
        assert_memory_equal(back.data, img.data, (size_t)37 * 23 * chans[i]);
        pm_free(buf);
        pm_image_free(&back);
        pm_image_free(&img);
    }
}

/* The encoder's buffer and libspng's internals go through the counting
 * allocator, and everything is released afterwards. */
static void test_memory_accounted(void **state)
{
    (void)state;
    pm_image img;
    FX_ASSERT_OK(pm_image_alloc(&img, 300, 200, 3));
    fx_random_bytes(img.data, 300 * 200 * 3, 5);
    size_t base = pm_mem_in_use();
    pm_mem_reset_peak();
    pm_encode_opts o = pm_default_encode_opts(PM_FMT_PNG);
    uint8_t *buf = NULL;
    size_t n = 0;
    FX_ASSERT_OK(pm_image_encode(&img, &o, &buf, &n));
    assert_true(pm_mem_peak() > base + n); /* libspng's zlib state and buffers were counted */
    pm_image back;
    FX_ASSERT_OK(pm_image_decode(buf, n, NULL, NULL, &back));
    pm_free(buf);
    pm_image_free(&back);
    assert_int_equal(pm_mem_in_use(), base);
    pm_image_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gray),
        cmocka_unit_test(test_gray_trns),
        cmocka_unit_test(test_gray_alpha),
        cmocka_unit_test(test_palette),
        cmocka_unit_test(test_rgb),
        cmocka_unit_test(test_rgba),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_memory_accounted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
