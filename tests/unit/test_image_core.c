/* Image layer: pm_image helpers, format detection, limits and their messages,
 * file reads, atomic writes, save/load. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "pixmend.h"
#include "support/image_assert.h"
#include "support/image_fixtures.h"

/* A small RGB JPEG, for extension and sniffing tests. */
static uint8_t *small_jpeg(size_t *len)
{
    uint8_t px[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++)
        px[i] = (uint8_t)(i * 7);
    return fx_jpeg(px, 16, 16, TJPF_RGB, TJSAMP_444, 90, 0, len);
}

static uint8_t *small_png(size_t *len)
{
    uint8_t px[8 * 8];
    for (int i = 0; i < 64; i++)
        px[i] = (uint8_t)(i * 4);
    return fx_png(px, 8, 8, 0, 8, 0, NULL, 0, NULL, 0, len);
}

static void test_alloc_free(void **state)
{
    (void)state;
    pm_image img;
    FX_ASSERT_OK(pm_image_alloc(&img, 5, 3, 4));
    assert_int_equal(img.width, 5);
    assert_int_equal(img.height, 3);
    assert_int_equal(img.channels, 4);
    for (int i = 0; i < 5 * 3 * 4; i++)
        assert_int_equal(img.data[i], 0);
    pm_image_free(&img);
    assert_null(img.data);
    assert_int_equal(img.width, 0);
    pm_image_free(&img); /* safe on a zeroed struct */

    FX_ASSERT_ERR(pm_image_alloc(&img, 0, 3, 3), PM_EINVAL, "0x3");
    assert_null(img.data);
    FX_ASSERT_ERR(pm_image_alloc(&img, 3, -1, 3), PM_EINVAL, NULL);
    FX_ASSERT_ERR(pm_image_alloc(&img, 3, 3, 2), PM_EINVAL, "2 channels");
    FX_ASSERT_ERR(pm_image_alloc(&img, 2000000, 2, 1), PM_EINVAL, NULL);
}

static void test_clone_is_deep(void **state)
{
    (void)state;
    pm_image a, b;
    FX_ASSERT_OK(pm_image_alloc(&a, 4, 2, 3));
    for (int i = 0; i < 24; i++)
        a.data[i] = (uint8_t)(i + 1);
    FX_ASSERT_OK(pm_image_clone(&b, &a));
    assert_ptr_not_equal(a.data, b.data);
    a.data[0] = 200;
    assert_int_equal(b.data[0], 1);
    assert_int_equal(b.data[23], 24);
    assert_int_equal(b.width, 4);
    assert_int_equal(b.channels, 3);
    pm_image_free(&a);
    pm_image_free(&b);
    pm_image empty = {0};
    FX_ASSERT_ERR(pm_image_clone(&b, &empty), PM_EINVAL, NULL);
}

static void test_convert(void **state)
{
    (void)state;
    pm_image rgb, out;
    FX_ASSERT_OK(pm_image_alloc(&rgb, 3, 1, 3));
    const uint8_t px[9] = {255, 0, 0, 0, 255, 0, 0, 0, 255};
    memcpy(rgb.data, px, 9);

    /* BT.601: Y = 0.299 R + 0.587 G + 0.114 B */
    FX_ASSERT_OK(pm_image_convert(&out, &rgb, 1));
    assert_int_equal(out.channels, 1);
    assert_int_equal(out.data[0], 76);  /* 76.2 */
    assert_int_equal(out.data[1], 150); /* 149.7 */
    assert_int_equal(out.data[2], 29);  /* 29.1 */
    pm_image_free(&out);

    FX_ASSERT_OK(pm_image_convert(&out, &rgb, 4));
    const uint8_t want4[12] = {255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255};
    assert_memory_equal(out.data, want4, 12);

    pm_image back;
    out.data[7] = 9; /* alpha is dropped on the way back */
    FX_ASSERT_OK(pm_image_convert(&back, &out, 3));
    assert_memory_equal(back.data, px, 9);
    pm_image_free(&back);

    pm_image gray;
    FX_ASSERT_OK(pm_image_alloc(&gray, 2, 1, 1));
    gray.data[0] = 10;
    gray.data[1] = 250;
    FX_ASSERT_OK(pm_image_convert(&back, &gray, 3));
    const uint8_t want3[6] = {10, 10, 10, 250, 250, 250};
    assert_memory_equal(back.data, want3, 6);
    pm_image_free(&back);
    FX_ASSERT_OK(pm_image_convert(&back, &gray, 4));
    const uint8_t wantg4[8] = {10, 10, 10, 255, 250, 250, 250, 255};
    assert_memory_equal(back.data, wantg4, 8);
    pm_image_free(&back);

    FX_ASSERT_ERR(pm_image_convert(&back, &gray, 2), PM_EINVAL, NULL);
    assert_null(back.data);
    pm_image_free(&gray);
    pm_image_free(&out);
    pm_image_free(&rgb);
}

