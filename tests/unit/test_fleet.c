/* The fleet's pure rules (claim.c) and its records and events (rec.c):
 * addresses, ids, claim refresh, backoff, the delivery bound, the queue bound,
 * Retry-After, the drain rate, and record/event round trips with malformed
 * input refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fleet/fleet_internal.h"

#include <stdio.h>
#include <string.h>

static void test_parse_url(void **state)
{
    (void)state;
    pm_redis_url u;
    assert_int_equal(pm_fleet_parse_url("redis://10.0.0.5:6380/2", &u), 0);
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_int_equal(pm_fleet_parse_url("redis://cache", &u), 0);
    assert_string_equal(u.host, "cache");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(pm_fleet_parse_url("localhost:7000/", &u), 0);
    assert_int_equal(u.port, 7000);
    const char *bad[] = {"", "redis://", "redis://:6379", "http://x", "redis://h:0", "redis://h:70000",
                         "redis://h:12x", "redis://h/db", "redis://user:pw@h", "redis://h:1/-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pm_fleet_parse_url(bad[i], &u), PM_EINVAL);
        assert_true(strstr(pm_error_detail(), "--redis") != NULL);
    }
}

static void test_valid_id(void **state)
{
    (void)state;
    assert_true(pm_fleet_valid_id("0123456789abcdef0123456789abcdef", 32));
    assert_false(pm_fleet_valid_id("0123456789abcdef0123456789abcde", 31));
    assert_false(pm_fleet_valid_id("0123456789ABCDEF0123456789abcdef", 32));
    assert_false(pm_fleet_valid_id("0123456789abcdef0123456789abcd:*", 32));
    assert_false(pm_fleet_valid_id(NULL, 32));
}

static void test_refresh_and_backoff(void **state)
{
    (void)state;
    assert_true(pm_fleet_refresh_period(30) == 10);
    assert_true(pm_fleet_refresh_period(3) == 1);
    assert_true(pm_fleet_refresh_period(0.1) == 0.05);  /* floor */
    assert_true(pm_fleet_refresh_period(600) == 10);    /* ceiling */
    /* a refresh always comes well before another worker may take the entry */
    for (double idle = 0.2; idle < 100; idle *= 1.7)
        assert_true(pm_fleet_refresh_period(idle) < idle / 2);
    double prev = 0;
    for (int n = 0; n < 20; n++) {
        double b = pm_fleet_backoff(n);
        assert_true(b >= prev && b <= 5);
        prev = b;
    }
    assert_true(pm_fleet_backoff(0) == 0.1);
    assert_true(pm_fleet_backoff(1) == 0.2);
    assert_true(pm_fleet_backoff(100) == 5);
    assert_true(pm_fleet_backoff(-3) == 0.1);
}

static void test_delivery_bound(void **state)
{
    (void)state;
    char why[300];
    for (int a = 1; a <= 3; a++)
        assert_int_equal(pm_fleet_delivery_verdict(a, 3, "w1", why, sizeof why), 0);
    assert_int_equal(pm_fleet_delivery_verdict(4, 3, "host-77", why, sizeof why), PM_ETIMEOUT);
    assert_non_null(strstr(why, "3 times"));
    assert_non_null(strstr(why, "host-77"));
    assert_non_null(strstr(why, "--max-deliveries 3"));
    assert_int_equal(pm_fleet_delivery_verdict(2, 1, "", why, sizeof why), PM_ETIMEOUT);
    assert_non_null(strstr(why, "the last was unknown"));
}

static void test_queue_bound_and_retry(void **state)
{
    (void)state;
    char why[300];
    assert_int_equal(pm_fleet_queue_verdict(0, 64, 0, 900, why, sizeof why), 0);
    assert_int_equal(pm_fleet_queue_verdict(63, 64, 0, 900, why, sizeof why), 0);  /* rate unknown: length only */
    assert_int_equal(pm_fleet_queue_verdict(64, 64, 10, 900, why, sizeof why), PM_EBUSY);
    assert_non_null(strstr(why, "--queue-max 64"));
    /* 10 queued at 0.01 jobs/s: 1100 s > 900 s */
    assert_int_equal(pm_fleet_queue_verdict(10, 64, 0.01, 900, why, sizeof why), PM_EBUSY);
    assert_non_null(strstr(why, "--max-wait 900"));
    assert_int_equal(pm_fleet_queue_verdict(10, 64, 0.01, 0, why, sizeof why), 0); /* no wait bound */
    assert_int_equal(pm_fleet_retry_after(64, 64, 2, 0), 1);
    assert_int_equal(pm_fleet_retry_after(70, 64, 1, 0), 7);
    assert_int_equal(pm_fleet_retry_after(70, 64, 0, 0), 35);  /* unknown rate: 5 s a job */
    assert_int_equal(pm_fleet_retry_after(1000000, 64, 0.001, 0), 3600);
    assert_true(pm_fleet_retry_after(100, 1000, 0.1, 100) >= 10); /* over the wait bound by 91 jobs */
}

