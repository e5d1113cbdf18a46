/* Hostile inputs: truncation at every offset, flipped bytes, garbage,
 * headers that claim enormous sizes, a decompression bomb, a progressive
 * JPEG scan bomb. Each must give its own error code, allocate nothing big
 * before the limits are checked, and never crash (this file also runs under
 * ASan/UBSan and valgrind). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <turbojpeg.h>

#include "pixmend.h"
#include "support/image_assert.h"
#include "support/image_fixtures.h"

struct fixture {
    const char *name;
    uint8_t *data;
    size_t len;
};

#define NFIX 11
static struct fixture fix[NFIX];

static int setup(void **state)
{
    (void)state;
    int n = 0;
    uint8_t px[64 * 64 * 4];
    fx_random_bytes(px, sizeof px, 1);
    /* Smooth content for the lossy codecs. */
    uint8_t smooth[32 * 32 * 4];
    for (int i = 0; i < 32 * 32; i++)
        for (int k = 0; k < 4; k++)
            smooth[i * 4 + k] = (uint8_t)((i % 32) * 6 + (i / 32) * 2 + k * 30);
    uint8_t cmyk[16 * 16 * 4];
    fx_random_bytes(cmyk, sizeof cmyk, 2);

    fix[n].name = "png gray 8x8";
    fix[n].data = fx_png(px, 8, 8, 0, 8, 0, NULL, 0, NULL, 0, &fix[n].len);
    n++;
    uint8_t plte[16 * 3];
    fx_random_bytes(plte, sizeof plte, 3);
    const uint8_t trns[4] = {0, 80, 160, 255};
    fix[n].name = "png palette 4-bit tRNS interlaced";
    fix[n].data = fx_png(px, 19, 11, 3, 4, 1, plte, 16, trns, 4, &fix[n].len);
    n++;
    fix[n].name = "png rgba16 15x9";
    fix[n].data = fx_png(px, 15, 9, 6, 16, 0, NULL, 0, NULL, 0, &fix[n].len);
    n++;
    fix[n].name = "png rgb 64x48 noise";
    fix[n].data = fx_png(px, 64, 48, 2, 8, 0, NULL, 0, NULL, 0, &fix[n].len);
    n++;
    fix[n].name = "jpeg baseline 16x16";
    fix[n].data = fx_jpeg(smooth, 16, 16, TJPF_RGBX, TJSAMP_420, 80, 0, &fix[n].len);
    n++;
    fix[n].name = "jpeg progressive 32x32";
    fix[n].data = fx_jpeg(smooth, 32, 32, TJPF_RGBX, TJSAMP_444, 90, TJFLAG_PROGRESSIVE, &fix[n].len);
    n++;
    fix[n].name = "jpeg gray 32x32";
    fix[n].data = fx_jpeg(smooth, 32, 32, TJPF_GRAY, TJSAMP_GRAY, 90, 0, &fix[n].len);
    n++;
    fix[n].name = "jpeg cmyk 16x16 + exif";
    uint8_t *c = fx_jpeg(cmyk, 16, 16, TJPF_CMYK, TJSAMP_444, 90, 0, &fix[n].len);
    fix[n].data = fx_jpeg_with_exif(c, fix[n].len, 6, 0, &fix[n].len);
    free(c);
    n++;
    fix[n].name = "webp lossy 32x32";
    fix[n].data = fx_webp(smooth, 32, 32, 3, 0, 80, &fix[n].len);
    n++;
    fix[n].name = "webp lossless alpha 32x32";
    fix[n].data = fx_webp(smooth, 32, 32, 4, 1, 75, &fix[n].len);
    n++;
    fix[n].name = "webp lossy alpha 32x32";
    fix[n].data = fx_webp(smooth, 32, 32, 4, 0, 80, &fix[n].len);
    n++;
    assert_int_equal(n, NFIX);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NFIX; i++)
        free(fix[i].data);
    return 0;
}

/* For the figures the bomb test prints; nothing asserts on time. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_fixtures_decode(void **state)
{
    (void)state;
    for (int i = 0; i < NFIX; i++) {
        pm_image img;
        int rc = pm_image_decode(fix[i].data, fix[i].len, NULL, NULL, &img);
        if (rc)
            fail_msg("%s: %s", fix[i].name, pm_error_detail());
        pm_image_free(&img);
    }
}

/* Every prefix of every fixture: EEMPTY at 0 bytes, ETRUNCATED otherwise,
 * from both probe and decode, with *out left zeroed. */
