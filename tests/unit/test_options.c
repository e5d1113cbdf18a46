/* The one table of numeric job options (sched/options.h) and the one table
 * of image formats (format.c): what they accept, what they refuse, and the
 * sentences the HTTP form and the CLI build from them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pipeline/colorize.h"
#include "pipeline/mask.h"
#include "sched/options.h"
#include "sched/sched.h"

static void test_input_size_range_step_and_presets(void **st)
{
    (void)st;
    const pm_option_range *o = pm_option_find("input_size");
    assert_non_null(o);
    assert_int_equal(o->min, PM_COLORIZE_SIZE_MIN);
    assert_int_equal(o->max, PM_COLORIZE_SIZE_MAX);
    assert_int_equal(o->step, PM_COLORIZE_SIZE_STEP);
    assert_int_equal(o->dflt, PM_COLORIZE_SIZE_DEFAULT);
    int v = 0;
    const char *good[] = {"64", "96", "512", "2048"};
    const int want[] = {64, 96, 512, 2048};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(pm_option_parse(o, good[i], &v), 0);
        assert_int_equal(v, want[i]);
    }
    assert_int_equal(pm_option_parse(o, "portrait", &v), 0);
    assert_int_equal(v, PM_COLORIZE_SIZE_PORTRAIT);
    assert_int_equal(pm_option_parse(o, "building", &v), 0);
    assert_int_equal(v, PM_COLORIZE_SIZE_BUILDING);
    v = -7;
    const char *bad[] = {"500", "0", "32", "-512", "abc", "512x", "", "4096", "2080", "Portrait", " 512"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pm_option_parse(o, bad[i], &v), PM_EINVAL);
        assert_int_equal(v, -7); /* untouched on refusal */
    }
    char what[200];
    pm_option_describe(o, what, sizeof what);
    assert_string_equal(what, "a multiple of 32 from 64 to 2048, or portrait (512) or building (1024)");
}

static void test_other_options(void **st)
{
    (void)st;
    char what[200];
    const pm_option_range *p = pm_option_find("priority");
    assert_non_null(p);
    assert_int_equal(p->dflt, PM_PRIORITY_DEFAULT);
    pm_option_describe(p, what, sizeof what);
    assert_string_equal(what, "a whole number from 0 to 9 (9 runs first)");
    const pm_option_range *d = pm_option_find("mask_dilate");
    assert_non_null(d);
    int v;
    assert_int_equal(pm_option_parse(d, "-256", &v), 0);
    assert_int_equal(v, -PM_MASK_DILATE_MAX);
    assert_int_equal(pm_option_parse(d, "257", &v), PM_EINVAL);
    pm_option_describe(d, what, sizeof what);
    assert_string_equal(what, "a whole number of pixels from -256 to 256 (negative shrinks the mask)");
    const pm_option_range *q = pm_option_find("quality");
    assert_non_null(q);
    assert_int_equal(q->dflt, PM_QUALITY_DEFAULT);
    assert_int_equal(pm_option_parse(q, "0", &v), PM_EINVAL);
    assert_int_equal(pm_option_parse(q, "100", &v), 0);
    assert_null(pm_option_find("nosuch"));
    assert_null(pm_option_find(NULL));
    int n = 0;
    while (pm_option_at(n))
        n++;
    assert_int_equal(n, 4);
    assert_null(pm_option_at(-1));
    /* A tiny buffer is truncated, never overrun. */
    char tiny[8];
    pm_option_describe(pm_option_find("input_size"), tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 7);
}

static void test_format_table(void **st)
{
    (void)st;
    const char *ids[] = {"png", "jpeg", "webp"};
    int n = 0;
    for (; pm_format_at(n) != PM_FMT_UNKNOWN; n++) {
        enum pm_format f = pm_format_at(n);
        assert_string_equal(pm_format_id(f), ids[n]);
        assert_int_equal(pm_format_parse(pm_format_id(f)), f);
        assert_int_equal(pm_format_parse(pm_format_ext(f)), f);
        assert_non_null(strstr(pm_format_mime(f), ids[n]));
    }
    assert_int_equal(n, 3);
    assert_int_equal(pm_format_parse("JPG"), PM_FMT_JPEG);
    assert_int_equal(pm_format_parse("WebP"), PM_FMT_WEBP);
    assert_int_equal(pm_format_parse("gif"), PM_FMT_UNKNOWN);
    assert_int_equal(pm_format_parse(NULL), PM_FMT_UNKNOWN);
    assert_null(pm_format_id(PM_FMT_UNKNOWN));
    assert_string_equal(pm_format_ext(PM_FMT_JPEG), "jpg");
    assert_string_equal(pm_format_mime(PM_FMT_WEBP), "image/webp");
    assert_string_equal(pm_format_name(PM_FMT_WEBP), "WebP");
    assert_int_equal(pm_format_from_name("dir.png/photo.JPEG"), PM_FMT_JPEG);
    assert_int_equal(pm_format_from_name("a.webp"), PM_FMT_WEBP);
    assert_int_equal(pm_format_from_name(".png"), PM_FMT_UNKNOWN);
    assert_int_equal(pm_format_from_name("photo.gif"), PM_FMT_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_size_range_step_and_presets),
        cmocka_unit_test(test_other_options),
        cmocka_unit_test(test_format_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