static void test_default_limits(void **state)
{
    (void)state;
    pm_limits l = pm_default_limits();
    assert_int_equal(l.max_pixels, 16000000);
    assert_int_equal(l.max_side, 8192);
    assert_int_equal(l.max_file_bytes, 64 * 1024 * 1024);
}

static void test_sniff_and_names(void **state)
{
    (void)state;
    size_t jl, pl;
    uint8_t *j = small_jpeg(&jl);
    uint8_t *p = small_png(&pl);
    assert_int_equal(pm_format_sniff(j, jl), PM_FMT_JPEG);
    assert_int_equal(pm_format_sniff(p, pl), PM_FMT_PNG);
    assert_int_equal(pm_format_sniff((const uint8_t *)"RIFF\x10\0\0\0WEBPVP8 ", 16), PM_FMT_WEBP);
    assert_int_equal(pm_format_sniff((const uint8_t *)"RIFF\x10\0\0\0WAVEfmt ", 16), PM_FMT_UNKNOWN);
    assert_int_equal(pm_format_sniff(p, 7), PM_FMT_UNKNOWN); /* shorter than the magic */
    assert_int_equal(pm_format_sniff(NULL, 0), PM_FMT_UNKNOWN);
    free(j);
    free(p);

    assert_int_equal(pm_format_from_name("a/b/photo.png"), PM_FMT_PNG);
    assert_int_equal(pm_format_from_name("IMG_1.JPG"), PM_FMT_JPEG);
    assert_int_equal(pm_format_from_name("x.jpeg"), PM_FMT_JPEG);
    assert_int_equal(pm_format_from_name("x.WebP"), PM_FMT_WEBP);
    assert_int_equal(pm_format_from_name("x.gif"), PM_FMT_UNKNOWN);
    assert_int_equal(pm_format_from_name("png"), PM_FMT_UNKNOWN);
    assert_int_equal(pm_format_from_name(".png"), PM_FMT_UNKNOWN); /* a hidden file, no extension */
    assert_int_equal(pm_format_from_name("dir.png/file"), PM_FMT_UNKNOWN);
    assert_int_equal(pm_format_from_name(NULL), PM_FMT_UNKNOWN);

    assert_string_equal(pm_format_name(PM_FMT_PNG), "PNG");
    assert_string_equal(pm_format_name(PM_FMT_JPEG), "JPEG");
    assert_string_equal(pm_format_name(PM_FMT_WEBP), "WebP");
    assert_string_equal(pm_format_name(PM_FMT_UNKNOWN), "unknown");
}