static void test_truncated_every_offset(void **state)
{
    (void)state;
    for (int i = 0; i < NFIX; i++) {
        for (size_t off = 0; off < fix[i].len; off++) {
            /* A private copy of exactly `off` bytes, so ASan sees any over-read. */
            uint8_t *cut = malloc(off ? off : 1);
            memcpy(cut, fix[i].data, off);
            int want = off == 0 ? PM_EEMPTY : PM_ETRUNCATED;
            pm_image img;
            memset(&img, 0x5a, sizeof img);
            int rc = pm_image_decode(cut, off, NULL, NULL, &img);
            if (rc != want)
                fail_msg("%s cut at %zu of %zu: decode gave %d (%s), want %d", fix[i].name, off, fix[i].len, rc,
                         pm_error_detail(), want);
            assert_null(img.data);
            assert_int_equal(img.width, 0);
            pm_image_info info;
            rc = pm_image_probe(cut, off, NULL, &info);
            if (rc != want)
                fail_msg("%s cut at %zu: probe gave %d (%s)", fix[i].name, off, rc, pm_error_detail());
            if (off > 0 && !strstr(pm_error_detail(), "truncated"))
                fail_msg("%s cut at %zu: message \"%s\" does not say truncated", fix[i].name, off,
                         pm_error_detail());
            free(cut);
        }
    }
}

/* Byte ranges of a PNG's chunk fields. */
enum png_part { SIG, LENGTH, TYPE, COVERED /* data, CRC */ };

static enum png_part png_part_of(const uint8_t *png, size_t len, size_t at)
{
    if (at < 8)
        return SIG;
    size_t pos = 8;
    while (pos + 12 <= len) {
        uint32_t n = ((uint32_t)png[pos] << 24) | ((uint32_t)png[pos + 1] << 16) | ((uint32_t)png[pos + 2] << 8) |
                     png[pos + 3];
        if (at < pos + 4)
            return LENGTH;
        if (at < pos + 8)
            return TYPE;
        if (at < pos + 12 + n)
            return COVERED;
        pos += 12 + n;
    }
    fail_msg("offset %zu outside the chunks", at);
    return SIG;
}

/* Any changed byte of a PNG is detected: a chunk type, data or CRC byte
 * gives ECORRUPT (data and CRC: "bad CRC"), a length byte ECORRUPT or
 * ETRUNCATED, a signature byte EFORMAT. */
static void test_png_flipped_bytes(void **state)
{
    (void)state;
    const uint8_t masks[2] = {0xff, 0x01};
    for (int i = 0; i < 4; i++) {
        const struct fixture *f = &fix[i];
        uint8_t *d = malloc(f->len);
        for (size_t at = 0; at < f->len; at++) {
            for (int m = 0; m < 2; m++) {
                memcpy(d, f->data, f->len);
                d[at] ^= masks[m];
                pm_image img;
                int rc = pm_image_decode(d, f->len, NULL, NULL, &img);
                enum png_part part = png_part_of(f->data, f->len, at);
                int ok = part == SIG ? rc == PM_EFORMAT
                         : part == LENGTH ? (rc == PM_ECORRUPT || rc == PM_ETRUNCATED)
                                          : rc == PM_ECORRUPT && strstr(pm_error_detail(), "damaged");
                if (!ok)
                    fail_msg("%s byte %zu ^ 0x%02x (part %d): got %d (%s)", f->name, at, masks[m], part, rc,
                             pm_error_detail());
                if (part == COVERED && !strstr(pm_error_detail(), "CRC"))
                    fail_msg("%s byte %zu: message \"%s\" does not mention the CRC", f->name, at, pm_error_detail());
                assert_null(img.data);
            }
        }
        free(d);
    }
}

/* Damage inside the compressed stream with a recomputed CRC gets past the
 * chunk walk and must be caught by the decoder (zlib, filters, Adler-32). */
