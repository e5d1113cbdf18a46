/* Admission: the pure decisions (budget, slots, pause, lanes), ageing in the
 * priority queue, and the scheduler applying them with a memory law read
 * from DATA/memlaw.json (the order jobs start in, 413 with the largest
 * fitting size). No timing: orders come from the scheduler's events. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pixmend.h"
#include "support/tmpfiles.h"
#include "models/patchmatch.h"
#include "sched/admit.h"
#include "sched/jobqueue.h"
#include "sched/sched.h"

/* ------------------------------------------------------------ decisions */

static void test_fits_budget(void **st)
{
    (void)st;
    assert_true(pm_admit_fits(100, 0, 100));
    assert_true(pm_admit_fits(100, 40, 60));
    assert_false(pm_admit_fits(100, 41, 60));
    assert_true(pm_admit_fits(0, 1000, 1000));  /* no budget */
    assert_true(pm_admit_fits(100, 0, 500));    /* alone always may (a law raised after admission) */
    assert_false(pm_admit_fits(100, 1, UINT64_MAX));
}

static void test_choose_slots_pause_budget(void **st)
{
    (void)st;
    pm_admit_view v = {.free_slots = 1, .budget = 100, .reserved = 0, .last_lane = -1,
                       .present = {0, 1}, .predicted = {0, 60}};
    assert_int_equal(pm_admit_choose(&v), PM_LANE_NORMAL);
    v.free_slots = 0;
    assert_int_equal(pm_admit_choose(&v), -1); /* no slot */
    v.free_slots = 1;
    v.paused = 1;
    assert_int_equal(pm_admit_choose(&v), -1); /* paused: nothing starts */
    v.paused = 0;
    v.reserved = 60;
    assert_int_equal(pm_admit_choose(&v), -1); /* 60 + 60 > 100 */
    v.present[PM_LANE_NORMAL] = 0;
    assert_int_equal(pm_admit_choose(&v), -1); /* empty */
}

static void test_fast_lane_overtakes(void **st)
{
    (void)st;
    /* A large job waits for memory; a small one behind it starts. */
    pm_admit_view v = {.free_slots = 1, .budget = 100, .reserved = 60, .last_lane = PM_LANE_FAST,
                       .present = {1, 1}, .predicted = {10, 60}};
    assert_int_equal(pm_admit_choose(&v), PM_LANE_FAST);
    /* Both fit: the lanes alternate. */
    v.reserved = 0;
    assert_int_equal(pm_admit_choose(&v), PM_LANE_NORMAL);
    v.last_lane = PM_LANE_NORMAL;
    assert_int_equal(pm_admit_choose(&v), PM_LANE_FAST);
    v.last_lane = -1;
    assert_int_equal(pm_admit_choose(&v), PM_LANE_FAST);
    /* A large job that has waited too long holds the fast lane until it fits. */
    v.reserved = 60;
    v.last_lane = PM_LANE_FAST;
    v.normal_starving = 1;
    assert_int_equal(pm_admit_choose(&v), -1);
    v.reserved = 30;
    assert_int_equal(pm_admit_choose(&v), PM_LANE_NORMAL);
    v.normal_starving = 0;
    assert_int_equal(pm_admit_lane(1000000, 1000000), PM_LANE_FAST);
    assert_int_equal(pm_admit_lane(1000001, 1000000), PM_LANE_NORMAL);
}

static void test_ageing_prevents_starvation(void **st)
{
    (void)st;
    pm_jobqueue q;
    pm_jq_init(&q, 100);
    pm_jq_node old = {.priority = 0, .enqueued = 0};
    pm_jq_node fresh[5];
    assert_int_equal(pm_jq_push(&q, &old), 0);
    for (int i = 0; i < 5; i++) {
        fresh[i] = (pm_jq_node){.priority = 9, .enqueued = 100 + i};
        assert_int_equal(pm_jq_push(&q, &fresh[i]), 0);
    }
    /* Without ageing, priority 9 always wins. */
    assert_ptr_equal(pm_jq_pick_aged(&q, 105, 0), &fresh[0]);
    /* Ageing 10 s a step: at t=105 the old job counts 0 + 10 = 10 > 9. */
    assert_ptr_equal(pm_jq_pick_aged(&q, 105, 10), &old);
    /* At t=50 it counts 5: the fresh ones (waited < 10 s) still go first. */
    assert_ptr_equal(pm_jq_pick_aged(&q, 101, 20), &fresh[0]);
    /* FIFO within a priority: equal effective priority, the older wins. */
    pm_jq_remove(&q, &old);
    assert_ptr_equal(pm_jq_pick_aged(&q, 1000, 10), &fresh[0]);
    pm_jq_remove(&q, &fresh[0]);
    assert_ptr_equal(pm_jq_pick_aged(&q, 1000, 10), &fresh[1]);
}