/* The limit messages are part of the user interface: check them verbatim. */
static void test_limit_messages(void **state)
{
    (void)state;
    pm_image_info info;
    size_t len;
    uint8_t *png = fx_png_zero_rows(5120, 3840, 0, 8, 1, &len);
    FX_ASSERT_ERR(pm_image_probe(png, len, NULL, &info), PM_ETOOBIG, NULL);
    assert_string_equal(pm_error_detail(),
                        "image is 5120x3840 (19.7 MP); this server accepts at most 16.0 MP (--max-pixels)");
    free(png);

    png = fx_png_zero_rows(9000, 100, 0, 8, 1, &len);
    FX_ASSERT_ERR(pm_image_probe(png, len, NULL, &info), PM_ETOOBIG, NULL);
    assert_string_equal(pm_error_detail(), "image side 9000 px exceeds the limit of 8192 px (--max-side)");
    /* Raising the side limit lets the header through. */
    pm_limits lim = pm_default_limits();
    lim.max_side = 10000;
    FX_ASSERT_OK(pm_image_probe(png, len, &lim, &info));
    assert_int_equal(info.width, 9000);
    assert_int_equal(info.height, 100);
    assert_int_equal(info.format, PM_FMT_PNG);
    free(png);

    /* File size, from memory. */
    uint8_t *big = calloc(3000, 1);
    memcpy(big, "\x89PNG\r\n\x1a\n", 8);
    lim = pm_default_limits();
    lim.max_file_bytes = 1024;
    pm_image img;
    FX_ASSERT_ERR(pm_image_decode(big, 3000, &lim, NULL, &img), PM_ETOOBIG, NULL);
    assert_string_equal(pm_error_detail(), "file is 2.9 KiB; the limit is 1.0 KiB (--max-file-bytes)");
    assert_null(img.data);
    free(big);

    /* A zero field means the default, never "unlimited". */
    pm_limits zero = {0, 0, 0};
    png = fx_png_zero_rows(5120, 3840, 0, 8, 1, &len);
    FX_ASSERT_ERR(pm_image_probe(png, len, &zero, &info), PM_ETOOBIG, "at most 16.0 MP");
    free(png);
}

