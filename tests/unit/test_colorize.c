/* The colorize pipeline: options, OpenCV's linear resize (against cv2 at
 * test time), and pm_colorize_run on a small random DDColor checkpoint made
 * at test time by tests/golden_ddcolor/make_test_ckpt.py. The agreement with
 * DDColor's reference pipeline is tests/golden_ddcolor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/python.h"
#include "pipeline/colorize.h"
#include "pipeline/lab.h"
#include "nn/nn.h"

static char ckpt[256], resize_bin[256];
static pm_ddcolor *model;

static int run_py(const char *script, const char *out)
{
    const char *src = getenv("PM_SOURCE_DIR");
    if (!src)
        src = PM_SOURCE_DIR;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/golden_ddcolor/%s %s", src, script, out);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_colorize: '%s' failed: needs /usr/bin/python3 with torch, numpy and cv2\n", cmd);
        return -1;
    }
    return 0;
}

static int setup(void **st)
{
    (void)st;
    snprintf(ckpt, sizeof ckpt, "/tmp/pm_test_colorize_%d.pth", (int)getpid());
    snprintf(resize_bin, sizeof resize_bin, "/tmp/pm_test_resize_%d.bin", (int)getpid());
    if (run_py("make_test_ckpt.py", ckpt) || run_py("cv2_resize_samples.py", resize_bin))
        return -1;
    pm_model_opts o = {2, PM_PREC_FP32, 0};
    if (pm_ddcolor_load(ckpt, &o, &model)) {
        fprintf(stderr, "test_colorize: cannot load %s: %s\n", ckpt, pm_error_detail());
        return -1;
    }
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    pm_ddcolor_free(model);
    unlink(ckpt);
    unlink(resize_bin);
    return 0;
}

static void test_option_parsing(void **st)
{
    (void)st;
    assert_int_equal(pm_upsample_parse("nearest"), PM_UPSAMPLE_NEAREST);
    assert_int_equal(pm_upsample_parse("bilinear"), PM_UPSAMPLE_BILINEAR);
    assert_int_equal(pm_upsample_parse("cubic"), -1);
    assert_string_equal(pm_upsample_name(PM_UPSAMPLE_BILINEAR), "bilinear");
    pm_colorize_opts d = pm_colorize_default_opts();
    assert_int_equal(d.input_size, 512);
    assert_int_equal(d.upsample, PM_UPSAMPLE_NEAREST);
}

static void test_resize_matches_opencv(void **st)
{
    (void)st;
    FILE *f = fopen(resize_bin, "rb");
    assert_non_null(f);
    int32_t n;
    assert_int_equal(fread(&n, 4, 1, f), 1);
    for (int c = 0; c < n; c++) {
        int32_t h[5];
        assert_int_equal(fread(h, 4, 5, f), 5);
        size_t ns = (size_t)h[0] * h[1] * h[2], nd = (size_t)h[3] * h[4] * h[2];
        float *src = malloc(ns * 4), *want = malloc(nd * 4), *got = malloc(nd * 4);
        assert_true(src && want && got);
        assert_int_equal(fread(src, 4, ns, f), ns);
        assert_int_equal(fread(want, 4, nd, f), nd);
        assert_int_equal(pm_resize_linear_f32(src, h[0], h[1], h[2], got, h[3], h[4]), 0);
        double worst = 0;
        for (size_t i = 0; i < nd; i++)
            worst = fmax(worst, fabs((double)got[i] - want[i]));
        fprintf(stderr, "resize %dx%dx%d -> %dx%d: max |diff| %.2e\n", h[0], h[1], h[2], h[3], h[4], worst);
        assert_true(worst <= 2e-6);
        free(src);
        free(want);
        free(got);
    }
    fclose(f);
}

static void fill(pm_image *img, int seed)
{
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < img->channels; c++)
                img->data[((size_t)y * img->width + x) * img->channels + c] =
                    (uint8_t)(128 + 100 * sin(0.07 * x + seed + c) * cos(0.05 * y - c) + (c == 3 ? x : 0));
}

static void test_channels_alpha_and_lightness(void **st)
{
    (void)st;
    const int chans[] = {1, 3, 4};
    for (int k = 0; k < 3; k++) {
        pm_image in, out;
        assert_int_equal(pm_image_alloc(&in, 71, 45, chans[k]), 0);
        fill(&in, k);
        pm_colorize_opts o = pm_colorize_default_opts();
        o.input_size = 64;
        assert_int_equal(pm_colorize_run(&pm_model_ddcolor, model, &in, &o, &out, NULL), 0);
        assert_int_equal(out.width, 71);
        assert_int_equal(out.height, 45);
        assert_int_equal(out.channels, chans[k] == 4 ? 4 : 3);
        /* The result keeps the input's lightness: L of output vs input. */
        int coloured = 0;
        double dl = 0;
        for (int i = 0; i < 71 * 45; i++) {
            float rin[3], rout[3], lin, lout;
            const uint8_t *p = in.data + (size_t)i * chans[k], *q = out.data + (size_t)i * out.channels;
            for (int c = 0; c < 3; c++) {
                rin[c] = (float)(p[chans[k] == 1 ? 0 : c] / 255.0);
                rout[c] = (float)(q[c] / 255.0);
            }
            pm_rgb_to_l_f32(rin, 3, &lin, 1);
            pm_rgb_to_l_f32(rout, 3, &lout, 1);
            dl += fabs(lin - lout);
            coloured += q[0] != q[1] || q[1] != q[2];
            if (chans[k] == 4)
                assert_int_equal(q[3], p[3]);
        }
        dl /= 71 * 45;
        fprintf(stderr, "%d channel(s): mean |dL| %.3f, %d of %d pixels coloured\n", chans[k], dl, coloured, 71 * 45);
        assert_true(dl < 1.0);
        assert_true(coloured > 71 * 45 / 2);
        pm_image_free(&out);
        pm_image_free(&in);
    }
}