/* ------------------------------------------------------------ the scheduler */

static uint8_t *png(int w, int h, int mask, size_t *len)
{
    pm_image img;
    assert_int_equal(pm_image_alloc(&img, w, h, mask ? 1 : 3), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (mask)
                img.data[y * w + x] = (x >= w / 3 && x < w / 2 && y >= h / 3 && y < h / 2) ? 255 : 0;
            else
                for (int c = 0; c < 3; c++)
                    img.data[((size_t)y * w + x) * 3 + c] = (uint8_t)((x * 7 + y * 3 + c * 50) % 256);
        }
    pm_encode_opts o = pm_default_encode_opts(PM_FMT_PNG);
    uint8_t *out;
    assert_int_equal(pm_image_encode(&img, &o, &out, len), 0);
    pm_image_free(&img);
    return out;
}

/* Events, recorded in order. */
typedef struct log_t {
    pthread_mutex_t lock;
    int n;
    struct { pm_job_event_type type; char id[PM_JOB_ID_LEN + 1]; } ev[256];
} log_t;

static void on_event(void *user, pm_job_event_type type, uint64_t seq, const pm_job_info *job)
{
    (void)seq;
    log_t *l = user;
    if (type == PM_EV_PROGRESS || type == PM_EV_QUEUED)
        return;
    pthread_mutex_lock(&l->lock);
    if (l->n < 256) {
        l->ev[l->n].type = type;
        snprintf(l->ev[l->n].id, sizeof l->ev[l->n].id, "%s", job->id);
        l->n++;
    }
    pthread_mutex_unlock(&l->lock);
}

static int index_of(log_t *l, pm_job_event_type type, const char *id)
{
    for (int i = 0; i < l->n; i++)
        if (l->ev[i].type == type && strcmp(l->ev[i].id, id) == 0)
            return i;
    return -1;
}

/* patchmatch: 1 MB + 1000 bytes a pixel; the fast lane up to 2000 pixels.
 * Small 32x32 = 2.02 MB, large 64x64 = 5.1 MB; budget 8 MB: one large and
 * one small together, never two large. */
static pm_sched *make(int workers, int delay_ms)
{
    char path[400];
    snprintf(path, sizeof path, "%s/memlaw.json", fx_dir);
    static const char law[] = "{\"version\": 1, \"models\": [\n  {\"model\": \"patchmatch\", \"a\": 1000000, \"b\": 1000}\n]}\n";
    fx_write(path, law, sizeof law - 1);
    pm_sched_config c;
    pm_sched_default_config(&c);
    c.data_dir = fx_dir;
    c.threads = 1;
    c.workers = workers;
    c.job_delay_ms = delay_ms;
    c.mem_budget = 8000000;
    c.fast_lane_pixels = 2000;
    pm_sched *s;
    assert_int_equal(pm_sched_create(&c, &s), 0);
    assert_int_equal(pm_sched_add_model(s, &pm_model_patchmatch, NULL), 0);
    return s;
}

static void submit(pm_sched *s, int side, pm_job_info *info)
{
    size_t il, ml;
    uint8_t *img = png(side, side, 0, &il), *msk = png(side, side, 1, &ml);
    pm_job_spec sp;
    pm_job_spec_default(&sp);
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, "i.png", msk, ml, "m.png", info), 0);
    pm_free(img);
    pm_free(msk);
}