static void test_png_damaged_stream_valid_crc(void **state)
{
    (void)state;
    const struct fixture *f = &fix[3]; /* 64x48 RGB noise: one large IDAT */
    size_t pos = 8, idat = 0;
    uint32_t idat_len = 0;
    while (pos + 12 <= f->len) {
        uint32_t n = ((uint32_t)f->data[pos] << 24) | ((uint32_t)f->data[pos + 1] << 16) |
                     ((uint32_t)f->data[pos + 2] << 8) | f->data[pos + 3];
        if (!memcmp(f->data + pos + 4, "IDAT", 4)) {
            idat = pos;
            idat_len = n;
            break;
        }
        pos += 12 + n;
    }
    assert_true(idat > 0 && idat_len > 100);
    uint8_t *d = malloc(f->len);
    int detected = 0, tried = 0;
    for (uint32_t k = 0; k < idat_len; k += 7) {
        memcpy(d, f->data, f->len);
        d[idat + 8 + k] ^= 0x55;
        fx_png_fix_crc(d, idat);
        pm_image img;
        int rc = pm_image_decode(d, f->len, NULL, NULL, &img);
        tried++;
        if (rc == PM_ECORRUPT)
            detected++;
        else if (rc != 0)
            fail_msg("IDAT byte %u: unexpected code %d (%s)", k, rc, pm_error_detail());
        pm_image_free(&img);
    }
    /* Adler-32 over the inflated data catches every change of the stream. */
    if (detected != tried)
        fail_msg("only %d of %d damaged streams were reported", detected, tried);
    free(d);
}

/* JPEG and WebP have no CRC: a flipped byte may decode to a damaged but
 * valid-looking image. What matters is a defined answer and no crash. */
static void test_jpeg_webp_flipped_bytes_no_crash(void **state)
{
    (void)state;
    for (int i = 4; i < NFIX; i++) {
        const struct fixture *f = &fix[i];
        uint8_t *d = malloc(f->len);
        int errors = 0, entropy_damage = 0;
        for (size_t at = 0; at < f->len; at++) {
            memcpy(d, f->data, f->len);
            d[at] ^= 0xff;
            pm_image img;
            int rc = pm_image_decode(d, f->len, NULL, NULL, &img);
            if (rc == 0) {
                assert_non_null(img.data);
                assert_true(img.width > 0 && img.width <= 8192 && img.height > 0 && img.height <= 8192);
                pm_image_free(&img);
            } else {
                if (rc != PM_ECORRUPT && rc != PM_ETRUNCATED && rc != PM_EFORMAT && rc != PM_EUNSUPPORTED &&
                    rc != PM_ETOOBIG)
                    fail_msg("%s byte %zu: code %d (%s)", f->name, at, rc, pm_error_detail());
                assert_true(strlen(pm_error_detail()) > 10);
                assert_null(img.data);
                errors++;
                entropy_damage += strstr(pm_error_detail(), "Corrupt JPEG data") != NULL;
            }
        }
        print_message("%s: %d of %zu single-byte flips reported as errors\n", f->name, errors, f->len);
        assert_true(errors > 0);
        /* libjpeg's "Corrupt JPEG data" warnings in the image data count as damage. */
        if (strncmp(f->name, "jpeg", 4) == 0 && entropy_damage == 0)
            fail_msg("%s: no flip was reported as damaged entropy data", f->name);
        free(d);
    }
}

static void test_garbage(void **state)
{
    (void)state;
    uint8_t buf[4096];
    for (uint32_t seed = 1; seed <= 200; seed++) {
        size_t n = 16 + (seed * 97) % (sizeof buf - 16);
        fx_random_bytes(buf, n, seed);
        pm_image img;
        int rc = pm_image_decode(buf, n, NULL, NULL, &img);
        if (rc != PM_EFORMAT)
            fail_msg("random %zu bytes (seed %u): %d (%s)", n, seed, rc, pm_error_detail());
        /* The right magic followed by garbage: an error naming damage or an end. */
        static const char *const magic[3] = {"\x89PNG\r\n\x1a\n", "\xff\xd8\xff", "RIFF\xf0\x0f\0\0WEBP"};
        static const size_t mlen[3] = {8, 3, 12};
        for (int m = 0; m < 3; m++) {
            memcpy(buf, magic[m], mlen[m]);
            rc = pm_image_decode(buf, n, NULL, NULL, &img);
            if (rc != PM_ECORRUPT && rc != PM_ETRUNCATED && rc != PM_EUNSUPPORTED)
                fail_msg("magic %d + garbage (seed %u, %zu bytes): %d (%s)", m, seed, n, rc, pm_error_detail());
            assert_null(img.data);
        }
    }
}

/* IHDR claims 100000x100000 / 50000x50000 in a file of a few hundred bytes:
 * refused from the header, with (almost) nothing allocated. */