static int cancel_at_2(void *user, int value, int max)
{
    (void)max;
    *(int *)user = value;
    return value >= 2;
}

static void test_cancel_and_errors(void **st)
{
    (void)st;
    pm_image in, out;
    assert_int_equal(pm_image_alloc(&in, 40, 30, 3), 0);
    fill(&in, 7);
    pm_colorize_opts o = pm_colorize_default_opts();
    o.input_size = 64;
    int seen = 0;
    pm_run_ctx ctx = {cancel_at_2, &seen};
    assert_int_equal(pm_colorize_run(&pm_model_ddcolor, model, &in, &o, &out, &ctx), PM_ECANCELLED);
    assert_int_equal(seen, 2);
    assert_null(out.data);
    o.input_size = 100;
    assert_int_equal(pm_colorize_run(&pm_model_ddcolor, model, &in, &o, &out, NULL), PM_EINVAL);
    assert_non_null(strstr(pm_error_detail(), "multiple of 32"));
    o.input_size = 64;
    assert_int_equal(pm_colorize_run(NULL, NULL, &in, &o, &out, NULL), PM_EINVAL);
    pm_image two = {40, 30, 2, in.data};
    assert_int_equal(pm_colorize_run(&pm_model_ddcolor, model, &two, &o, &out, NULL), PM_EINVAL);
    assert_non_null(strstr(pm_error_detail(), "2 channels"));
    /* The same input twice gives the same output. */
    pm_image a, b;
    assert_int_equal(pm_colorize_run(&pm_model_ddcolor, model, &in, &o, &a, NULL), 0);
    assert_int_equal(pm_colorize_run(&pm_model_ddcolor, model, &in, &o, &b, NULL), 0);
    assert_memory_equal(a.data, b.data, (size_t)40 * 30 * 3);
    pm_image_free(&a);
    pm_image_free(&b);
    pm_image_free(&in);
}

