/* Base layer: errors, counting allocator, arena, parallel-for, logging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

static void test_strerror_covers_every_code(void **st)
{
    (void)st;
    for (int c = 0; c >= PM_ERROR_MIN; c--)
        assert_string_not_equal(pm_strerror(c), "unknown error");
    assert_string_equal(pm_strerror(-1000), "unknown error");
}

static void test_errorf_sets_detail(void **st)
{
    (void)st;
    pm_error_clear();
    assert_string_equal(pm_error_detail(), "");
    assert_int_equal(pm_errorf(PM_ETOOBIG, "image is %dx%d", 5120, 3840), PM_ETOOBIG);
    assert_string_equal(pm_error_detail(), "image is 5120x3840");
}

static void test_alloc_counts(void **st)
{
    (void)st;
    size_t before = pm_mem_in_use();
    char *p = pm_malloc(1000);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_int_equal(pm_mem_in_use(), before + 1000);
    p = pm_realloc(p, 5000);
    assert_int_equal(pm_mem_in_use(), before + 5000);
    assert_true(pm_mem_peak() >= before + 5000);
    char *q = pm_calloc(10, 10);
    for (int i = 0; i < 100; i++)
        assert_int_equal(q[i], 0);
    pm_free(q);
    pm_free(p);
    pm_free(NULL);
    assert_int_equal(pm_mem_in_use(), before);
    pm_mem_reset_peak();
    assert_int_equal(pm_mem_peak(), before);
    assert_null(pm_calloc(SIZE_MAX / 2, 4)); /* overflow is refused, not wrapped */
    char *s = pm_strdup("abc");
    assert_string_equal(s, "abc");
    pm_free(s);
}

static void test_arena(void **st)
{
    (void)st;
    pm_arena a;
    assert_int_equal(pm_arena_init(&a, 1024), 0);
    uint8_t *x = pm_arena_alloc(&a, 100);
    uint8_t *y = pm_arena_alloc(&a, 100);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal((uintptr_t)y % 64, 0);
    assert_true(y >= x + 100);
    assert_null(pm_arena_alloc(&a, 2000));
    pm_arena_reset(&a);
    assert_ptr_equal(pm_arena_alloc(&a, 10), x);
    assert_true(a.high >= 228);
    pm_arena_free(&a);
}

struct sum_ctx {
    atomic_long total;
    int fail_at;
};

static int add_index(void *user, int i)
{
    struct sum_ctx *c = user;
    if (i == c->fail_at)
        return PM_EIO;
    atomic_fetch_add(&c->total, i);
    return 0;
}

static void test_parallel_for(void **st)
{
    (void)st;
    for (int threads = 1; threads <= 4; threads++) {
        struct sum_ctx c = {.fail_at = -1};
        atomic_init(&c.total, 0);
        assert_int_equal(pm_parallel_for(1000, threads, add_index, &c), 0);
        assert_int_equal(atomic_load(&c.total), 999 * 1000 / 2);
    }
    struct sum_ctx c = {.fail_at = 500};
    atomic_init(&c.total, 0);
    assert_int_equal(pm_parallel_for(1000, 2, add_index, &c), PM_EIO);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_log_json_and_reopen(void **st)
{
    (void)st;
    char dir[] = "/tmp/pm_log_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], moved[256];
    snprintf(path, sizeof path, "%s/pixmend.log", dir);
    snprintf(moved, sizeof moved, "%s/pixmend.log.1", dir);
    assert_int_equal(pm_log_setup(PM_LOG_INFO, PM_LOG_JSON, path), 0);
    pm_log_install_sighup();
    pm_debug("hidden", "not shown at info level");
    pm_logkv(PM_LOG_WARN, "intake_paused", "memory at \"90%\"", "used", "90", "high", "85", NULL);
    char *text = slurp(path);
    assert_null(strstr(text, "hidden"));
    assert_non_null(strstr(text, "\"level\":\"warn\",\"event\":\"intake_paused\",\"msg\":\"memory at \\\"90%\\\"\",\"used\":\"90\",\"high\":\"85\"}"));
    /* logrotate moves the file and sends SIGHUP: the next line goes to a new file. */
    assert_int_equal(rename(path, moved), 0);
    raise(SIGHUP);
    pm_info("after_rotate", "line %d", 2);
    text = slurp(path);
    assert_non_null(strstr(text, "after_rotate"));
    assert_null(strstr(text, "intake_paused"));
    assert_int_equal(pm_log_setup(PM_LOG_INFO, PM_LOG_TEXT, path), 0);
    pm_logkv(PM_LOG_ERROR, "job_failed", "boom", "job", "abc", NULL);
    text = slurp(path);
    assert_non_null(strstr(text, "error job_failed: boom job=abc"));
    pm_log_shutdown();
    assert_int_equal(pm_log_setup(PM_LOG_INFO, PM_LOG_TEXT, "/nonexistent/dir/x.log"), PM_EIO);
    assert_non_null(strstr(pm_error_detail(), "/nonexistent/dir/x.log"));
    assert_int_equal(pm_log_level_parse("warn"), PM_LOG_WARN);
    assert_int_equal(pm_log_level_parse("loud"), -1);
    unlink(path);
    unlink(moved);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_covers_every_code),
        cmocka_unit_test(test_errorf_sets_detail),
        cmocka_unit_test(test_alloc_counts),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_parallel_for),
        cmocka_unit_test(test_log_json_and_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