static void test_huge_header(void **state)
{
    (void)state;
    const uint32_t sides[2] = {100000, 50000};
    for (int i = 0; i < 2; i++) {
        size_t len;
        uint8_t *png = fx_png_zero_rows(sides[i], sides[i], 6, 16, 1, &len);
        assert_true(len < 4096);
        char want[64];
        snprintf(want, sizeof want, "image is %ux%u", sides[i], sides[i]);
        pm_mem_reset_peak();
        size_t base = pm_mem_in_use();
        pm_image img;
        FX_ASSERT_ERR(pm_image_decode(png, len, NULL, "huge.png", &img), PM_ETOOBIG, want);
        assert_non_null(strstr(pm_error_detail(), "(--max-pixels)"));
        pm_image_info info;
        FX_ASSERT_ERR(pm_image_probe(png, len, NULL, &info), PM_ETOOBIG, want);
        /* Even with the limits lifted, the hard cap refuses it. */
        pm_limits lift = {UINT64_MAX, UINT32_MAX, UINT64_MAX};
        FX_ASSERT_ERR(pm_image_decode(png, len, &lift, NULL, &img), PM_ETOOBIG, "hard maximum");
        size_t peak = pm_mem_peak() - base;
        if (peak > 1024)
            fail_msg("%ux%u header: %zu bytes allocated before refusing", sides[i], sides[i], peak);
        assert_null(img.data);
        free(png);
    }
}

/* 8000 x 8000 gray zeros compress to a few tens of KB. Refused by the
 * default and by lowered limits; decoded in bounded memory when allowed. */
static void test_decompression_bomb(void **state)
{
    (void)state;
    const uint32_t side = 8000;
    double t0 = now();
    size_t len;
    uint8_t *png = fx_png_zero_rows(side, side, 0, 8, side, &len);
    double t1 = now();
    print_message("bomb: %ux%u gray PNG is %zu bytes (built in %.2f s)\n", side, side, len, t1 - t0);
    assert_true(len < 128 * 1024);

    pm_image img;
    pm_mem_reset_peak();
    size_t base = pm_mem_in_use();
    FX_ASSERT_ERR(pm_image_decode(png, len, NULL, NULL, &img), PM_ETOOBIG, "image is 8000x8000 (64.0 MP)");
    pm_limits lim = pm_default_limits();
    lim.max_pixels = 1000000;
    lim.max_side = 8000;
    FX_ASSERT_ERR(pm_image_decode(png, len, &lim, NULL, &img), PM_ETOOBIG, "at most 1.0 MP");
    lim.max_pixels = 64000000;
    lim.max_side = 7999;
    FX_ASSERT_ERR(pm_image_decode(png, len, &lim, NULL, &img), PM_ETOOBIG, "image side 8000 px");
    assert_true(pm_mem_peak() - base < 1024);

    lim.max_side = 8000;
    double t2 = now();
    FX_ASSERT_OK(pm_image_decode(png, len, &lim, NULL, &img));
    double t3 = now();
    size_t pixels = (size_t)side * side;
    size_t peak = pm_mem_peak() - base;
    print_message("bomb: decoded in %.2f s, peak %.1f MB for %.1f MB of pixels\n", t3 - t2, peak / 1e6,
                  pixels / 1e6);
    assert_int_equal(img.channels, 1);
    assert_int_equal(img.width, (int)side);
    size_t nonzero = 0;
    for (size_t i = 0; i < pixels; i++)
        nonzero += img.data[i] != 0;
    assert_int_equal(nonzero, 0);
    /* The output plus libspng's row buffers and inflate state; no second copy. */
    assert_true(peak >= pixels);
    assert_true(peak < pixels + 1024 * 1024);
    pm_image_free(&img);
    free(png);
}

/* A progressive JPEG with 600 copies of one scan: refused from the marker
 * walk before libjpeg spends time on it. */