static void wait_done(pm_sched *s, const char *id)
{
    pm_job_info info;
    for (int i = 0; i < 6000; i++) {
        assert_int_equal(pm_sched_get(s, id, &info), 0);
        if (info.state == PM_JOB_DONE)
            return;
        assert_true(info.state == PM_JOB_QUEUED || info.state == PM_JOB_RUNNING);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("job %s did not finish", id);
}

static void test_sched_small_overtakes_and_budget_holds(void **st)
{
    (void)st;
    pm_sched *s = make(2, 60);
    static log_t l;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.lock, NULL);
    pm_sched_set_event_fn(s, on_event, &l);
    pm_job_info big1, big2, small;
    submit(s, 64, &big1);
    submit(s, 64, &big2);
    submit(s, 32, &small);
    assert_int_equal(big1.lane, PM_LANE_NORMAL);
    assert_int_equal(small.lane, PM_LANE_FAST);
    assert_int_equal(big1.predicted_bytes, 1000000 + 1000 * 64 * 64);
    assert_int_equal(small.predicted_bytes, 1000000 + 1000 * 32 * 32);
    assert_int_equal(pm_sched_start(s), 0);
    wait_done(s, big1.id);
    wait_done(s, big2.id);
    wait_done(s, small.id);
    pm_sched_set_event_fn(s, NULL, NULL);
    /* Judged by the jobs' own start and end times, which the workers set
     * under the scheduler's lock when they pick and finish a job: a started
     * event comes after the job's journal commit, so two workers' events may
     * reach the log in either order. */
    pm_job_info b1, b2, sm;
    assert_int_equal(pm_sched_get(s, big1.id, &b1), 0);
    assert_int_equal(pm_sched_get(s, big2.id, &b2), 0);
    assert_int_equal(pm_sched_get(s, small.id, &sm), 0);
    /* The small job, queued last, started first (fast lane). */
    assert_true(sm.started <= b1.started && sm.started <= b2.started);
    /* Two large jobs never ran together: the second started after the first ended. */
    assert_true(b2.started >= b1.finished);
    assert_true(index_of(&l, PM_EV_STARTED, small.id) >= 0 && index_of(&l, PM_EV_DONE, big2.id) >= 0);
    pm_job_info fin;
    assert_int_equal(pm_sched_get(s, big1.id, &fin), 0);
    assert_true(fin.peak_bytes > 0);
    assert_true(fin.peak_bytes < fin.predicted_bytes);
    pm_sched_stats stats;
    pm_sched_get_stats(s, &stats);
    assert_int_equal(stats.mem_reserved, 0);
    assert_int_equal(stats.disk_write.count, 3);
    pm_sched_destroy(s);
    pthread_mutex_destroy(&l.lock);
}

static void test_sched_pause_holds_jobs(void **st)
{
    (void)st;
    pm_sched *s = make(1, 0);
    assert_int_equal(pm_sched_start(s), 0);
    assert_int_equal(pm_sched_admission_update(s, 0.5, "host"), 0);
    assert_int_equal(pm_sched_admission_update(s, 0.9, "gpu0"), 1);
    assert_int_equal(pm_sched_admission_update(s, 0.8, "gpu0"), 0); /* between the marks: still paused */
    assert_true(pm_sched_paused(s));
    pm_job_info j;
    submit(s, 32, &j); /* queues while paused */
    pm_job_info now;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(pm_sched_get(s, j.id, &now), 0);
        assert_int_equal(now.state, PM_JOB_QUEUED);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(pm_sched_admission_update(s, 0.7, "gpu0"), -1);
    wait_done(s, j.id);
    pm_sched_stats stats;
    pm_sched_get_stats(s, &stats);
    assert_int_equal(stats.pauses, 1);
    assert_int_equal(stats.resumes, 1);
    assert_int_equal(stats.ntransitions, 2);
    assert_true(stats.transitions[0].paused);
    assert_false(stats.transitions[1].paused);
    pm_sched_destroy(s);
}

