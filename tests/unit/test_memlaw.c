/* Memory laws: seed from an engine's estimate, least-squares fit with the
 * seed margin and no measurement above the law, refinement by measured
 * peaks, the largest fitting size, and the file round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixmend.h"
#include "support/tmpfiles.h"
#include "sched/memlaw.h"

/* An engine whose estimate is 4 MiB + 40 bytes a pixel. */
static uint64_t linear_estimate(const void *state, int w, int h, int input_size)
{
    (void)state;
    (void)input_size;
    return (4u << 20) + 40ull * (uint64_t)w * (uint64_t)h;
}

static const pm_model_desc fake = {.name = "fake", .task = PM_TASK_INPAINT, .mem_estimate = linear_estimate};

static void test_seed_from_estimate(void **st)
{
    (void)st;
    pm_memlaw l;
    pm_memlaw_seed(&l, &fake, NULL);
    assert_string_equal(l.model, "fake");
    assert_string_equal(l.source, "seed");
    assert_true(fabs(l.a - (4u << 20)) < 1);
    assert_true(fabs(l.b - 40) < 1e-9);
    assert_int_equal(pm_memlaw_predict(&l, 1000000), (4u << 20) + 40000000u);
}

static void test_fit_recovers_a_line(void **st)
{
    (void)st;
    pm_memlaw l;
    pm_memlaw_seed(&l, &fake, NULL);
    /* Measured: 3 MiB + 36 bytes a pixel (within the 25 % margin of the seed). */
    double px[3] = {65536, 262144, 1048576}, peak[3];
    for (int i = 0; i < 3; i++)
        peak[i] = (3u << 20) + 36 * px[i];
    assert_int_equal(pm_memlaw_fit(&l, px, peak, 3), 0);
    assert_string_equal(l.source, "calibrate");
    assert_true(fabs(l.b - 36) < 1e-6);
    assert_true(fabs(l.a - (3u << 20)) < 2);
    assert_int_equal(l.npairs, 3);
    for (int i = 0; i < 3; i++) {
        double pred = (double)pm_memlaw_predict(&l, (uint64_t)px[i]);
        assert_true(pred >= peak[i]);
        assert_true((pred - peak[i]) / peak[i] < 0.001);
    }
}

static void test_fit_covers_every_measurement(void **st)
{
    (void)st;
    pm_memlaw l;
    pm_memlaw_seed(&l, &fake, NULL);
    double px[4] = {65536, 262144, 1048576, 4194304};
    double peak[4] = {7e6, 14.5e6, 48e6, 175e6}; /* noisy, roughly 4.6 MB + 40.6 B/px */
    assert_int_equal(pm_memlaw_fit(&l, px, peak, 4), 0);
    for (int i = 0; i < 4; i++)
        assert_true((double)pm_memlaw_predict(&l, (uint64_t)px[i]) >= peak[i]);
}

static void test_fit_keeps_the_seed_margin(void **st)
{
    (void)st;
    pm_memlaw l;
    pm_memlaw_seed(&l, &fake, NULL);
    /* Measurements far below the seed (a broken run): the law stays within 25 %. */
    double px[2] = {262144, 1048576}, peak[2] = {1e6, 2e6};
    assert_int_equal(pm_memlaw_fit(&l, px, peak, 2), 0);
    assert_true(l.b >= 0.75 * 40 - 1e-9);
    for (uint64_t p = 65536; p <= (64u << 20); p *= 4)
        assert_true((double)pm_memlaw_predict(&l, p) >= 0.75 * (double)linear_estimate(NULL, (int)p, 1, 0) - 1);
    double bad[1] = {0};
    assert_int_equal(pm_memlaw_fit(&l, px, bad, 1), PM_EINVAL);
}