static void test_memory_estimate(void **st)
{
    (void)st;
    uint64_t small = pm_model_ddcolor.mem_estimate(model, 100, 100, 64);
    uint64_t big = pm_model_ddcolor.mem_estimate(model, 4000, 3000, 64);
    assert_true(big > small);
    assert_true(big - small >= (uint64_t)4000 * 3000 * 3); /* at least the output image */
    assert_true(pm_model_ddcolor.mem_estimate(model, 100, 100, 128) > small);
    /* The estimate covers what a run allocates through pm_malloc. */
    pm_image in, out;
    assert_int_equal(pm_image_alloc(&in, 300, 200, 3), 0);
    fill(&in, 3);
    pm_colorize_opts o = pm_colorize_default_opts();
    o.input_size = 96;
    size_t before = pm_mem_in_use();
    pm_mem_reset_peak();
    assert_int_equal(pm_colorize_run(&pm_model_ddcolor, model, &in, &o, &out, NULL), 0);
    size_t used = pm_mem_peak() - before;
    fprintf(stderr, "run heap peak %zu bytes, estimate %llu\n", used,
            (unsigned long long)pm_model_ddcolor.mem_estimate(model, 300, 200, 96));
    assert_true(pm_model_ddcolor.mem_estimate(model, 300, 200, 96) >= used);
    assert_true(pm_ddcolor_workspace_bytes(model, 96) > 0);
    pm_image_free(&out);
    pm_image_free(&in);
}

static void test_registry_entry(void **st)
{
    (void)st;
    assert_string_equal(pm_model_ddcolor.name, "ddcolor");
    assert_int_equal(pm_model_ddcolor.task, PM_TASK_COLORIZE);
    assert_int_equal(pm_model_ddcolor.needs_file, 1);
    assert_null(pm_model_ddcolor.inpaint);
    void *state = NULL;
    pm_model_opts o = {1, PM_PREC_FP32, 0};
    assert_int_equal(pm_model_ddcolor.load(ckpt, &o, &state), 0);
    pm_image in, out;
    assert_int_equal(pm_image_alloc(&in, 33, 21, 1), 0);
    fill(&in, 1);
    pm_colorize_opts co = pm_colorize_default_opts();
    co.input_size = 64;
    assert_int_equal(pm_colorize_run(&pm_model_ddcolor, state, &in, &co, &out, NULL), 0);
    assert_int_equal(out.channels, 3);
    assert_true(pm_model_ddcolor.mem_estimate(state, 33, 21, 0) > 0);
    pm_image_free(&out);
    pm_image_free(&in);
    pm_model_ddcolor.unload(state);
    assert_int_equal(pm_model_ddcolor.load("/nonexistent/ddcolor.pth", &o, &state), PM_ENOENT);
    assert_null(state);
    /* bf16: loads and colorizes where the CPU runs bf16 natively, refused elsewhere */
    o.precision = PM_PREC_BF16;
    if (!pm_nn_cpu_has_bf16()) {
        assert_int_equal(pm_model_ddcolor.load(ckpt, &o, &state), PM_EUNSUPPORTED);
        return;
    }
    assert_int_equal(pm_model_ddcolor.load(ckpt, &o, &state), 0);
    assert_int_equal(pm_image_alloc(&in, 33, 21, 1), 0);
    fill(&in, 1);
    assert_int_equal(pm_colorize_run(&pm_model_ddcolor, state, &in, &co, &out, NULL), 0);
    assert_int_equal(out.width, 33);
    pm_image_free(&out);
    pm_image_free(&in);
    pm_model_ddcolor.unload(state);
}

int main(void)
{
    fx_require_python("test_colorize", "torch, numpy, cv2");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_parsing),
        cmocka_unit_test(test_resize_matches_opencv),
        cmocka_unit_test(test_channels_alpha_and_lightness),
        cmocka_unit_test(test_cancel_and_errors),
        cmocka_unit_test(test_memory_estimate),
        cmocka_unit_test(test_registry_entry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