static void test_jpeg_scan_bomb(void **state)
{
    (void)state;
    const struct fixture *f = &fix[5];
    size_t last_sos = 0;
    for (size_t i = 2; i + 1 < f->len; i++)
        if (f->data[i] == 0xff && f->data[i + 1] == 0xda)
            last_sos = i;
    assert_true(last_sos > 0);
    size_t eoi = f->len - 2;
    assert_int_equal(f->data[eoi + 1], 0xd9);
    size_t scan = eoi - last_sos;
    const int copies = 600;
    size_t n = eoi + (size_t)copies * scan + 2;
    uint8_t *d = malloc(n);
    memcpy(d, f->data, eoi);
    for (int c = 0; c < copies; c++)
        memcpy(d + eoi + (size_t)c * scan, f->data + last_sos, scan);
    d[n - 2] = 0xff;
    d[n - 1] = 0xd9;
    pm_image img;
    /* Refused by the scan limit (not by running out of time): the error
     * names it. A wall-clock bound here would depend on the machine. */
    FX_ASSERT_ERR(pm_image_decode(d, n, NULL, NULL, &img), PM_ECORRUPT, "scans");
    assert_null(img.data);
    free(d);
}

static void test_png_structure_damage(void **state)
{
    (void)state;
    size_t len;
    pm_image img;
    /* An invalid bit depth with a correct CRC. */
    uint8_t *png = fx_png_zero_rows(4, 4, 2, 3, 4, &len);
    FX_ASSERT_ERR(pm_image_decode(png, len, NULL, NULL, &img), PM_ECORRUPT, "bit depth 3");
    free(png);
    /* Width 0. */
    png = fx_png_zero_rows(0, 4, 0, 8, 4, &len);
    FX_ASSERT_ERR(pm_image_decode(png, len, NULL, NULL, &img), PM_ECORRUPT, "invalid size");
    free(png);
    /* A palette image without PLTE. */
    png = fx_png_zero_rows(4, 4, 3, 8, 4, &len);
    FX_ASSERT_ERR(pm_image_decode(png, len, NULL, NULL, &img), PM_ECORRUPT, "no palette");
    free(png);
    /* Too few rows of image data inside a well-formed file. */
    png = fx_png_zero_rows(16, 16, 0, 8, 8, &len);
    FX_ASSERT_ERR(pm_image_decode(png, len, NULL, NULL, &img), PM_ECORRUPT, NULL);
    free(png);
    /* A chunk length beyond what PNG allows. */
    png = fx_png_zero_rows(4, 4, 0, 8, 4, &len);
    png[33] = 0x80; /* IDAT length, high byte: IHDR chunk is bytes 8..32 */
    FX_ASSERT_ERR(pm_image_decode(png, len, NULL, NULL, &img), PM_ECORRUPT, "more than PNG allows");
    free(png);
    /* No IDAT at all: signature, IHDR, IEND. */
    png = fx_png_zero_rows(4, 4, 0, 8, 4, &len);
    size_t idat_len = ((size_t)png[33] << 24 | (size_t)png[34] << 16 | (size_t)png[35] << 8 | png[36]);
    memmove(png + 33, png + 33 + 12 + idat_len, 12);
    FX_ASSERT_ERR(pm_image_decode(png, 45, NULL, NULL, &img), PM_ECORRUPT, "no image data");
    free(png);
}

static void test_webp_container_damage(void **state)
{
    (void)state;
    const struct fixture *f = &fix[8];
    uint8_t *d = malloc(f->len + 64);
    pm_image img;
    /* RIFF size too small for any chunk. */
    memcpy(d, f->data, f->len);
    d[4] = 4;
    d[5] = d[6] = d[7] = 0;
    FX_ASSERT_ERR(pm_image_decode(d, f->len, NULL, NULL, &img), PM_ECORRUPT, "impossible size");
    /* The VP8 chunk claims more than the container holds. */
    memcpy(d, f->data, f->len);
    d[16] = 0xff;
    d[17] = 0xff;
    FX_ASSERT_ERR(pm_image_decode(d, f->len, NULL, NULL, &img), PM_ECORRUPT, "more than its container");
    /* Extra bytes after the container are ignored. */
    memcpy(d, f->data, f->len);
    memset(d + f->len, 0, 64);
    FX_ASSERT_OK(pm_image_decode(d, f->len + 64, NULL, NULL, &img));
    pm_image_free(&img);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_decode),
        cmocka_unit_test(test_truncated_every_offset),
        cmocka_unit_test(test_png_flipped_bytes),
        cmocka_unit_test(test_png_damaged_stream_valid_crc),
        cmocka_unit_test(test_jpeg_webp_flipped_bytes_no_crash),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_huge_header),
        cmocka_unit_test(test_decompression_bomb),
        cmocka_unit_test(test_jpeg_scan_bomb),
        cmocka_unit_test(test_png_structure_damage),
        cmocka_unit_test(test_webp_container_damage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