static void test_rate(void **state)
{
    (void)state;
    double r = 0;
    pm_fleet_rate_update(&r, 10, 20, 2);
    assert_true(r == 5);
    pm_fleet_rate_update(&r, 20, 20, 1); /* nothing finished: the rate falls */
    assert_true(r < 5 && r > 0);
    double before = r;
    pm_fleet_rate_update(&r, 30, 20, 1); /* counter went back (Redis lost it): ignored */
    pm_fleet_rate_update(&r, 20, 30, 0);
    assert_true(r == before);
}

static void sample_job(pm_job_info *j)
{
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", "00112233445566778899aabbccddeeff");
    j->state = PM_JOB_RUNNING;
    pm_job_spec_default(&j->spec);
    j->spec.task = PM_TASK_COLORIZE;
    snprintf(j->spec.model, sizeof j->spec.model, "ddcolor");
    snprintf(j->spec.owner, sizeof j->spec.owner, "alice");
    j->spec.priority = 7;
    j->spec.format = PM_FMT_WEBP;
    j->spec.quality = 83;
    j->spec.input_size = 512;
    j->spec.mask_dilate = -4;
    j->spec.strip_gps = 1;
    j->has_mask = 0;
    j->width = 4000;
    j->height = 3000;
    j->created = 1796000000.25;
    j->started = 1796000001.5;
    j->attempts = 2;
    j->lane = 1;
    j->predicted_bytes = 5000000000ull;
    j->progress_value = 3;
    j->progress_max = 9;
    j->error_code = PM_EIO;
    snprintf(j->error, sizeof j->error, "line one\nline two = yes");
}

static void test_record_round_trip(void **state)
{
    (void)state;
    pm_job_info a, b;
    sample_job(&a);
    pm_fleet_fields f;
    pm_fleet_encode(&a, &f);
    size_t kl[PM_FLEET_MAX_FIELDS];
    for (int i = 0; i < f.n; i++)
        kl[i] = strlen(f.k[i]);
    assert_int_equal(pm_fleet_decode(f.k, kl, f.v, f.vlen, f.n, &b), 0);
    assert_string_equal(b.id, a.id);
    assert_int_equal(b.state, a.state);
    assert_int_equal(b.spec.task, PM_TASK_COLORIZE);
    assert_string_equal(b.spec.model, "ddcolor");
    assert_string_equal(b.spec.owner, "alice");
    assert_int_equal(b.spec.priority, 7);
    assert_int_equal(b.spec.format, PM_FMT_WEBP);
    assert_int_equal(b.spec.quality, 83);
    assert_int_equal(b.spec.mask_dilate, -4);
    assert_int_equal(b.spec.strip_gps, 1);
    assert_int_equal(b.width, 4000);
    assert_true(b.created == a.created && b.started == a.started);
    assert_int_equal(b.attempts, 2);
    assert_int_equal(b.lane, 1);
    assert_true(b.predicted_bytes == 5000000000ull);
    assert_int_equal(b.progress_max, 9);
    assert_int_equal(b.error_code, PM_EIO);
    assert_string_equal(b.error, a.error);
    assert_int_equal(b.queue_position, -1);
}

static int decode_pairs(const char *const *kv, int n, pm_job_info *out)
{
    const char *k[16], *v[16];
    size_t kl[16], vl[16];
    for (int i = 0; i < n; i++) {
        k[i] = kv[2 * i];
        v[i] = kv[2 * i + 1];
        kl[i] = strlen(k[i]);
        vl[i] = strlen(v[i]);
    }
    return pm_fleet_decode(k, kl, v, vl, n, out);
}

