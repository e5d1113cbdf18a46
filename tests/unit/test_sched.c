/* The scheduler in-process, with the built-in PatchMatch: synchronous and
 * asynchronous jobs, validation, the bound, cancellation, events in order,
 * drain, recovery from the journal, expiry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pixmend.h"
#include "support/tmpfiles.h"
#include "base/base.h"
#include "models/patchmatch.h"
#include "sched/sched.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A PNG of a w x h test pattern (or a mask with a box when `mask`). */
static uint8_t *png(int w, int h, int mask, size_t *len)
{
    pm_image img;
    assert_int_equal(pm_image_alloc(&img, w, h, mask ? 1 : 3), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (mask) {
                img.data[y * w + x] = (x >= w / 3 && x < w / 2 && y >= h / 3 && y < h / 2) ? 255 : 0;
            } else {
                uint8_t *p = img.data + ((size_t)y * w + x) * 3;
                p[0] = (uint8_t)((x / 4) % 2 ? 200 : 30);
                p[1] = (uint8_t)(y * 5);
                p[2] = (uint8_t)(x * 3);
            }
        }
    pm_encode_opts o = pm_default_encode_opts(PM_FMT_PNG);
    uint8_t *out;
    assert_int_equal(pm_image_encode(&img, &o, &out, len), 0);
    pm_image_free(&img);
    return out;
}

static pm_sched *make(int delay_ms, int queue_max, double ttl)
{
    pm_sched_config c;
    pm_sched_default_config(&c);
    c.data_dir = fx_dir;
    c.threads = 1;
    c.job_delay_ms = delay_ms;
    c.queue_max = queue_max;
    c.result_ttl = ttl;
    pm_sched *s;
    assert_int_equal(pm_sched_create(&c, &s), 0);
    assert_int_equal(pm_sched_add_model(s, &pm_model_patchmatch, NULL), 0);
    return s;
}

static pm_job_info wait_end(pm_sched *s, const char *id)
{
    pm_job_info info;
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(pm_sched_get(s, id, &info), 0);
        if (info.state != PM_JOB_QUEUED && info.state != PM_JOB_RUNNING)
            return info;
        sleep_ms(5);
    }
    fail_msg("job %s did not end", id);
    return info;
}

static pm_job_spec spec_with(int prio)
{
    pm_job_spec sp;
    pm_job_spec_default(&sp);
    sp.priority = prio;
    return sp;
}

static void test_sync_job(void **state)
{
    (void)state;
    pm_sched *s = make(0, 8, 3600);
    assert_int_equal(pm_sched_start(s), 0);
    size_t il, ml;
    uint8_t *img = png(48, 32, 0, &il), *msk = png(48, 32, 1, &ml);
    pm_job_spec sp = spec_with(5);
    pm_job_info info, fin;
    assert_int_equal(pm_sched_submit(s, &sp, 1, img, il, "a.png", msk, ml, "m.png", &info), 0);
    assert_string_equal(info.spec.model, "patchmatch");
    uint8_t *out;
    size_t out_len;
    assert_int_equal(pm_sched_wait(s, info.id, &fin, &out, &out_len), 0);
    assert_int_equal(fin.state, PM_JOB_DONE);
    pm_image res, orig, mask;
    assert_int_equal(pm_image_decode(out, out_len, NULL, NULL, &res), 0);
    assert_int_equal(pm_image_decode(img, il, NULL, NULL, &orig), 0);
    assert_int_equal(pm_image_decode(msk, ml, NULL, NULL, &mask), 0);
    assert_int_equal(res.width, 48);
    assert_int_equal(res.height, 32);
    for (int i = 0; i < 48 * 32; i++)
        if (!mask.data[i])
            assert_memory_equal(res.data + i * 3, orig.data + i * 3, 3);
    /* the synchronous job is forgotten once collected */
    assert_int_equal(pm_sched_get(s, info.id, &fin), PM_ENOENT);
    pm_image_free(&res);
    pm_image_free(&orig);
    pm_image_free(&mask);
    pm_free(out);
    pm_free(img);
    pm_free(msk);
    pm_sched_destroy(s);
}

