/* The SQLite job journal: inserts, guarded transitions, recovery order,
 * persistence across reopen, forgetting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixmend.h"
#include "support/tmpfiles.h"
#include "sched/journal.h"

#include <sqlite3.h>

static char path[300];

/* A fresh directory per test (fx_dir) and the journal's path in it. */
static int setup(void **state)
{
    fx_dir_setup(state);
    snprintf(path, sizeof path, "%s/journal.sqlite", fx_dir);
    return 0;
}

static pm_job_info job(const char *id, int prio)
{
    pm_job_info j;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "%s", id);
    j.state = PM_JOB_QUEUED;
    j.spec.task = PM_TASK_INPAINT;
    snprintf(j.spec.model, sizeof j.spec.model, "patchmatch");
    j.spec.priority = prio;
    j.spec.format = PM_FMT_WEBP;
    j.spec.quality = 77;
    j.spec.mask_dilate = -7;
    j.has_mask = 1;
    j.width = 64;
    j.height = 48;
    j.created = 1700000000.5;
    return j;
}

typedef struct seen {
    pm_job_info rows[8];
    int64_t seqs[8];
    int n;
} seen;

static int collect(void *user, const pm_job_info *info, int64_t seq)
{
    seen *s = user;
    if (s->n < 8) {
        s->rows[s->n] = *info;
        s->seqs[s->n] = seq;
        s->n++;
    }
    return 0;
}

static void test_insert_transition_reload(void **state)
{
    (void)state;
    pm_journal *j;
    assert_int_equal(pm_journal_open(path, &j), 0);
    pm_job_info a = job("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 3);
    pm_job_info b = job("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 9);
    a.spec.strip_gps = 1; /* the file options survive a restart (privacy) */
    b.spec.strip_metadata = 1;
    b.spec.jpeg_reencode = 1;
    int64_t sa, sb;
    assert_int_equal(pm_journal_insert(j, &a, &sa), 0);
    assert_int_equal(pm_journal_insert(j, &b, &sb), 0);
    assert_true(sb > sa);
    /* the id is unique */
    assert_int_equal(pm_journal_insert(j, &a, NULL), PM_EIO);

    a.state = PM_JOB_RUNNING;
    a.started = 1700000001.0;
    a.attempts = 1;
    assert_int_equal(pm_journal_transition(j, &a, PM_JOB_QUEUED), 0);
    a.state = PM_JOB_DONE;
    a.finished = 1700000002.0;
    snprintf(a.result_path, sizeof a.result_path, "outputs/2023/11/14/%s.webp", a.id);
    a.result_bytes = 1234;
    assert_int_equal(pm_journal_transition(j, &a, PM_JOB_RUNNING), 0);
    /* done twice is refused: the job is no longer running */
    assert_int_equal(pm_journal_transition(j, &a, PM_JOB_RUNNING), PM_EINTERNAL);
    assert_non_null(strstr(pm_error_detail(), "is not running"));
    assert_int_equal(pm_journal_count_transitions(j, a.id, PM_JOB_DONE), 1);
    assert_int_equal(pm_journal_count_transitions(j, a.id, PM_JOB_RUNNING), 1);
    pm_journal_close(j);

    /* reopen: everything is there, in submission order */
    assert_int_equal(pm_journal_open(path, &j), 0);
    seen s = {0};
    assert_int_equal(pm_journal_load(j, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.rows[0].id, a.id);
    assert_int_equal(s.rows[0].state, PM_JOB_DONE);
    assert_int_equal(s.rows[0].attempts, 1);
    assert_int_equal(s.rows[0].result_bytes, 1234);
    assert_string_equal(s.rows[0].result_path, a.result_path);
    assert_int_equal(s.rows[0].spec.format, PM_FMT_WEBP);
    assert_int_equal(s.rows[0].spec.quality, 77);
    assert_int_equal(s.rows[0].spec.mask_dilate, -7);
    assert_int_equal(s.rows[0].spec.priority, 3);
    assert_true(s.rows[0].created == a.created);
    assert_string_equal(s.rows[1].id, b.id);
    assert_int_equal(s.rows[1].state, PM_JOB_QUEUED);
    assert_int_equal(s.rows[1].spec.priority, 9);
    assert_int_equal(s.rows[1].has_mask, 1);
    assert_int_equal(s.rows[0].spec.strip_gps, 1);
    assert_int_equal(s.rows[0].spec.strip_metadata, 0);
    assert_int_equal(s.rows[0].spec.jpeg_reencode, 0);
    assert_int_equal(s.rows[1].spec.strip_gps, 0);
    assert_int_equal(s.rows[1].spec.strip_metadata, 1);
    assert_int_equal(s.rows[1].spec.jpeg_reencode, 1);
    assert_int_equal(s.seqs[0], sa);
    assert_int_equal(s.seqs[1], sb);

    assert_int_equal(pm_journal_forget(j, a.id), 0);
    assert_int_equal(pm_journal_count_transitions(j, a.id, PM_JOB_DONE), 0);
    s.n = 0;
    assert_int_equal(pm_journal_load(j, collect, &s), 0);
    assert_int_equal(s.n, 1);
    pm_journal_close(j);
}

static void test_not_a_journal(void **state)
{
    (void)state;
    char bad[320];
    snprintf(bad, sizeof bad, "%s/garbage.sqlite", fx_dir);
    static const char text[] = "this is not a database, just text that is long enough to look like a header.......";
    fx_write(bad, text, sizeof text - 1);
    pm_journal *j = NULL;
    assert_int_equal(pm_journal_open(bad, &j), PM_EIO);
    assert_null(j);
    assert_true(strlen(pm_error_detail()) > 10);
}

/* A journal written before masks could grow and shrink (no mask_dilate
 * column) opens, its jobs load with mask_dilate 0, and new jobs keep theirs. */
static void test_upgrade_adds_mask_dilate(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    const char *old =
        "CREATE TABLE jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL,"
        " task INTEGER NOT NULL, model TEXT NOT NULL, priority INTEGER NOT NULL, format INTEGER NOT NULL,"
        " quality INTEGER NOT NULL, hd_strategy INTEGER NOT NULL, mask_resize INTEGER NOT NULL,"
        " has_mask INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created REAL NOT NULL,"
        " started REAL NOT NULL DEFAULT 0, finished REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
        " result_path TEXT NOT NULL DEFAULT '', result_bytes INTEGER NOT NULL DEFAULT 0,"
        " error_code INTEGER NOT NULL DEFAULT 0, error_message TEXT NOT NULL DEFAULT '',"
        " input_size INTEGER NOT NULL DEFAULT 512);"
        "INSERT INTO jobs(id,state,task,model,priority,format,quality,hd_strategy,mask_resize,has_mask,width,height,"
        "created) VALUES('00000000000000000000000000000001','queued',0,'patchmatch',5,1,0,0,0,1,64,48,1700000000);";
    assert_int_equal(sqlite3_exec(db, old, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    pm_journal *j = NULL;
    assert_int_equal(pm_journal_open(path, &j), 0);
    pm_job_info b = job("00000000000000000000000000000002", 4);
    assert_int_equal(pm_journal_insert(j, &b, NULL), 0);
    seen s;
    memset(&s, 0, sizeof s);
    assert_int_equal(pm_journal_load(j, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.rows[0].spec.mask_dilate, 0);
    assert_int_equal(s.rows[0].width, 64);
    assert_int_equal(s.rows[1].spec.mask_dilate, -7);
    pm_journal_close(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_transition_reload, setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_not_a_journal, setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_adds_mask_dilate, setup, fx_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
