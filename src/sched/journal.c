/* The SQLite job journal (see journal.h). */
#include "sched/journal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

struct pm_journal {
    sqlite3 *db;            /* owned */
    pthread_mutex_t lock;   /* one statement sequence at a time */
    sqlite3_stmt *ins, *upd, *trans, *sel, *del_job, *del_trans, *count; /* owned */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS jobs("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " state TEXT NOT NULL,"
    " task INTEGER NOT NULL, model TEXT NOT NULL, priority INTEGER NOT NULL,"
    " format INTEGER NOT NULL, quality INTEGER NOT NULL, hd_strategy INTEGER NOT NULL,"
    " mask_resize INTEGER NOT NULL, has_mask INTEGER NOT NULL,"
    " width INTEGER NOT NULL, height INTEGER NOT NULL,"
    " created REAL NOT NULL, started REAL NOT NULL DEFAULT 0, finished REAL NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " result_path TEXT NOT NULL DEFAULT '', result_bytes INTEGER NOT NULL DEFAULT 0,"
    " error_code INTEGER NOT NULL DEFAULT 0, error_message TEXT NOT NULL DEFAULT '',"
    " input_size INTEGER NOT NULL DEFAULT 512,"
    " mask_dilate INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '',"
    " file_opts INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS transitions("
    " job_id TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,"
    " at REAL NOT NULL, attempt INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS transitions_job ON transitions(job_id);";

static int db_error(pm_journal *j, const char *what)
{
    return pm_errorf(PM_EIO, "job journal: %s failed: %s", what, sqlite3_errmsg(j->db));
}

static int prepare(pm_journal *j, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(j->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_error(j, "preparing a statement");
    return 0;
}

static void finalize_all(pm_journal *j)
{
    sqlite3_finalize(j->ins);
    sqlite3_finalize(j->upd);
    sqlite3_finalize(j->trans);
    sqlite3_finalize(j->sel);
    sqlite3_finalize(j->del_job);
    sqlite3_finalize(j->del_trans);
    sqlite3_finalize(j->count);
}

/* Caller owns *out on success. */
int pm_journal_open(const char *path, pm_journal **out)
{
    *out = NULL;
    pm_journal *j = pm_calloc(1, sizeof *j);
    if (!j)
        return pm_errorf(PM_ENOMEM, "out of memory opening the job journal");
    int rc;
    if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = pm_errorf(PM_EIO, "cannot open the job journal %s: %s; check that the data directory is writable",
                       path, j->db ? sqlite3_errmsg(j->db) : "out of memory");
        goto close_db;
    }
    sqlite3_busy_timeout(j->db, 5000);
    char *err = NULL;
    if (sqlite3_exec(j->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &err) !=
            SQLITE_OK ||
        sqlite3_exec(j->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        rc = pm_errorf(PM_EIO, "cannot set up the job journal %s: %s (is it a pixmend journal?)", path,
                       err ? err : "unknown error");
        sqlite3_free(err);
        goto close_db;
    }
    /* Journals written before colorize took an input size, before masks
     * could grow and shrink, before jobs had owners, or before the file
     * options (strip_metadata, strip_gps, jpeg_reencode: bits 1, 2, 4 of
     * file_opts) lack those columns. */
    static const char *const added[][2] = {
        {"SELECT input_size FROM jobs LIMIT 0", "ALTER TABLE jobs ADD COLUMN input_size INTEGER NOT NULL DEFAULT 512"},
        {"SELECT mask_dilate FROM jobs LIMIT 0", "ALTER TABLE jobs ADD COLUMN mask_dilate INTEGER NOT NULL DEFAULT 0"},
        {"SELECT owner FROM jobs LIMIT 0", "ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''"},
        {"SELECT file_opts FROM jobs LIMIT 0", "ALTER TABLE jobs ADD COLUMN file_opts INTEGER NOT NULL DEFAULT 0"},
    };
    for (size_t i = 0; i < sizeof added / sizeof added[0]; i++) {
        sqlite3_stmt *probe = NULL;
        if (sqlite3_prepare_v2(j->db, added[i][0], -1, &probe, NULL) != SQLITE_OK &&
            sqlite3_exec(j->db, added[i][1], NULL, NULL, &err) != SQLITE_OK) {
            rc = pm_errorf(PM_EIO, "cannot upgrade the job journal %s: %s", path, err ? err : "unknown error");
            sqlite3_free(err);
            sqlite3_finalize(probe);
            goto close_db;
        }
        sqlite3_finalize(probe);
    }
    if ((rc = prepare(j,
                      "INSERT INTO jobs(id,state,task,model,priority,format,quality,hd_strategy,"
                      "mask_resize,has_mask,width,height,created,attempts,input_size,mask_dilate,owner,file_opts)"
                      " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      &j->ins)) ||
        (rc = prepare(j,
                      "UPDATE jobs SET state=?, started=?, finished=?, attempts=?, result_path=?,"
                      " result_bytes=?, error_code=?, error_message=? WHERE id=? AND state=?",
                      &j->upd)) ||
        (rc = prepare(j, "INSERT INTO transitions(job_id,from_state,to_state,at,attempt) VALUES(?,?,?,?,?)",
                      &j->trans)) ||
        (rc = prepare(j,
                      "SELECT seq,id,state,task,model,priority,format,quality,hd_strategy,mask_resize,"
                      "has_mask,width,height,created,started,finished,attempts,result_path,"
                      "result_bytes,error_code,error_message,input_size,mask_dilate,owner,file_opts FROM jobs ORDER BY seq",
                      &j->sel)) ||
        (rc = prepare(j, "DELETE FROM jobs WHERE id=?", &j->del_job)) ||
        (rc = prepare(j, "DELETE FROM transitions WHERE job_id=?", &j->del_trans)) ||
        (rc = prepare(j, "SELECT count(*) FROM transitions WHERE job_id=? AND to_state=?", &j->count)))
        goto finalize;
    pthread_mutex_init(&j->lock, NULL);
    *out = j;
    return 0;

finalize:
    finalize_all(j);
close_db:
    sqlite3_close(j->db);
    pm_free(j);
    return rc;
}

void pm_journal_close(pm_journal *j)
{
    if (!j)
        return;
    finalize_all(j);
    sqlite3_close(j->db);
    pthread_mutex_destroy(&j->lock);
    pm_free(j);
}

static int exec_simple(pm_journal *j, const char *sql)
{
    if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(j, sql);
    return 0;
}

static int step_done(pm_journal *j, sqlite3_stmt *st, const char *what)
{
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r == SQLITE_DONE ? 0 : db_error(j, what);
}

/* Takes the journal's lock and opens a write transaction. On failure the
 * lock is released again and the error returned; on success the caller ends
 * with tx_end(). */
static int tx_begin(pm_journal *j)
{
    pthread_mutex_lock(&j->lock);
    int rc = exec_simple(j, "BEGIN IMMEDIATE");
    if (rc)
        pthread_mutex_unlock(&j->lock);
    return rc;
}

/* Ends what tx_begin() opened: commits when rc is 0, otherwise (or when the
 * commit fails) rolls back; releases the lock. Returns the outcome. */
static int tx_end(pm_journal *j, int rc)
{
    if (rc == 0)
        rc = exec_simple(j, "COMMIT");
    if (rc)
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&j->lock);
    return rc;
}

static int add_transition(pm_journal *j, const pm_job_info *info, const char *from, double at)
{
    sqlite3_bind_text(j->trans, 1, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(j->trans, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(j->trans, 3, pm_job_state_name(info->state), -1, SQLITE_STATIC);
    sqlite3_bind_double(j->trans, 4, at);
    sqlite3_bind_int(j->trans, 5, info->attempts);
    return step_done(j, j->trans, "recording a transition");
}

int pm_journal_insert(pm_journal *j, const pm_job_info *info, int64_t *seq)
{
    int rc = tx_begin(j);
    if (rc)
        return rc;
    sqlite3_stmt *st = j->ins;
    sqlite3_bind_text(st, 1, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pm_job_state_name(info->state), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, info->spec.task);
    sqlite3_bind_text(st, 4, info->spec.model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, info->spec.priority);
    sqlite3_bind_int(st, 6, info->spec.format);
    sqlite3_bind_int(st, 7, info->spec.quality);
    sqlite3_bind_int(st, 8, info->spec.hd_strategy);
    sqlite3_bind_int(st, 9, info->spec.mask_resize);
    sqlite3_bind_int(st, 10, info->has_mask);
    sqlite3_bind_int(st, 11, info->width);
    sqlite3_bind_int(st, 12, info->height);
    sqlite3_bind_double(st, 13, info->created);
    sqlite3_bind_int(st, 14, info->attempts);
    sqlite3_bind_int(st, 15, info->spec.input_size);
    sqlite3_bind_int(st, 16, info->spec.mask_dilate);
    sqlite3_bind_text(st, 17, info->spec.owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 18, (info->spec.strip_metadata ? 1 : 0) | (info->spec.strip_gps ? 2 : 0) |
                                 (info->spec.jpeg_reencode ? 4 : 0));
    if ((rc = step_done(j, st, "inserting a job")))
        goto end_tx;
    if (seq)
        *seq = sqlite3_last_insert_rowid(j->db);
    rc = add_transition(j, info, "", info->created);
end_tx:
    return tx_end(j, rc);
}

int pm_journal_transition(pm_journal *j, const pm_job_info *info, pm_job_state from)
{
    int rc = tx_begin(j);
    if (rc)
        return rc;
    sqlite3_stmt *st = j->upd;
    sqlite3_bind_text(st, 1, pm_job_state_name(info->state), -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, info->started);
    sqlite3_bind_double(st, 3, info->finished);
    sqlite3_bind_int(st, 4, info->attempts);
    sqlite3_bind_text(st, 5, info->result_path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)info->result_bytes);
    sqlite3_bind_int(st, 7, info->error_code);
    sqlite3_bind_text(st, 8, info->error, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, pm_job_state_name(from), -1, SQLITE_STATIC);
    if ((rc = step_done(j, st, "updating a job")))
        goto end_tx;
    if (sqlite3_changes(j->db) != 1) {
        rc = pm_errorf(PM_EINTERNAL, "job journal: job %s is not %s, so it cannot become %s", info->id,
                       pm_job_state_name(from), pm_job_state_name(info->state));
        goto end_tx;
    }
    double at = info->finished > 0 ? info->finished : info->started > 0 ? info->started : info->created;
    rc = add_transition(j, info, pm_job_state_name(from), at);
end_tx:
    return tx_end(j, rc);
}

static int state_parse(const char *s)
{
    for (int i = PM_JOB_QUEUED; i <= PM_JOB_REJECTED; i++)
        if (strcmp(s, pm_job_state_name((pm_job_state)i)) == 0)
            return i;
    return -1;
}

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

int pm_journal_load(pm_journal *j, pm_journal_row_fn fn, void *user)
{
    int rc = 0;
    pthread_mutex_lock(&j->lock);
    sqlite3_stmt *st = j->sel;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        pm_job_info in;
        memset(&in, 0, sizeof in);
        int64_t seq = sqlite3_column_int64(st, 0);
        copy_text(in.id, sizeof in.id, sqlite3_column_text(st, 1));
        int state = state_parse((const char *)sqlite3_column_text(st, 2));
        if (state < 0)
            continue; /* a row a newer version wrote; leave it alone */
        in.state = (pm_job_state)state;
        in.spec.task = (enum pm_task)sqlite3_column_int(st, 3);
        copy_text(in.spec.model, sizeof in.spec.model, sqlite3_column_text(st, 4));
        in.spec.priority = sqlite3_column_int(st, 5);
        in.spec.format = (enum pm_format)sqlite3_column_int(st, 6);
        in.spec.quality = sqlite3_column_int(st, 7);
        in.spec.hd_strategy = sqlite3_column_int(st, 8);
        in.spec.mask_resize = sqlite3_column_int(st, 9);
        in.has_mask = sqlite3_column_int(st, 10);
        in.width = sqlite3_column_int(st, 11);
        in.height = sqlite3_column_int(st, 12);
        in.created = sqlite3_column_double(st, 13);
        in.started = sqlite3_column_double(st, 14);
        in.finished = sqlite3_column_double(st, 15);
        in.attempts = sqlite3_column_int(st, 16);
        copy_text(in.result_path, sizeof in.result_path, sqlite3_column_text(st, 17));
        in.result_bytes = (uint64_t)sqlite3_column_int64(st, 18);
        in.error_code = sqlite3_column_int(st, 19);
        copy_text(in.error, sizeof in.error, sqlite3_column_text(st, 20));
        in.spec.input_size = sqlite3_column_int(st, 21);
        in.spec.mask_dilate = sqlite3_column_int(st, 22);
        copy_text(in.spec.owner, sizeof in.spec.owner, sqlite3_column_text(st, 23));
        int fo = sqlite3_column_int(st, 24);
        in.spec.strip_metadata = (fo & 1) != 0;
        in.spec.strip_gps = (fo & 2) != 0;
        in.spec.jpeg_reencode = (fo & 4) != 0;
        in.queue_position = -1;
        if ((rc = fn(user, &in, seq)) != 0)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE && r != SQLITE_ROW)
        rc = db_error(j, "reading jobs");
    sqlite3_reset(st);
    pthread_mutex_unlock(&j->lock);
    return rc;
}

int pm_journal_forget(pm_journal *j, const char *id)
{
    int rc = tx_begin(j);
    if (rc)
        return rc;
    sqlite3_bind_text(j->del_job, 1, id, -1, SQLITE_STATIC);
    if ((rc = step_done(j, j->del_job, "deleting a job")))
        goto end_tx;
    sqlite3_bind_text(j->del_trans, 1, id, -1, SQLITE_STATIC);
    rc = step_done(j, j->del_trans, "deleting transitions");
end_tx:
    return tx_end(j, rc);
}

int pm_journal_count_transitions(pm_journal *j, const char *id, pm_job_state to)
{
    int n = -1;
    pthread_mutex_lock(&j->lock);
    sqlite3_bind_text(j->count, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(j->count, 2, pm_job_state_name(to), -1, SQLITE_STATIC);
    if (sqlite3_step(j->count) == SQLITE_ROW)
        n = sqlite3_column_int(j->count, 0);
    sqlite3_reset(j->count);
    sqlite3_clear_bindings(j->count);
    pthread_mutex_unlock(&j->lock);
    return n;
}
