/* The float sRGB <-> Lab conversions against OpenCV (cv2 4.6), whose values
 * are computed at test time by tests/golden_ddcolor/cv2_lab_samples.py. */
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
#include "pipeline/lab.h"

typedef struct samples {
    int n_fwd, n_inv;
    float *fwd; /* n_fwd x (r, g, b, L, a, b) */
    float *inv; /* n_inv x (L, a, b, r, g, b, r8, g8, b8) */
} samples;

static samples S;

static int read_samples(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int32_t sections = 0;
    int ok = fread(&sections, 4, 1, f) == 1 && sections == 2;
    ok = ok && fread(&S.n_fwd, 4, 1, f) == 1 && S.n_fwd > 0;
    if (ok) {
        S.fwd = malloc((size_t)S.n_fwd * 6 * sizeof(float));
        ok = S.fwd && fread(S.fwd, sizeof(float) * 6, (size_t)S.n_fwd, f) == (size_t)S.n_fwd;
    }
    ok = ok && fread(&S.n_inv, 4, 1, f) == 1 && S.n_inv > 0;
    if (ok) {
        S.inv = malloc((size_t)S.n_inv * 9 * sizeof(float));
        ok = S.inv && fread(S.inv, sizeof(float) * 9, (size_t)S.n_inv, f) == (size_t)S.n_inv;
    }
    fclose(f);
    return ok ? 0 : -1;
}

static int setup(void **st)
{
    (void)st;
    const char *src = getenv("PM_SOURCE_DIR");
    if (!src)
        src = PM_SOURCE_DIR;
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "/tmp/pm_test_lab_%d.bin", (int)getpid());
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/golden_ddcolor/cv2_lab_samples.py %s", src, path);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_lab: '%s' failed: these tests need /usr/bin/python3 with cv2 and numpy\n", cmd);
        return -1;
    }
    int rc = read_samples(path);
    unlink(path);
    if (rc)
        fprintf(stderr, "test_lab: cannot read the samples written by %s\n", cmd);
    return rc;
}

static int teardown(void **st)
{
    (void)st;
    free(S.fwd);
    free(S.inv);
    return 0;
}

/* The first 33^3 samples are OpenCV's own table entries: they must be equal. */
static void test_table_equals_opencv(void **st)
{
    (void)st;
    int n = 33 * 33 * 33, bad = 0;
    float *lab = malloc((size_t)n * 3 * sizeof(float));
    assert_non_null(lab);
    float *rgb = malloc((size_t)n * 3 * sizeof(float));
    assert_non_null(rgb);
    for (int i = 0; i < n; i++)
        memcpy(rgb + i * 3, S.fwd + i * 6, 3 * sizeof(float));
    pm_rgb_to_lab_f32(rgb, 3, lab, 3, (size_t)n);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            if (lab[i * 3 + c] != S.fwd[i * 6 + 3 + c]) {
                if (bad++ < 5)
                    fprintf(stderr, "grid rgb (%g,%g,%g) ch %d: ours %.7g, cv2 %.7g\n", rgb[i * 3],
                            rgb[i * 3 + 1], rgb[i * 3 + 2], c, lab[i * 3 + c], S.fwd[i * 6 + 3 + c]);
            }
    free(rgb);
    free(lab);
    assert_int_equal(bad, 0);
}

static void test_rgb_to_lab_matches_opencv(void **st)
{
    (void)st;
    double worst[3] = {0, 0, 0};
    float *lab = malloc((size_t)S.n_fwd * 3 * sizeof(float));
    float *l = malloc((size_t)S.n_fwd * sizeof(float));
    assert_non_null(lab);
    assert_non_null(l);
    /* Interleaved input with a step of 6 floats exercises in_step. */
    pm_rgb_to_lab_f32(S.fwd, 6, lab, 3, (size_t)S.n_fwd);
    pm_rgb_to_l_f32(S.fwd, 6, l, (size_t)S.n_fwd);
    for (int i = 0; i < S.n_fwd; i++) {
        for (int c = 0; c < 3; c++) {
            double d = fabs((double)lab[i * 3 + c] - S.fwd[i * 6 + 3 + c]);
            if (d > worst[c])
                worst[c] = d;
        }
        assert_true(l[i] == lab[i * 3]);
    }
    fprintf(stderr, "rgb->lab over %d samples: max |diff| L %.3g a %.3g b %.3g\n", S.n_fwd, worst[0],
            worst[1], worst[2]);
    free(l);
    free(lab);
    for (int c = 0; c < 3; c++)
        assert_true(worst[c] <= 1e-4);
}

static void test_lab_to_rgb_matches_opencv(void **st)
{
    (void)st;
    double worst = 0;
    int off8 = 0, off8_more = 0;
    float *rgb = malloc((size_t)S.n_inv * 4 * sizeof(float));
    assert_non_null(rgb);
    /* Separate L, a, b pointers into the interleaved record (step 9), output step 4. */
    pm_lab_to_rgb_f32(S.inv, S.inv + 1, S.inv + 2, 9, rgb, 4, (size_t)S.n_inv);
    for (int i = 0; i < S.n_inv; i++)
        for (int c = 0; c < 3; c++) {
            float v = rgb[i * 4 + c];
            double d = fabs((double)v - S.inv[i * 9 + 3 + c]);
            if (d > worst)
                worst = d;
            int ours = (int)rintf(v * 255.0f);
            int theirs = (int)S.inv[i * 9 + 6 + c];
            if (ours != theirs)
                off8++;
            if (abs(ours - theirs) > 1)
                off8_more++;
        }
    fprintf(stderr, "lab->rgb over %d samples: max |diff| %.3g, 8-bit values off by 1: %d, by more: %d\n",
            S.n_inv, worst, off8, off8_more);
    free(rgb);
    assert_true(worst <= 1e-5);
    assert_int_equal(off8_more, 0);
    assert_true(off8 <= S.n_inv * 3 / 1000); /* at most 0.1 % of values, each by 1 */
}

int main(void)
{
    fx_require_python("test_lab", "numpy, cv2");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_equals_opencv),
        cmocka_unit_test(test_rgb_to_lab_matches_opencv),
        cmocka_unit_test(test_lab_to_rgb_matches_opencv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
