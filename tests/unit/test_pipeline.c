/* The inpainting pipeline's strategies, driven by a recording fake model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pipeline/pipeline.h"

/* The fake engine fills each hole pixel with (w & 255, h & 255, 7) of the region
 * it was given, so the tests can tell which call filled which pixel. */
static struct {
    int calls;
    int last_w, last_h;
    long long max_pixels;
    long long last_holes; /* mask pixels the last call was given */
    int bad_input; /* set if a call broke the engine contract */
} rec;

static int fake_load(const char *path, const pm_model_opts *o, void **state)
{
    (void)path;
    (void)o;
    *state = NULL;
    return 0;
}

static void fake_unload(void *s)
{
    (void)s;
}

static int fake_inpaint(void *state, const pm_image *rgb, const pm_image *mask, pm_image *out,
                        const pm_run_ctx *ctx)
{
    (void)state;
    rec.calls++;
    rec.last_w = rgb->width;
    rec.last_h = rgb->height;
    if ((long long)rgb->width * rgb->height > rec.max_pixels)
        rec.max_pixels = (long long)rgb->width * rgb->height;
    if (rgb->channels != 3 || mask->channels != 1 || mask->width != rgb->width || mask->height != rgb->height)
        rec.bad_input = 1;
    if (ctx && ctx->progress && ctx->progress(ctx->progress_user, 1, 2))
        return PM_ECANCELLED;
    int rc = pm_image_clone(out, rgb);
    if (rc)
        return rc;
    rec.last_holes = 0;
    for (size_t i = 0; i < (size_t)rgb->width * rgb->height; i++) {
        if (mask->data[i] != 0 && mask->data[i] != 255)
            rec.bad_input = 1;
        if (mask->data[i]) {
            rec.last_holes++;
            out->data[i * 3] = (uint8_t)(rgb->width & 255);
            out->data[i * 3 + 1] = (uint8_t)(rgb->height & 255);
            out->data[i * 3 + 2] = 7;
        }
    }
    return 0;
}

static uint64_t fake_mem(const void *s, int w, int h, int input_size)
{
    (void)s;
    (void)input_size;
    return (uint64_t)w * h * 100;
}

static const pm_model_desc fake = {"fake", PM_TASK_INPAINT, 0, fake_load, fake_unload, fake_inpaint, NULL, fake_mem};

static int setup(void **st)
{
    (void)st;
    memset(&rec, 0, sizeof rec);
    return 0;
}

/* An image with a recognisable pattern. */
static void make_image(pm_image *img, int w, int h, int c)
{
    assert_int_equal(pm_image_alloc(img, w, h, c), 0);
    for (size_t i = 0; i < (size_t)w * h * c; i++)
        img->data[i] = (uint8_t)((i * 31 + 11) % 251);
}

static void fill_rect(pm_image *mask, int x0, int y0, int x1, int y1)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            mask->data[((size_t)y * mask->width + x) * mask->channels] = 255;
}

/* Outside the mask every byte equals the input's. */
static void assert_unchanged_outside(const pm_image *in, const pm_image *mask, const pm_image *out)
{
    assert_int_equal(out->channels, in->channels);
    for (size_t i = 0; i < (size_t)in->width * in->height; i++)
        if (!mask->data[i * mask->channels])
            assert_memory_equal(out->data + i * in->channels, in->data + i * in->channels, in->channels);
}

static void test_original_whole_image(void **st)
{
    (void)st;
    pm_image img, mask, out;
    make_image(&img, 300, 200, 3);
    assert_int_equal(pm_image_alloc(&mask, 300, 200, 1), 0);
    fill_rect(&mask, 10, 10, 40, 30);
    pm_inpaint_opts o = pm_inpaint_default_opts();
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, &o, &out, NULL), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.last_w, 300);
    assert_int_equal(rec.last_h, 200);
    assert_false(rec.bad_input);
    assert_unchanged_outside(&img, &mask, &out);
    const uint8_t *p = out.data + ((size_t)20 * 300 + 20) * 3;
    assert_int_equal(p[0], 300 & 255);
    assert_int_equal(p[1], 200);
    assert_int_equal(p[2], 7);
    pm_image_free(&img);
    pm_image_free(&mask);
    pm_image_free(&out);
}

