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

/* The last journal format before the schema was versioned (user_version 0):
 * task, format, hd_strategy and error_code as the C enums' integers, the file
 * options as one bit field. Written here with that schema as it was. */
static const char v0_schema[] =
    "CREATE TABLE jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL,"
    " task INTEGER NOT NULL, model TEXT NOT NULL, priority INTEGER NOT NULL,"
    " format INTEGER NOT NULL, quality INTEGER NOT NULL, hd_strategy INTEGER NOT NULL,"
    " mask_resize INTEGER NOT NULL, has_mask INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,"
    " created REAL NOT NULL, started REAL NOT NULL DEFAULT 0, finished REAL NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0, result_path TEXT NOT NULL DEFAULT '',"
    " result_bytes INTEGER NOT NULL DEFAULT 0, error_code INTEGER NOT NULL DEFAULT 0,"
    " error_message TEXT NOT NULL DEFAULT '', input_size INTEGER NOT NULL DEFAULT 512,"
    " mask_dilate INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '', file_opts INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE transitions(job_id TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,"
    " at REAL NOT NULL, attempt INTEGER NOT NULL);"
    "CREATE INDEX transitions_job ON transitions(job_id);"
    /* positional, as the old code bound them: id,state,task,model,priority,format,quality,hd_strategy,
     * mask_resize,has_mask,width,height,created,started,finished,attempts,result_path,result_bytes,
     * error_code,error_message,input_size,mask_dilate,owner,file_opts */
    "INSERT INTO jobs VALUES(1,'00000000000000000000000000000001','done',0,'patchmatch',5,3,0,3,0,1,64,48,"
    " 1700000000,1700000001,1700000002,1,'outputs/2023/11/14/1.webp',999,0,'',512,4,'alice',0);"
    "INSERT INTO jobs VALUES(2,'00000000000000000000000000000002','queued',1,'ddcolor',9,2,80,0,0,0,640,480,"
    " 1700000003,0,0,0,'',0,0,'',1024,0,'',5);"
    "INSERT INTO jobs VALUES(4,'00000000000000000000000000000004','failed',0,'lama',2,1,0,2,1,1,100,80,"
    " 1700000004,1700000005,1700000006,1,'',0,-7,'image: the PNG data is damaged',512,0,'bob',2);"
    "INSERT INTO jobs VALUES(5,'00000000000000000000000000000005','running',0,'patchmatch',5,0,0,1,0,1,32,32,"
    " 1700000007,1700000008,0,1,'',0,0,'',512,-3,'',0);"
    "INSERT INTO transitions VALUES('00000000000000000000000000000001','','queued',1700000000,0);"
    "INSERT INTO transitions VALUES('00000000000000000000000000000001','queued','running',1700000001,1);"
    "INSERT INTO transitions VALUES('00000000000000000000000000000001','running','done',1700000002,1);"
    /* job 3 was forgotten: AUTOINCREMENT's mark is 6, past every row */
    "UPDATE sqlite_sequence SET seq = 6 WHERE name = 'jobs';";

/* An old journal opens with the new code: every job comes back with its
 * state and its enums, the table now holds names, and the schema is 2. */