static void test_sched_413_names_the_largest_size(void **st)
{
    (void)st;
    pm_sched *s = make(1, 0);
    size_t il, ml;
    uint8_t *img = png(120, 80, 0, &il), *msk = png(120, 80, 1, &ml); /* 9600 px: 10.6 MB > 8 MB */
    pm_job_spec sp;
    pm_job_spec_default(&sp);
    pm_job_info info;
    assert_int_equal(pm_sched_submit(s, &sp, 0, img, il, "i.png", msk, ml, "m.png", &info), PM_ETOOBIG);
    const char *msg = pm_error_detail();
    /* (8e6 - 1e6) / 1000 = 7000 px at 3:2 -> 102x68 */
    assert_non_null(strstr(msg, "this 120x80 inpaint job needs about"));
    assert_non_null(strstr(msg, "--mem-budget"));
    assert_non_null(strstr(msg, "the largest image that fits is about 102x68"));
    pm_free(img);
    pm_free(msk);
    pm_sched_destroy(s);
}

/* A colorization engine whose estimate grows with the input size (as
 * DDColor's does): 1 MB + 4 bytes per input pixel (512 when 0) + 4 bytes per
 * image pixel. It never runs here (the scheduler is not started). */
static uint64_t sized_estimate(const void *state, int w, int h, int input_size)
{
    (void)state;
    uint64_t S = (uint64_t)(input_size > 0 ? input_size : 512);
    return 1000000 + 4 * S * S + 4 * (uint64_t)w * (uint64_t)h;
}

static int sized_load(const char *path, const pm_model_opts *o, void **state)
{
    (void)path;
    (void)o;
    *state = NULL;
    return 0;
}

static void sized_unload(void *state)
{
    (void)state;
}

static const pm_model_desc sized_colorizer = {.name = "sized",
                                              .task = PM_TASK_COLORIZE,
                                              .load = sized_load,
                                              .unload = sized_unload,
                                              .mem_estimate = sized_estimate};

static int submit_colorize(pm_sched *s, int input_size, pm_job_info *info)
{
    size_t il;
    uint8_t *img = png(64, 48, 0, &il);
    pm_job_spec sp;
    pm_job_spec_default(&sp);
    sp.task = PM_TASK_COLORIZE;
    snprintf(sp.model, sizeof sp.model, "sized");
    sp.input_size = input_size;
    int rc = pm_sched_submit(s, &sp, 0, img, il, "i.png", NULL, 0, NULL, info);
    pm_free(img);
    return rc;
}

/* A colorize job is predicted at its own input size: the law (fitted at the
 * default size) plus the engine's estimate at that size less its estimate at
 * the default. Budget 8 MB: input 512 (about 2.06 MB) and 1024 (5.2 MB) fit,
 * 2048 (17.8 MB) is refused with 413 before it is queued. */
static void test_sched_colorize_predicted_at_its_input_size(void **st)
{
    (void)st;
    pm_sched_config c;
    pm_sched_default_config(&c);
    c.data_dir = fx_dir;
    c.threads = 1;
    c.workers = 1;
    c.mem_budget = 8000000;
    pm_sched *s;
    assert_int_equal(pm_sched_create(&c, &s), 0);
    assert_int_equal(pm_sched_add_model(s, &sized_colorizer, NULL), 0);
    pm_job_info a, b, big;
    assert_int_equal(submit_colorize(s, 512, &a), 0);
    assert_int_equal(submit_colorize(s, 1024, &b), 0);
    uint64_t px = 64 * 48;
    assert_true(a.predicted_bytes >= 1000000 + 4 * 512 * 512 + 4 * px);
    assert_true(b.predicted_bytes >= 1000000 + 4 * 1024 * 1024 + 4 * px);
    assert_true(b.predicted_bytes - a.predicted_bytes >= 4 * (1024 * 1024 - 512 * 512));
    assert_int_equal(submit_colorize(s, 2048, &big), PM_ETOOBIG);
    assert_non_null(strstr(pm_error_detail(), "colorize job needs about"));
    pm_sched_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fits_budget),
        cmocka_unit_test(test_choose_slots_pause_budget),
        cmocka_unit_test(test_fast_lane_overtakes),
        cmocka_unit_test(test_ageing_prevents_starvation),
        cmocka_unit_test_setup_teardown(test_sched_small_overtakes_and_budget_holds, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_sched_pause_holds_jobs, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_sched_413_names_the_largest_size, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_sched_colorize_predicted_at_its_input_size, fx_dir_setup,
                                        fx_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