static void test_not_an_image_messages(void **state)
{
    (void)state;
    pm_image img;
    const char *html = "\n  <!DOCTYPE html><html><body>502 Bad Gateway</body></html>";
    FX_ASSERT_ERR(pm_image_decode((const uint8_t *)html, strlen(html), NULL, NULL, &img), PM_EFORMAT,
                  "not an image: the data starts like an HTML file");
    assert_non_null(strstr(pm_error_detail(), "pixmend reads PNG, JPEG and WebP"));

    const char *text = "hello, this is a text file\n";
    FX_ASSERT_ERR(pm_image_decode((const uint8_t *)text, strlen(text), NULL, NULL, &img), PM_EFORMAT,
                  "like a text file");
    const char *gif = "GIF89a\x01\0\x01\0\0\0\0;";
    FX_ASSERT_ERR(pm_image_decode((const uint8_t *)gif, 14, NULL, NULL, &img), PM_EFORMAT, "like a GIF file");
    const char *pdf = "%PDF-1.7\n";
    FX_ASSERT_ERR(pm_image_decode((const uint8_t *)pdf, strlen(pdf), NULL, NULL, &img), PM_EFORMAT, "PDF");
    const uint8_t heic[16] = {0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c', 0, 0, 0, 0};
    FX_ASSERT_ERR(pm_image_decode(heic, sizeof heic, NULL, NULL, &img), PM_EFORMAT, "HEIF/HEIC");
    const uint8_t bin[6] = {0x00, 0x01, 0x02, 0xfe, 0x80, 0x7f};
    FX_ASSERT_ERR(pm_image_decode(bin, sizeof bin, NULL, NULL, &img), PM_EFORMAT,
                  "starts with bytes 00 01 02 fe 80 7f, which match no known format");
    const char *json = "{\"error\": \"nope\"}";
    FX_ASSERT_ERR(pm_image_probe((const uint8_t *)json, strlen(json), NULL, &(pm_image_info){0}), PM_EFORMAT,
                  "JSON");

    FX_ASSERT_ERR(pm_image_decode((const uint8_t *)"", 0, NULL, NULL, &img), PM_EEMPTY, "empty (0 bytes)");
    FX_ASSERT_ERR(pm_image_decode(NULL, 0, NULL, NULL, &img), PM_EEMPTY, NULL);
    FX_ASSERT_ERR(pm_image_probe(NULL, 0, NULL, &(pm_image_info){0}), PM_EEMPTY, NULL);
    /* The first bytes of a signature are a truncated file, not a foreign one. */
    FX_ASSERT_ERR(pm_image_decode((const uint8_t *)"\x89PN", 3, NULL, NULL, &img), PM_ETRUNCATED,
                  "inside the PNG signature");
    FX_ASSERT_ERR(pm_image_decode((const uint8_t *)"\xff\xd8", 2, NULL, NULL, &img), PM_ETRUNCATED, "JPEG");
    FX_ASSERT_ERR(pm_image_decode((const uint8_t *)"RIFF\0\0\0\0WE", 10, NULL, NULL, &img), PM_ETRUNCATED,
                  "WebP");
}

static void test_extension_mismatch(void **state)
{
    (void)state;
    size_t jl, pl;
    uint8_t *j = small_jpeg(&jl);
    uint8_t *p = small_png(&pl);
    pm_image img;
    FX_ASSERT_ERR(pm_image_decode(j, jl, NULL, "photo.png", &img), PM_EEXTENSION, NULL);
    assert_string_equal(pm_error_detail(), "photo.png contains JPEG data; rename it to photo.jpg");
    assert_null(img.data);
    FX_ASSERT_ERR(pm_image_decode(p, pl, NULL, "dir.x/scan.webp", &img), PM_EEXTENSION, NULL);
    assert_string_equal(pm_error_detail(), "dir.x/scan.webp contains PNG data; rename it to dir.x/scan.png");
    FX_ASSERT_ERR(pm_image_decode(p, pl, NULL, "a.JPEG", &img), PM_EEXTENSION, "rename it to a.png");

    /* Matching, unknown or missing extensions are fine. */
    FX_ASSERT_OK(pm_image_decode(j, jl, NULL, "IMG_0001.JPG", &img));
    assert_int_equal(img.width, 16);
    pm_image_free(&img);
    FX_ASSERT_OK(pm_image_decode(j, jl, NULL, "upload.bin", &img));
    pm_image_free(&img);
    FX_ASSERT_OK(pm_image_decode(p, pl, NULL, "noext", &img));
    assert_int_equal(img.channels, 1);
    pm_image_free(&img);
    free(j);
    free(p);
}

static void test_read_file(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/data.bin", dir);
    uint8_t content[5000];
    fx_random_bytes(content, sizeof content, 7);
    fx_write(path, content, sizeof content);

    uint8_t *buf = NULL;
    size_t n = 0;
    FX_ASSERT_OK(pm_read_file(path, 0, &buf, &n));
    assert_int_equal(n, sizeof content);
    assert_memory_equal(buf, content, n);
    pm_free(buf);

    FX_ASSERT_OK(pm_read_file(path, 5000, &buf, &n)); /* exactly at the limit */
    pm_free(buf);
    FX_ASSERT_ERR(pm_read_file(path, 4999, &buf, &n), PM_ETOOBIG, "the limit is");
    assert_null(buf);

    snprintf(path, sizeof path, "%s/missing.bin", dir);
    FX_ASSERT_ERR(pm_read_file(path, 0, &buf, &n), PM_ENOENT, "missing.bin");
    FX_ASSERT_ERR(pm_read_file(dir, 0, &buf, &n), PM_EIO, "directory");

    snprintf(path, sizeof path, "%s/empty.bin", dir);
    fx_write(path, "", 0);
    FX_ASSERT_OK(pm_read_file(path, 0, &buf, &n));
    assert_int_equal(n, 0);
    pm_free(buf);

    fx_rmtree(dir);
    free(dir);
}

static void test_write_atomic(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/out.bin", dir);

    FX_ASSERT_OK(pm_write_file_atomic(path, "first", 5));
    uint8_t *buf;
    size_t n;
    FX_ASSERT_OK(pm_read_file(path, 0, &buf, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "first", 5);
    pm_free(buf);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    /* Replacing keeps the existing file's mode; no temporary file stays. */
    assert_int_equal(chmod(path, 0600), 0);
    FX_ASSERT_OK(pm_write_file_atomic(path, "second!", 7));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 7);
    assert_int_equal(fx_count_entries(dir), 1);

    /* Rename fails (the target is a non-empty directory): temp file removed. */
    char sub[512], inner[600];
    snprintf(sub, sizeof sub, "%s/taken", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(inner, sizeof inner, "%s/keep", sub);
    fx_write(inner, "x", 1);
    FX_ASSERT_ERR(pm_write_file_atomic(sub, "data", 4), PM_EIO, "nothing was written");
    assert_int_equal(fx_count_entries(dir), 2);
    assert_int_equal(fx_count_entries(sub), 1);

    /* Missing directory. */
    snprintf(inner, sizeof inner, "%s/nodir/out.bin", dir);
    FX_ASSERT_ERR(pm_write_file_atomic(inner, "data", 4), PM_ENOENT, "nodir");
    FX_ASSERT_ERR(pm_write_file_atomic("", "data", 4), PM_EINVAL, NULL);
    snprintf(inner, sizeof inner, "%s/", dir);
    FX_ASSERT_ERR(pm_write_file_atomic(inner, "data", 4), PM_EINVAL, NULL);

    /* A write that fails half-way (file size limit): the old content stays
     * and the temporary file is gone. */
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old;
    small.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    uint8_t big[20000];
    fx_random_bytes(big, sizeof big, 3);
    int rc = pm_write_file_atomic(path, big, sizeof big);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    if (rc != PM_EIO)
        fail_msg("write past RLIMIT_FSIZE returned %d: %s", rc, pm_error_detail());
    assert_non_null(strstr(pm_error_detail(), "nothing was written"));
    FX_ASSERT_OK(pm_read_file(path, 0, &buf, &n));
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "second!", 7);
    pm_free(buf);
    assert_int_equal(fx_count_entries(dir), 2);

    fx_rmtree(dir);
    free(dir);
}

static void test_save_and_load(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    char path[512];
    pm_image img;
    FX_ASSERT_OK(pm_image_alloc(&img, 17, 9, 4));
    for (int i = 0; i < 17 * 9 * 4; i++)
        img.data[i] = (uint8_t)(i * 13 + 5);

    snprintf(path, sizeof path, "%s/out.tiff", dir);
    FX_ASSERT_ERR(pm_image_save(path, &img, NULL), PM_EINVAL, ".png, .jpg, .jpeg or .webp");
    snprintf(path, sizeof path, "%s/out", dir);
    FX_ASSERT_ERR(pm_image_save(path, &img, NULL), PM_EINVAL, ".png, .jpg, .jpeg or .webp");
    snprintf(path, sizeof path, "%s/out.jpg", dir);
    pm_encode_opts png_opts = pm_default_encode_opts(PM_FMT_PNG);
    FX_ASSERT_ERR(pm_image_save(path, &img, &png_opts), PM_EEXTENSION, "out.jpg");
    assert_int_equal(fx_count_entries(dir), 0);

    /* PNG keeps RGBA exactly. */
    snprintf(path, sizeof path, "%s/out.png", dir);
    FX_ASSERT_OK(pm_image_save(path, &img, NULL));
    pm_image back;
    FX_ASSERT_OK(pm_image_load(path, NULL, &back));
    assert_int_equal(back.width, 17);
    assert_int_equal(back.height, 9);
    assert_int_equal(back.channels, 4);
    assert_memory_equal(back.data, img.data, 17 * 9 * 4);
    pm_image_free(&back);

    /* Lossless WebP keeps RGBA exactly; format UNKNOWN in opts = from the name. */
    snprintf(path, sizeof path, "%s/out.webp", dir);
    pm_encode_opts o = {PM_FMT_UNKNOWN, 90, 1};
    FX_ASSERT_OK(pm_image_save(path, &img, &o));
    FX_ASSERT_OK(pm_image_load(path, NULL, &back));
    assert_int_equal(back.channels, 4);
    assert_memory_equal(back.data, img.data, 17 * 9 * 4);
    pm_image_free(&back);

    /* JPEG drops alpha. */
    snprintf(path, sizeof path, "%s/out.jpeg", dir);
    FX_ASSERT_OK(pm_image_save(path, &img, NULL));
    FX_ASSERT_OK(pm_image_load(path, NULL, &back));
    assert_int_equal(back.channels, 3);
    pm_image_free(&back);
    assert_int_equal(fx_count_entries(dir), 3);

    /* An image WebP cannot hold fails before any file is created. */
    pm_image wide;
    FX_ASSERT_OK(pm_image_alloc(&wide, 16384, 1, 3));
    snprintf(path, sizeof path, "%s/wide.webp", dir);
    FX_ASSERT_ERR(pm_image_save(path, &wide, NULL), PM_EUNSUPPORTED, "16383");
    assert_int_equal(fx_count_entries(dir), 3);
    pm_image_free(&wide);

    /* Loading a JPEG saved under a .png name reports the extension. */
    char from[512];
    snprintf(from, sizeof from, "%s/out.jpeg", dir);
    snprintf(path, sizeof path, "%s/photo.png", dir);
    assert_int_equal(rename(from, path), 0);
    FX_ASSERT_ERR(pm_image_load(path, NULL, &back), PM_EEXTENSION, "rename it to");
    assert_null(back.data);

    snprintf(path, sizeof path, "%s/missing.png", dir);
    FX_ASSERT_ERR(pm_image_load(path, NULL, &back), PM_ENOENT, "missing.png");
    FX_ASSERT_ERR(pm_image_load(dir, NULL, &back), PM_EINVAL, "directory");

    pm_image_free(&img);
    fx_rmtree(dir);
    free(dir);
}

/* The file-size limit is checked with stat(): a 70 MiB sparse file is
 * rejected without reading a byte of it. */
static void test_load_checks_size_first(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/huge.png", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x89PNG\r\n\x1a\n", 8), 8);
    assert_int_equal(ftruncate(fd, 70 * 1024 * 1024), 0);
    close(fd);

    pm_mem_reset_peak();
    size_t base = pm_mem_in_use();
    pm_image img;
    FX_ASSERT_ERR(pm_image_load(path, NULL, &img), PM_ETOOBIG, NULL);
    assert_string_equal(pm_error_detail(), "file is 70.0 MiB; the limit is 64.0 MiB (--max-file-bytes)");
    assert_true(pm_mem_peak() - base < 4096);
    assert_null(img.data);

    fx_rmtree(dir);
    free(dir);
}