/* Two small regions in a large photo: two calls, each the size of a box plus margin. */
static void test_crop_scales_with_mask(void **st)
{
    (void)st;
    pm_image img, mask, out;
    make_image(&img, 2560, 1920, 3);
    assert_int_equal(pm_image_alloc(&mask, 2560, 1920, 1), 0);
    fill_rect(&mask, 500, 400, 540, 430);    /* 40x30 */
    fill_rect(&mask, 2000, 1500, 2010, 1560); /* 10x60 */
    pm_inpaint_opts o = pm_inpaint_default_opts(); /* auto: crop above 800 px */
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, &o, &out, NULL), 0);
    assert_int_equal(rec.calls, 2);
    assert_false(rec.bad_input);
    /* box + 128 px on each side */
    assert_true(rec.max_pixels <= (long long)(40 + 256) * (60 + 256));
    assert_unchanged_outside(&img, &mask, &out);
    const uint8_t *a = out.data + ((size_t)410 * 2560 + 510) * 3;
    assert_int_equal(a[0], (40 + 256) & 255);
    assert_int_equal(a[1], (30 + 256) & 255);
    const uint8_t *b = out.data + ((size_t)1550 * 2560 + 2005) * 3;
    assert_int_equal(b[0], (10 + 256) & 255);
    assert_int_equal(b[1], (60 + 256) & 255);
    /* The predicted memory follows the regions, not the photo. */
    uint64_t crop_est = pm_inpaint_mem_estimate(&fake, NULL, &img, &mask, &o);
    o.strategy = PM_HD_ORIGINAL;
    uint64_t whole_est = pm_inpaint_mem_estimate(&fake, NULL, &img, &mask, &o);
    assert_true(crop_est * 4 < whole_est);
    pm_image_free(&img);
    pm_image_free(&mask);
    pm_image_free(&out);
}

/* A region against the border is clamped, not shifted. */
static void test_crop_border(void **st)
{
    (void)st;
    pm_image img, mask, out;
    make_image(&img, 1000, 900, 3);
    assert_int_equal(pm_image_alloc(&mask, 1000, 900, 1), 0);
    fill_rect(&mask, 0, 880, 20, 900);
    pm_inpaint_opts o = pm_inpaint_default_opts();
    o.strategy = PM_HD_CROP;
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, &o, &out, NULL), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.last_w, 20 + 128);
    assert_int_equal(rec.last_h, 20 + 128);
    assert_unchanged_outside(&img, &mask, &out);
    pm_image_free(&img);
    pm_image_free(&mask);
    pm_image_free(&out);
}

static void test_resize(void **st)
{
    (void)st;
    pm_image img, mask, out;
    make_image(&img, 2000, 1000, 3);
    assert_int_equal(pm_image_alloc(&mask, 2000, 1000, 1), 0);
    fill_rect(&mask, 100, 100, 300, 200);
    fill_rect(&mask, 1500, 800, 1501, 801); /* one pixel: must survive the shrink */
    pm_inpaint_opts o = pm_inpaint_default_opts();
    o.strategy = PM_HD_RESIZE;
    o.resize_limit = 500;
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, &o, &out, NULL), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.last_w, 500);
    assert_int_equal(rec.last_h, 250);
    assert_unchanged_outside(&img, &mask, &out);
    const uint8_t *p = out.data + ((size_t)150 * 2000 + 200) * 3;
    assert_int_equal(p[0], 500 & 255);
    assert_int_equal(p[1], 250);
    /* The shrunk mask keeps the lone pixel: 50x25 for the box plus 1. */
    assert_int_equal(rec.last_holes, 50 * 25 + 1);
    pm_image_free(&img);
    pm_image_free(&mask);
    pm_image_free(&out);
}

static void test_auto_small_is_original(void **st)
{
    (void)st;
    pm_image img, mask, out;
    make_image(&img, 800, 600, 3);
    assert_int_equal(pm_image_alloc(&mask, 800, 600, 1), 0);
    fill_rect(&mask, 10, 10, 12, 12);
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, NULL, &out, NULL), 0);
    assert_int_equal(rec.last_w, 800);
    assert_int_equal(rec.last_h, 600);
    pm_image_free(&img);
    pm_image_free(&mask);
    pm_image_free(&out);
}

static void test_mismatch_and_empty(void **st)
{
    (void)st;
    pm_image img, mask, out;
    make_image(&img, 64, 48, 3);
    assert_int_equal(pm_image_alloc(&mask, 48, 64, 1), 0);
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, NULL, &out, NULL), PM_EMISMATCH);
    assert_non_null(strstr(pm_error_detail(), "48x64"));
    assert_null(out.data);
    pm_image_free(&mask);
    assert_int_equal(pm_image_alloc(&mask, 64, 48, 1), 0); /* all zero: nothing to do */
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, NULL, &out, NULL), 0);
    assert_int_equal(rec.calls, 0);
    assert_memory_equal(out.data, img.data, 64 * 48 * 3);
    pm_image_free(&img);
    pm_image_free(&mask);
    pm_image_free(&out);
}

/* Gray stays gray, RGBA keeps its alpha; an RGB mask counts by its first channel. */
static void test_channels_kept(void **st)
{
    (void)st;
    for (int c = 1; c <= 4; c += (c == 1 ? 2 : 1)) {
        pm_image img, mask, out;
        make_image(&img, 90, 70, c);
        assert_int_equal(pm_image_alloc(&mask, 90, 70, 3), 0);
        fill_rect(&mask, 30, 30, 50, 40);
        assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, NULL, &out, NULL), 0);
        assert_int_equal(out.channels, c);
        assert_unchanged_outside(&img, &mask, &out);
        size_t i = (size_t)35 * 90 + 40;
        if (c == 4)
            assert_int_equal(out.data[i * 4 + 3], img.data[i * 4 + 3]);
        if (c == 1)
            assert_int_equal(out.data[i], (299 * 90 + 587 * 70 + 114 * 7 + 500) / 1000);
        pm_image_free(&img);
        pm_image_free(&mask);
        pm_image_free(&out);
    }
}