static void test_record_malformed(void **state)
{
    (void)state;
    pm_job_info j;
    const char *id = "00112233445566778899aabbccddeeff";
    const char *ok[] = {"id", id, "state", "queued", "task", "inpaint", "whatever", "ignored"};
    assert_int_equal(decode_pairs(ok, 4, &j), 0);
    assert_int_equal(j.spec.task, PM_TASK_INPAINT);
    const char *no_id[] = {"state", "queued", "task", "inpaint"};
    assert_int_equal(decode_pairs(no_id, 2, &j), PM_ECORRUPT);
    assert_non_null(strstr(pm_error_detail(), "lacks its id"));
    const char *cases[][8] = {
        {"id", "not-an-id", "state", "queued", "task", "inpaint"},
        {"id", id, "state", "sleeping", "task", "inpaint"},
        {"id", id, "state", "queued", "task", "teleport"},
        {"id", id, "state", "queued", "task", "inpaint", "priority", "12"},
        {"id", id, "state", "queued", "task", "inpaint", "width", "12px"},
        {"id", id, "state", "queued", "task", "inpaint", "created", "nan"},
        {"id", id, "state", "queued", "task", "inpaint", "predicted_bytes", "-5"},
        {"id", id, "state", "queued", "task", "inpaint", "format", "gif"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = cases[i][6] ? 4 : 3;
        assert_int_equal(decode_pairs(cases[i], n, &j), PM_ECORRUPT);
        assert_non_null(strstr(pm_error_detail(), "malformed job record"));
    }
    /* a value longer than its field, and one with a NUL inside */
    char longmodel[100];
    memset(longmodel, 'm', sizeof longmodel - 1);
    longmodel[sizeof longmodel - 1] = '\0';
    const char *too_long[] = {"id", id, "state", "queued", "task", "inpaint", "model", longmodel};
    assert_int_equal(decode_pairs(too_long, 4, &j), PM_ECORRUPT);
    const char *k[] = {"id", "state", "task", "owner"};
    const char *v[] = {id, "queued", "inpaint", "a\0b"};
    size_t kl[] = {2, 5, 4, 5}, vl[] = {32, 6, 7, 3};
    assert_int_equal(pm_fleet_decode(k, kl, v, vl, 4, &j), PM_ECORRUPT);
}

static void test_event_round_trip(void **state)
{
    (void)state;
    pm_job_info a, b;
    sample_job(&a);
    size_t len = 0;
    char *m = pm_fleet_event_message(PM_EV_PROGRESS, &a, &len);
    assert_non_null(m);
    assert_int_equal(strlen(m), len);
    pm_job_event_type t;
    assert_int_equal(pm_fleet_event_parse(m, len, &t, &b), 0);
    assert_int_equal(t, PM_EV_PROGRESS);
    assert_string_equal(b.id, a.id);
    assert_int_equal(b.progress_value, 3);
    assert_string_equal(b.error, "line one line two = yes"); /* one line per field */
    pm_free(m);
    const char *bad[] = {"", "event=teleported\nid=00112233445566778899aabbccddeeff\n", "no equals sign",
                         "event=done\nid=00112233445566778899aabbccddeeff\nstate=done\n" /* no task */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pm_fleet_event_parse(bad[i], strlen(bad[i]), &t, &b), PM_ECORRUPT);
}

static void test_keys(void **state)
{
    (void)state;
    char k[96];
    pm_fleet_key(k, sizeof k, "job", "abc");
    assert_string_equal(k, "pixmend:job:abc");
    pm_fleet_key(k, sizeof k, "image", "abc");
    assert_string_equal(k, "pixmend:input:abc:image");
    pm_fleet_key(k, sizeof k, "result", "abc");
    assert_string_equal(k, "pixmend:result:abc");
    assert_string_equal(pm_fleet_stream(0), "pixmend:jobs:fast");
    assert_string_equal(pm_fleet_stream(1), "pixmend:jobs:normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),         cmocka_unit_test(test_valid_id),
        cmocka_unit_test(test_refresh_and_backoff), cmocka_unit_test(test_delivery_bound),
        cmocka_unit_test(test_queue_bound_and_retry), cmocka_unit_test(test_rate),
        cmocka_unit_test(test_record_round_trip), cmocka_unit_test(test_record_malformed),
        cmocka_unit_test(test_event_round_trip),  cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