static void test_upgrade_v0_names_enums(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, v0_schema, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    pm_journal *j = NULL;
    assert_int_equal(pm_journal_open(path, &j), 0);
    seen s = {0};
    assert_int_equal(pm_journal_load(j, collect, &s), 0);
    assert_int_equal(s.n, 4);
    const pm_job_info *done = &s.rows[0], *queued = &s.rows[1], *failed = &s.rows[2], *running = &s.rows[3];
    assert_int_equal(s.seqs[0], 1);
    assert_int_equal(s.seqs[2], 4);
    assert_int_equal(done->state, PM_JOB_DONE);
    assert_int_equal(done->spec.task, PM_TASK_INPAINT);
    assert_int_equal(done->spec.format, PM_FMT_WEBP);
    assert_int_equal(done->spec.hd_strategy, 3); /* crop */
    assert_int_equal(done->spec.mask_dilate, 4);
    assert_string_equal(done->spec.owner, "alice");
    assert_string_equal(done->result_path, "outputs/2023/11/14/1.webp");
    assert_int_equal(done->result_bytes, 999);
    assert_int_equal(done->error_code, 0);
    assert_int_equal(queued->state, PM_JOB_QUEUED);
    assert_int_equal(queued->spec.task, PM_TASK_COLORIZE);
    assert_string_equal(queued->spec.model, "ddcolor");
    assert_int_equal(queued->spec.priority, 9);
    assert_int_equal(queued->spec.format, PM_FMT_JPEG);
    assert_int_equal(queued->spec.quality, 80);
    assert_int_equal(queued->spec.input_size, 1024);
    assert_int_equal(queued->spec.strip_metadata, 1); /* file_opts 5 = bits 1 and 4 */
    assert_int_equal(queued->spec.strip_gps, 0);
    assert_int_equal(queued->spec.jpeg_reencode, 1);
    assert_int_equal(failed->state, PM_JOB_FAILED);
    assert_int_equal(failed->spec.format, PM_FMT_PNG);
    assert_int_equal(failed->spec.hd_strategy, 2); /* resize */
    assert_int_equal(failed->error_code, PM_ECORRUPT);
    assert_string_equal(failed->error, "image: the PNG data is damaged");
    assert_int_equal(failed->spec.strip_gps, 1);
    assert_int_equal(running->state, PM_JOB_RUNNING);
    assert_int_equal(running->spec.format, PM_FMT_UNKNOWN);
    assert_int_equal(running->spec.hd_strategy, 1); /* original */
    assert_int_equal(running->spec.mask_dilate, -3);
    assert_int_equal(pm_journal_count_transitions(j, done->id, PM_JOB_DONE), 1);
    /* the guarded transitions work on upgraded rows */
    pm_job_info r = *running;
    r.state = PM_JOB_QUEUED; /* recovery puts it back */
    assert_int_equal(pm_journal_transition(j, &r, PM_JOB_RUNNING), 0);
    /* a new job never takes a forgotten one's place in the order */
    pm_job_info n = job("00000000000000000000000000000007", 1);
    int64_t seq;
    assert_int_equal(pm_journal_insert(j, &n, &seq), 0);
    assert_true(seq > 6);
    pm_journal_close(j);

    /* On disk: names, not numbers, and schema version 2. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT task, format, hd_strategy, error_code, strip_gps, typeof(task) FROM"
                                        " jobs WHERE id = '00000000000000000000000000000004'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "inpaint");
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "png");
    assert_string_equal((const char *)sqlite3_column_text(st, 2), "resize");
    assert_string_equal((const char *)sqlite3_column_text(st, 3), "corrupt_image");
    assert_int_equal(sqlite3_column_int(st, 4), 1);
    assert_string_equal((const char *)sqlite3_column_text(st, 5), "text");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* Opening again changes nothing (the upgrade ran once). */
    assert_int_equal(pm_journal_open(path, &j), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(pm_journal_load(j, collect, &s), 0);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.rows[3].state, PM_JOB_QUEUED);
    assert_int_equal(s.rows[2].error_code, PM_ECORRUPT);
    pm_journal_close(j);
}

/* A journal a newer pixmend wrote is refused, and left as it was. */
static void test_newer_schema_refused(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE jobs(id TEXT); PRAGMA user_version = 3;", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    pm_journal *j = NULL;
    assert_int_equal(pm_journal_open(path, &j), PM_EIO);
    assert_null(j);
    assert_non_null(strstr(pm_error_detail(), "schema version 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_transition_reload, setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_not_a_journal, setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_adds_mask_dilate, setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_v0_names_enums, setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, fx_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