static int cancel_at_second(void *user, int value, int max)
{
    (void)value;
    (void)max;
    int *n = user;
    return ++*n >= 2;
}

/* The pixels admission applies a model's memory law to. */
static void test_work_pixels(void **st)
{
    (void)st;
    pm_image mask = {0};
    assert_int_equal(pm_image_alloc(&mask, 2560, 1920, 1), 0);
    memset(mask.data, 0, (size_t)2560 * 1920);
    pm_inpaint_opts o = pm_inpaint_default_opts();
    assert_int_equal(pm_inpaint_work_pixels(&mask, &o), 0); /* nothing masked */
    for (int y = 900; y < 930; y++)
        memset(mask.data + (size_t)y * 2560 + 1500, 255, 40);
    /* auto = crop here: the box 40x30 grown by the 128 px margin on every side */
    assert_int_equal(pm_inpaint_work_pixels(&mask, &o), (uint64_t)(40 + 256) * (30 + 256));
    /* a second, larger region: the largest box counts, not the sum */
    for (int y = 100; y < 400; y++)
        memset(mask.data + (size_t)y * 2560 + 200, 255, 500);
    assert_int_equal(pm_inpaint_work_pixels(&mask, &o), (uint64_t)(500 + 256) * (400 + 128)); /* clamped at y = 0 */
    o.strategy = PM_HD_ORIGINAL;
    assert_int_equal(pm_inpaint_work_pixels(&mask, &o), (uint64_t)2560 * 1920);
    o.strategy = PM_HD_RESIZE;
    assert_int_equal(pm_inpaint_work_pixels(&mask, &o), (uint64_t)1280 * 960);
    pm_image_free(&mask);
}

static void test_cancel(void **st)
{
    (void)st;
    pm_image img, mask, out;
    make_image(&img, 1200, 900, 3);
    assert_int_equal(pm_image_alloc(&mask, 1200, 900, 1), 0);
    fill_rect(&mask, 10, 10, 20, 20);
    fill_rect(&mask, 900, 700, 910, 710);
    int n = 0;
    pm_run_ctx ctx = {cancel_at_second, &n};
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, NULL, &out, &ctx), PM_ECANCELLED);
    assert_null(out.data);
    assert_int_equal(rec.calls, 2);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* mask_dilate reaches the engine: grown by 2, a 30x20 box becomes the box
 * plus a band of 2 with rounded corners; shrunk to nothing, no call at all;
 * the crop regions and the work pixels follow the grown mask. */
static void test_mask_dilate(void **st)
{
    (void)st;
    pm_image img, mask, out;
    make_image(&img, 300, 200, 3);
    assert_int_equal(pm_image_alloc(&mask, 300, 200, 3), 0); /* an RGB mask, first channel counts */
    fill_rect(&mask, 100, 100, 130, 120);
    pm_inpaint_opts o = pm_inpaint_default_opts();
    o.strategy = PM_HD_ORIGINAL;
    o.mask_dilate = 2;
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, &o, &out, NULL), 0);
    assert_false(rec.bad_input);
    /* 34x24 minus the corners a disc of 2 leaves out: 3 pixels at each of 4 corners. */
    assert_int_equal(rec.last_holes, 34 * 24 - 4 * 3);
    assert_int_equal(out.data[((size_t)99 * 300 + 99) * 3 + 2], 7); /* (1, 1) diagonally: filled */
    assert_int_equal(out.data[((size_t)98 * 300 + 98) * 3 + 2], img.data[((size_t)98 * 300 + 98) * 3 + 2]);
    pm_image_free(&out);
    o.strategy = PM_HD_CROP;
    o.crop_margin = 10;
    assert_int_equal(pm_inpaint_work_pixels(&mask, &o), (uint64_t)(34 + 20) * (24 + 20));
    o.mask_dilate = -10; /* a 30x20 box shrunk by 10: nothing left */
    assert_int_equal(pm_inpaint_work_pixels(&mask, &o), 0);
    rec.calls = 0;
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, &o, &out, NULL), 0);
    assert_int_equal(rec.calls, 0);
    assert_memory_equal(out.data, img.data, 300 * 200 * 3);
    pm_image_free(&out);
    o.mask_dilate = 999;
    assert_int_equal(pm_inpaint_run(&fake, NULL, &img, &mask, &o, &out, NULL), PM_EINVAL);
    assert_null(out.data);
    pm_image_free(&img);
    pm_image_free(&mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_original_whole_image, setup),
        cmocka_unit_test_setup(test_crop_scales_with_mask, setup),
        cmocka_unit_test_setup(test_crop_border, setup),
        cmocka_unit_test_setup(test_resize, setup),
        cmocka_unit_test_setup(test_auto_small_is_original, setup),
        cmocka_unit_test_setup(test_mismatch_and_empty, setup),
        cmocka_unit_test_setup(test_channels_kept, setup),
        cmocka_unit_test_setup(test_cancel, setup),
        cmocka_unit_test(test_work_pixels),
        cmocka_unit_test_setup(test_mask_dilate, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