static void test_observe_raises_only(void **st)
{
    (void)st;
    pm_memlaw l;
    pm_memlaw_seed(&l, &fake, NULL);
    uint64_t before = pm_memlaw_predict(&l, 1000000);
    assert_int_equal(pm_memlaw_observe(&l, 1000000, before / 2), 0); /* below: unchanged */
    assert_int_equal(pm_memlaw_predict(&l, 1000000), before);
    assert_int_equal(pm_memlaw_observe(&l, 1000000, before * 3 / 2), 1);
    assert_true(pm_memlaw_predict(&l, 1000000) >= before * 3 / 2);
    assert_true(fabs(l.max_ratio - 1.5) < 0.01);
    assert_string_equal(l.source, "measured");
}

static void test_largest_fitting_size(void **st)
{
    (void)st;
    pm_memlaw l = {.a = 100e6, .b = 400};
    /* 6000x4000 needs 100 MB + 9.6 GB; a 2 GiB budget fits (2147483648 - 1e8) / 400 pixels. */
    uint64_t budget = 2ull << 30;
    uint64_t maxpx = pm_memlaw_max_pixels(&l, budget);
    assert_int_equal(maxpx, (uint64_t)floor((2147483648.0 - 100e6) / 400));
    int w, h;
    pm_memlaw_fit_size(&l, budget, 6000, 4000, &w, &h);
    assert_true((uint64_t)w * (uint64_t)h <= maxpx);
    assert_true(pm_memlaw_predict(&l, (uint64_t)w * (uint64_t)h) <= budget);
    assert_true(abs(w * 2 - h * 3) <= 3); /* the aspect kept */
    assert_true((uint64_t)(w + 2) * (uint64_t)(h + 2) > maxpx); /* and nearly the largest */
    pm_memlaw_fit_size(&l, 50e6, 6000, 4000, &w, &h); /* the constant alone exceeds it */
    assert_int_equal(w, 0);
    assert_int_equal(h, 0);
}

static void test_save_and_load(void **st)
{
    (void)st;
    char *dir = fx_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/memlaw.json", dir);
    pm_memlaw laws[2];
    pm_memlaw_seed(&laws[0], &fake, NULL);
    double px[2] = {65536, 1048576}, peak[2] = {7e6, 46e6};
    assert_int_equal(pm_memlaw_fit(&laws[0], px, peak, 2), 0);
    laws[1] = (pm_memlaw){.model = "other", .a = 5e6, .b = 12.5, .source = "measured", .max_ratio = 1.25};
    assert_int_equal(pm_memlaw_save(path, laws, 2), 0);
    pm_memlaw back[4];
    int n;
    assert_int_equal(pm_memlaw_load(path, back, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(back[0].model, "fake");
    assert_true(fabs(back[0].a - laws[0].a) < 1);
    assert_true(fabs(back[0].b - laws[0].b) < 1e-5);
    assert_string_equal(back[0].source, "calibrate");
    assert_int_equal(back[0].npairs, 2);
    assert_true(fabs(back[0].peak[1] - 46e6) < 1);
    assert_string_equal(back[1].model, "other");
    assert_true(fabs(back[1].max_ratio - 1.25) < 1e-6);
    /* A damaged file is refused with its line number. */
    FILE *f = fopen(path, "w");
    fputs("{\"models\": [\n  {\"model\": \"fake\", \"a\": \"x\"}\n]}\n", f);
    fclose(f);
    assert_int_equal(pm_memlaw_load(path, back, 4, &n), PM_ECORRUPT);
    assert_non_null(strstr(pm_error_detail(), "line 2"));
    unlink(path);
    assert_int_equal(pm_memlaw_load(path, back, 4, &n), PM_ENOENT);
    fx_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_from_estimate),      cmocka_unit_test(test_fit_recovers_a_line),
        cmocka_unit_test(test_fit_covers_every_measurement), cmocka_unit_test(test_fit_keeps_the_seed_margin),
        cmocka_unit_test(test_observe_raises_only),      cmocka_unit_test(test_largest_fitting_size),
        cmocka_unit_test(test_save_and_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