static void test_validation_and_bound(void **state)
{
    (void)state;
    pm_sched *s = make(0, 2, 3600); /* not started: jobs stay queued */
    size_t il, ml, sl;
    uint8_t *img = png(48, 32, 0, &il), *msk = png(48, 32, 1, &ml), *small = png(24, 16, 1, &sl);
    pm_job_spec sp = spec_with(5);
    pm_job_info info;
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, small, sl, NULL, &info), PM_EMISMATCH);
    assert_non_null(strstr(pm_error_detail(), "24x16"));
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, 0, NULL, msk, ml, NULL, &info), PM_EEMPTY);
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il / 2, NULL, msk, ml, NULL, &info), PM_ETRUNCATED);
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, NULL, 0, NULL, &info), PM_EINVAL);
    pm_job_spec bad = sp;
    snprintf(bad.model, sizeof bad.model, "lama");
    assert_int_equal(pm_sched_submit(s, &bad, 0, img, il, NULL, msk, ml, NULL, &info), PM_ENOENT);
    bad = sp;
    bad.task = PM_TASK_COLORIZE;
    assert_int_equal(pm_sched_submit(s, &bad, 0, img, il, NULL, NULL, 0, NULL, &info), PM_ENOENT);
    bad = sp;
    bad.priority = 10;
    assert_int_equal(pm_sched_submit(s, &bad, 0, img, il, NULL, msk, ml, NULL, &info), PM_EINVAL);
    pm_job_spec rs = sp;
    rs.mask_resize = 1;
    assert_int_equal(pm_sched_submit(s, &rs, 0, img, il, NULL, small, sl, NULL, &info), 0);
    assert_int_equal(info.queue_position, 0);
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &info), 0);
    assert_int_equal(info.queue_position, 1);
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &info), PM_EBUSY);
    assert_non_null(strstr(pm_error_detail(), "--queue-max"));
    assert_true(pm_sched_retry_after(s) >= 1);
    pm_sched_stats st;
    pm_sched_get_stats(s, &st);
    assert_int_equal(st.submitted, 2);
    assert_int_equal(st.queue_depth, 2);
    pm_free(img);
    pm_free(msk);
    pm_free(small);
    pm_sched_destroy(s);
}

typedef struct evlog {
    pthread_mutex_t lock;
    char types[256];
    int n;
    uint64_t last_seq;
    int seq_ok;
} evlog;

static void on_event(void *user, pm_job_event_type type, uint64_t seq, const pm_job_info *job)
{
    (void)job;
    evlog *l = user;
    pthread_mutex_lock(&l->lock);
    if (seq <= l->last_seq)
        l->seq_ok = 0;
    l->last_seq = seq;
    if (l->n < 255 && type != PM_EV_PROGRESS)
        l->types[l->n++] = "QSPDFC"[type];
    pthread_mutex_unlock(&l->lock);
}

static void test_events_cancel_and_recovery(void **state)
{
    (void)state;
    size_t il, ml;
    uint8_t *img = png(48, 32, 0, &il), *msk = png(48, 32, 1, &ml);
    char ids[4][PM_JOB_ID_LEN + 1];
    int prios[4] = {2, 7, 7, 5};

    /* Accept four jobs without workers, then "crash" (destroy without running). */
    pm_sched *s = make(0, 8, 3600);
    for (int i = 0; i < 4; i++) {
        pm_job_spec sp = spec_with(prios[i]);
        pm_job_info info;
        assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &info), 0);
        snprintf(ids[i], sizeof ids[i], "%s", info.id);
    }
    pm_job_info c;
    assert_int_equal(pm_sched_cancel(s, ids[3], &c), 0);
    assert_int_equal(c.state, PM_JOB_CANCELLED);
    assert_int_equal(pm_sched_cancel(s, ids[3], &c), PM_EINVAL);
    pm_sched_destroy(s);

    /* The next start recovers the three queued jobs in priority order. */
    s = make(0, 8, 3600);
    evlog log = {.lock = PTHREAD_MUTEX_INITIALIZER, .seq_ok = 1};
    pm_sched_set_event_fn(s, on_event, &log);
    pm_sched_stats st;
    pm_sched_get_stats(s, &st);
    assert_int_equal(st.recovered, 3);
    pm_job_info list[8];
    int total;
    assert_int_equal(pm_sched_list(s, list, 8, &total), 3);
    assert_string_equal(list[0].id, ids[1]);
    assert_string_equal(list[1].id, ids[2]);
    assert_string_equal(list[2].id, ids[0]);
    assert_int_equal(pm_sched_get(s, ids[3], &c), 0);
    assert_int_equal(c.state, PM_JOB_CANCELLED);
    assert_int_equal(pm_sched_start(s), 0);
    for (int i = 0; i < 3; i++) {
        pm_job_info fin = wait_end(s, ids[i]);
        assert_int_equal(fin.state, PM_JOB_DONE);
        assert_int_equal(fin.attempts, 1);
        char path[512];
        assert_int_equal(pm_sched_result_path(s, &fin, path, sizeof path), 0);
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal((uint64_t)sb.st_size, fin.result_bytes);
    }
    pthread_mutex_lock(&log.lock);
    log.types[log.n] = '\0';
    assert_string_equal(log.types, "SDSDSD"); /* started, done for each, in turn */
    assert_true(log.seq_ok);
    pthread_mutex_unlock(&log.lock);
    pm_sched_set_event_fn(s, NULL, NULL);
    pm_sched_destroy(s);
    pm_free(img);
    pm_free(msk);
}