static void test_encode_args(void **state)
{
    (void)state;
    pm_image img;
    FX_ASSERT_OK(pm_image_alloc(&img, 4, 4, 3));
    uint8_t *buf = NULL;
    size_t n = 0;
    pm_encode_opts o = pm_default_encode_opts(PM_FMT_JPEG);
    assert_int_equal(o.quality, 92);
    assert_int_equal(o.lossless, 0);
    assert_int_equal(o.format, PM_FMT_JPEG);
    o.quality = 0;
    FX_ASSERT_ERR(pm_image_encode(&img, &o, &buf, &n), PM_EINVAL, "1..100");
    o.quality = 101;
    FX_ASSERT_ERR(pm_image_encode(&img, &o, &buf, &n), PM_EINVAL, "1..100");
    o = pm_default_encode_opts(PM_FMT_UNKNOWN);
    FX_ASSERT_ERR(pm_image_encode(&img, &o, &buf, &n), PM_EINVAL, NULL);
    pm_image bad = {4, 4, 2, img.data};
    o = pm_default_encode_opts(PM_FMT_PNG);
    FX_ASSERT_ERR(pm_image_encode(&bad, &o, &buf, &n), PM_EINVAL, NULL);
    assert_null(buf);
    pm_image_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_free),
        cmocka_unit_test(test_clone_is_deep),
        cmocka_unit_test(test_convert),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_sniff_and_names),
        cmocka_unit_test(test_limit_messages),
        cmocka_unit_test(test_not_an_image_messages),
        cmocka_unit_test(test_extension_mismatch),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_write_atomic),
        cmocka_unit_test(test_save_and_load),
        cmocka_unit_test(test_load_checks_size_first),
        cmocka_unit_test(test_encode_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