static void test_drain_and_cancel_running(void **state)
{
    (void)state;
    size_t il, ml;
    uint8_t *img = png(48, 32, 0, &il), *msk = png(48, 32, 1, &ml);
    pm_sched *s = make(300, 8, 3600);
    assert_int_equal(pm_sched_start(s), 0);
    pm_job_spec sp = spec_with(5);
    pm_job_info a, b, c;
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &a), 0);
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &b), 0);
    for (int i = 0; i < 400; i++) {
        pm_sched_get(s, a.id, &c);
        if (c.state == PM_JOB_RUNNING)
            break;
        sleep_ms(5);
    }
    assert_int_equal(c.state, PM_JOB_RUNNING);
    assert_int_equal(pm_sched_cancel(s, a.id, &c), 0);
    assert_int_equal(wait_end(s, a.id).state, PM_JOB_CANCELLED);
    for (int i = 0; i < 400; i++) {
        pm_sched_get(s, b.id, &c);
        if (c.state == PM_JOB_RUNNING)
            break;
        sleep_ms(5);
    }
    pm_job_info q;
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &q), 0);
    assert_int_equal(pm_sched_drain(s, 10), 0); /* b finishes within the grace */
    assert_int_equal(pm_sched_get(s, b.id, &c), 0);
    assert_int_equal(c.state, PM_JOB_DONE);
    assert_int_equal(pm_sched_get(s, q.id, &c), 0);
    assert_int_equal(c.state, PM_JOB_QUEUED);
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &c), PM_EBUSY);
    assert_non_null(strstr(pm_error_detail(), "shutting down"));
    pm_sched_destroy(s);

    s = make(0, 8, 3600);
    pm_sched_stats st;
    pm_sched_get_stats(s, &st);
    assert_int_equal(st.recovered, 1);
    assert_int_equal(pm_sched_start(s), 0);
    assert_int_equal(wait_end(s, q.id).state, PM_JOB_DONE);
    pm_sched_destroy(s);
    pm_free(img);
    pm_free(msk);
}

static void test_expiry(void **state)
{
    (void)state;
    size_t il, ml;
    uint8_t *img = png(48, 32, 0, &il), *msk = png(48, 32, 1, &ml);
    pm_sched *s = make(0, 8, 0.3);
    assert_int_equal(pm_sched_start(s), 0);
    pm_job_spec sp = spec_with(5);
    pm_job_info a;
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &a), 0);
    pm_job_info fin = wait_end(s, a.id);
    char path[512];
    assert_int_equal(pm_sched_result_path(s, &fin, path, sizeof path), 0);
    int gone = 0;
    for (int i = 0; i < 400 && !gone; i++) {
        gone = pm_sched_get(s, a.id, &fin) == PM_ENOENT;
        sleep_ms(5);
    }
    assert_true(gone);
    assert_int_equal(access(path, F_OK), -1);
    pm_sched_destroy(s);
    pm_free(img);
    pm_free(msk);
}

static void test_recovery_forgets_missing_results(void **state)
{
    (void)state;
    size_t il, ml;
    uint8_t *img = png(48, 32, 0, &il), *msk = png(48, 32, 1, &ml);
    pm_sched *s = make(0, 8, 3600);
    assert_int_equal(pm_sched_start(s), 0);
    pm_job_spec sp = spec_with(5);
    pm_job_info a, b;
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &a), 0);
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, NULL, msk, ml, NULL, &b), 0);
    pm_job_info fa = wait_end(s, a.id), fb = wait_end(s, b.id);
    char pa[512], pb[512];
    assert_int_equal(pm_sched_result_path(s, &fa, pa, sizeof pa), 0);
    assert_int_equal(pm_sched_result_path(s, &fb, pb, sizeof pb), 0);
    pm_sched_destroy(s);
    assert_int_equal(unlink(pa), 0); /* someone deletes a result by hand */
    s = make(0, 8, 3600);
    pm_job_info x;
    assert_int_equal(pm_sched_get(s, a.id, &x), PM_ENOENT);
    assert_int_equal(pm_sched_get(s, b.id, &x), 0);
    assert_int_equal(x.state, PM_JOB_DONE);
    pm_sched_stats st;
    pm_sched_get_stats(s, &st);
    assert_int_equal(st.results_count, 1);
    assert_int_equal(st.results_bytes, fb.result_bytes);
    pm_sched_destroy(s);
    pm_free(img);
    pm_free(msk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sync_job, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_validation_and_bound, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_events_cancel_and_recovery, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_drain_and_cancel_running, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_expiry, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_recovery_forgets_missing_results, fx_dir_setup, fx_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
