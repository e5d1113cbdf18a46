/* The SQLite job journal (see journal.h). */
#include "sched/journal.h"
#include "base/base.h"
#include "pipeline/pipeline.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The result columns of the select of jobs, by name: each member holds the
 * index of the column of the same name (found once, when the journal opens). */
#define JOB_COLUMN_LIST                                                                                      \
    X(seq) X(id) X(state) X(task) X(model) X(priority) X(format) X(quality) X(hd_strategy) X(mask_resize)   \
    X(has_mask) X(width) X(height) X(created) X(started) X(finished) X(attempts) X(result_path)              \
    X(result_bytes) X(error_code) X(error_message) X(input_size) X(mask_dilate) X(owner) X(strip_metadata)  \
    X(strip_gps) X(jpeg_reencode)

typedef struct job_cols {
#define X(f) int f;
    JOB_COLUMN_LIST
#undef X
} job_cols;

struct pm_journal {
    sqlite3 *db;            /* owned */
    pthread_mutex_t lock;   /* one statement sequence at a time */
    sqlite3_stmt *ins, *upd, *trans, *sel, *del_job, *del_trans, *count; /* owned */
    job_cols cols;          /* of sel */
};

static int find_columns(sqlite3_stmt *st, job_cols *c);

/* The schema this code writes (PRAGMA user_version). Version 0 is the
 * journal before the version was kept: task, format, hd_strategy and
 * error_code were C enum values, the file options one bit field. Version 2
 * stores every enum by its name (the API's names) and each option in its
 * own column. Statements name their columns and parameters. */
#define JOURNAL_VERSION 2

#define JOBS_COLUMNS_V2                                                                                     \
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"                                                              \
    " id TEXT NOT NULL UNIQUE,"                                                                            \
    " state TEXT NOT NULL,"              /* pm_job_state_name */                                          \
    " task TEXT NOT NULL,"               /* pm_task_name */                                               \
    " model TEXT NOT NULL,"                                                                                \
    " priority INTEGER NOT NULL,"        /* 0..PM_PRIORITY_MAX, a number */                               \
    " format TEXT NOT NULL,"             /* 'png', 'jpeg', 'webp'; '' = the input's */                    \
    " quality INTEGER NOT NULL,"                                                                           \
    " hd_strategy TEXT NOT NULL,"        /* pm_hd_strategy_name */                                        \
    " mask_resize INTEGER NOT NULL, has_mask INTEGER NOT NULL,"                                            \
    " width INTEGER NOT NULL, height INTEGER NOT NULL,"                                                    \
    " created REAL NOT NULL, started REAL NOT NULL DEFAULT 0, finished REAL NOT NULL DEFAULT 0,"           \
    " attempts INTEGER NOT NULL DEFAULT 0,"                                                                \
    " result_path TEXT NOT NULL DEFAULT '', result_bytes INTEGER NOT NULL DEFAULT 0,"                      \
    " error_code TEXT NOT NULL DEFAULT '', /* pm_error_name; '' = none */"                                \
    " error_message TEXT NOT NULL DEFAULT '',"                                                             \
    " input_size INTEGER NOT NULL DEFAULT 0, mask_dilate INTEGER NOT NULL DEFAULT 0,"                      \
    " owner TEXT NOT NULL DEFAULT '',"                                                                     \
    " strip_metadata INTEGER NOT NULL DEFAULT 0, strip_gps INTEGER NOT NULL DEFAULT 0,"                    \
    " jpeg_reencode INTEGER NOT NULL DEFAULT 0"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS jobs(" JOBS_COLUMNS_V2 ");"
    "CREATE TABLE IF NOT EXISTS transitions("
    " job_id TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,"
    " at REAL NOT NULL, attempt INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS transitions_job ON transitions(job_id);";

/* The columns a version-2 row is read and written with, in one list. */
#define JOB_FIELDS                                                                                         \
    "id, state, task, model, priority, format, quality, hd_strategy, mask_resize, has_mask, width, height, " \
    "created, started, finished, attempts, result_path, result_bytes, error_code, error_message, "         \
    "input_size, mask_dilate, owner, strip_metadata, strip_gps, jpeg_reencode"

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

/* ------------------------------------------------------------- names */

/* The format's id in the one table ('png', 'jpeg', 'webp'); '' for
 * unknown (the input's format). Returns a static string. */
static const char *format_key(enum pm_format f)
{
    const char *id = pm_format_id(f);
    return id ? id : "";
}

/* The format a key names; -1 for a name this version does not know. */
static int format_parse(const char *s)
{
    if (!s[0])
        return PM_FMT_UNKNOWN;
    enum pm_format f = pm_format_parse(s);
    return f == PM_FMT_UNKNOWN ? -1 : (int)f;
}

static int state_parse(const char *s)
{
    for (int i = PM_JOB_QUEUED; i <= PM_JOB_REJECTED; i++)
        if (strcmp(s, pm_job_state_name((pm_job_state)i)) == 0)
            return i;
    return -1;
}

/* SQL function pm_enum_name(kind, value) for the upgrade from version 0:
 * the name of a C enum value the old journal stored as an integer. */
static void sql_enum_name(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *kind = (const char *)sqlite3_value_text(argv[0]);
    int v = sqlite3_value_int(argv[1]);
    const char *name = "";
    if (!kind)
        name = "";
    else if (!strcmp(kind, "task"))
        name = pm_task_name((enum pm_task)v);
    else if (!strcmp(kind, "format"))
        name = v >= PM_FMT_PNG && v <= PM_FMT_WEBP ? format_key((enum pm_format)v) : "";
    else if (!strcmp(kind, "hd_strategy"))
        name = pm_hd_strategy_name(v);
    else if (!strcmp(kind, "error"))
        name = v == PM_OK ? "" : pm_error_name(v);
    sqlite3_result_text(ctx, name, -1, SQLITE_TRANSIENT);
}

/* ------------------------------------------------------------- open, upgrade */

static int exec_err(pm_journal *j, const char *path, const char *what, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(j->db, sql, NULL, NULL, &err) == SQLITE_OK)
        return 0;
    int rc = pm_errorf(PM_EIO, "cannot %s the job journal %s: %s (is it a pixmend journal?)", what, path,
                       err ? err : sqlite3_errmsg(j->db));
    sqlite3_free(err);
    return rc;
}

static int user_version(pm_journal *j, int *v)
{
    sqlite3_stmt *st = NULL;
    *v = 0;
    if (sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_error(j, "reading the schema version");
    if (sqlite3_step(st) == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* 1 when `sql` prepares (a table or column exists), else 0. */
static int prepares(pm_journal *j, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return ok;
}

/* Version 0 to 2, in one transaction: the columns later version-0 journals
 * gained are added first (journals written before colorize took an input
 * size, masks could grow and shrink, jobs had owners, or the file options
 * existed lack them), then every row is copied into the new table with its
 * enums named, and the new table takes the old one's place. */
static int upgrade_from_v0(pm_journal *j, const char *path)
{
    static const char *const added[][2] = {
        {"SELECT input_size FROM jobs LIMIT 0", "ALTER TABLE jobs ADD COLUMN input_size INTEGER NOT NULL DEFAULT 0"},
        {"SELECT mask_dilate FROM jobs LIMIT 0", "ALTER TABLE jobs ADD COLUMN mask_dilate INTEGER NOT NULL DEFAULT 0"},
        {"SELECT owner FROM jobs LIMIT 0", "ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''"},
        {"SELECT file_opts FROM jobs LIMIT 0", "ALTER TABLE jobs ADD COLUMN file_opts INTEGER NOT NULL DEFAULT 0"},
    };
    int rc;
    if (sqlite3_create_function_v2(j->db, "pm_enum_name", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                   sql_enum_name, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(j, "registering the upgrade's names");
    if ((rc = exec_err(j, path, "upgrade", "BEGIN IMMEDIATE")))
        return rc;
    for (size_t i = 0; i < sizeof added / sizeof added[0]; i++)
        if (!prepares(j, added[i][0]) && (rc = exec_err(j, path, "upgrade", added[i][1])))
            goto rollback;
    static const char copy[] =
        "CREATE TABLE jobs_v2(" JOBS_COLUMNS_V2 ");"
        "INSERT INTO jobs_v2(seq, " JOB_FIELDS ")"
        " SELECT seq, id, state, pm_enum_name('task', task), model, priority, pm_enum_name('format', format),"
        " quality, pm_enum_name('hd_strategy', hd_strategy), mask_resize, has_mask, width, height,"
        " created, started, finished, attempts, result_path, result_bytes, pm_enum_name('error', error_code),"
        " error_message, input_size, mask_dilate, owner, (file_opts & 1) != 0, (file_opts & 2) != 0,"
        " (file_opts & 4) != 0 FROM jobs ORDER BY seq;"
        /* keep AUTOINCREMENT's high-water mark: a new job never reuses a forgotten one's seq */
        "UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'),"
        " 0)) WHERE name = 'jobs_v2';"
        "DROP TABLE jobs;"
        "ALTER TABLE jobs_v2 RENAME TO jobs;"
        "PRAGMA user_version = 2;";
    if ((rc = exec_err(j, path, "upgrade", copy)))
        goto rollback;
    if ((rc = exec_err(j, path, "upgrade", "COMMIT")))
        goto rollback;
    pm_logkv(PM_LOG_INFO, "journal_upgraded", "job journal upgraded to schema 2 (enums stored by name)", "path",
             path, NULL);
    return 0;
rollback:
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Brings the database to JOURNAL_VERSION: creates a new one, upgrades an old
 * one, refuses one a newer pixmend wrote. */
static int set_up_schema(pm_journal *j, const char *path)
{
    int v, rc;
    if ((rc = user_version(j, &v)))
        return rc;
    if (v > JOURNAL_VERSION)
        return pm_errorf(PM_EIO,
                         "the job journal %s has schema version %d, newer than this pixmend reads (%d); run the "
                         "newer pixmend or start with another --data-dir",
                         path, v, JOURNAL_VERSION);
    if (v == 0 && prepares(j, "SELECT id FROM jobs LIMIT 0") && (rc = upgrade_from_v0(j, path)))
        return rc;
    if ((rc = exec_err(j, path, "set up", schema)))
        return rc;
    return v == JOURNAL_VERSION ? 0 : exec_err(j, path, "set up", "PRAGMA user_version = 2");
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
    if ((rc = exec_err(j, path, "set up", "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")) ||
        (rc = set_up_schema(j, path)))
        goto close_db;
    if ((rc = prepare(j, "INSERT INTO jobs(" JOB_FIELDS ") VALUES(:id, :state, :task, :model, :priority, :format,"
                         " :quality, :hd_strategy, :mask_resize, :has_mask, :width, :height, :created, :started,"
                         " :finished, :attempts, :result_path, :result_bytes, :error_code, :error_message,"
                         " :input_size, :mask_dilate, :owner, :strip_metadata, :strip_gps, :jpeg_reencode)",
                      &j->ins)) ||
        (rc = prepare(j,
                      "UPDATE jobs SET state = :state, started = :started, finished = :finished,"
                      " attempts = :attempts, result_path = :result_path, result_bytes = :result_bytes,"
                      " error_code = :error_code, error_message = :error_message WHERE id = :id AND state = :from",
                      &j->upd)) ||
        (rc = prepare(j, "INSERT INTO transitions(job_id, from_state, to_state, at, attempt)"
                         " VALUES(:job_id, :from_state, :to_state, :at, :attempt)",
                      &j->trans)) ||
        (rc = prepare(j, "SELECT seq, " JOB_FIELDS " FROM jobs ORDER BY seq", &j->sel)) ||
        (rc = prepare(j, "DELETE FROM jobs WHERE id = :id", &j->del_job)) ||
        (rc = prepare(j, "DELETE FROM transitions WHERE job_id = :id", &j->del_trans)) ||
        (rc = prepare(j, "SELECT count(*) FROM transitions WHERE job_id = :id AND to_state = :to", &j->count)) ||
        (rc = find_columns(j->sel, &j->cols)))
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

/* ------------------------------------------------------------- binding by name */

/* Parameters are bound by name; a name the statement lacks is a bug in this
 * file, reported by step_done as PM_EINTERNAL (b->missing). */
typedef struct binder {
    sqlite3_stmt *st;
    const char *missing; /* first unknown parameter name, or NULL */
} binder;

static int param(binder *b, const char *name)
{
    int i = sqlite3_bind_parameter_index(b->st, name);
    if (i == 0 && !b->missing)
        b->missing = name;
    return i;
}

static void bind_text(binder *b, const char *name, const char *v)
{
    sqlite3_bind_text(b->st, param(b, name), v, -1, SQLITE_STATIC);
}

static void bind_int(binder *b, const char *name, int64_t v)
{
    sqlite3_bind_int64(b->st, param(b, name), (sqlite3_int64)v);
}

static void bind_double(binder *b, const char *name, double v)
{
    sqlite3_bind_double(b->st, param(b, name), v);
}

/* The index of result column `name` of `st`; -1 if it has none. */
static int column(sqlite3_stmt *st, const char *name)
{
    for (int i = 0, n = sqlite3_column_count(st); i < n; i++)
        if (!strcmp(sqlite3_column_name(st, i), name))
            return i;
    return -1;
}

/* Finds every column of JOB_COLUMN_LIST in `st`; PM_EINTERNAL names one it lacks. */
static int find_columns(sqlite3_stmt *st, job_cols *c)
{
#define X(f)                                                                                                 \
    if ((c->f = column(st, #f)) < 0)                                                                         \
        return pm_errorf(PM_EINTERNAL, "job journal: the select of jobs has no column %s", #f);
    JOB_COLUMN_LIST
#undef X
    return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static int exec_simple(pm_journal *j, const char *sql)
{
    if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(j, sql);
    return 0;
}

/* Steps a bound statement to its end and resets it. */
static int step_done(pm_journal *j, binder *b, const char *what)
{
    if (b->missing) {
        sqlite3_reset(b->st);
        sqlite3_clear_bindings(b->st);
        return pm_errorf(PM_EINTERNAL, "job journal: %s: the statement has no parameter %s", what, b->missing);
    }
    int r = sqlite3_step(b->st);
    sqlite3_reset(b->st);
    sqlite3_clear_bindings(b->st);
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
    binder b = {j->trans, NULL};
    bind_text(&b, ":job_id", info->id);
    bind_text(&b, ":from_state", from);
    bind_text(&b, ":to_state", pm_job_state_name(info->state));
    bind_double(&b, ":at", at);
    bind_int(&b, ":attempt", info->attempts);
    return step_done(j, &b, "recording a transition");
}

/* Binds what a transition changes (also part of an insert). */
static void bind_progress(binder *b, const pm_job_info *info)
{
    bind_text(b, ":id", info->id);
    bind_text(b, ":state", pm_job_state_name(info->state));
    bind_double(b, ":started", info->started);
    bind_double(b, ":finished", info->finished);
    bind_int(b, ":attempts", info->attempts);
    bind_text(b, ":result_path", info->result_path);
    bind_int(b, ":result_bytes", (int64_t)info->result_bytes);
    bind_text(b, ":error_code", info->error_code ? pm_error_name(info->error_code) : "");
    bind_text(b, ":error_message", info->error);
}

int pm_journal_insert(pm_journal *j, const pm_job_info *info, int64_t *seq)
{
    int rc = tx_begin(j);
    if (rc)
        return rc;
    const pm_job_spec *sp = &info->spec;
    binder b = {j->ins, NULL};
    bind_progress(&b, info);
    bind_text(&b, ":task", pm_task_name(sp->task));
    bind_text(&b, ":model", sp->model);
    bind_int(&b, ":priority", sp->priority);
    bind_text(&b, ":format", format_key(sp->format));
    bind_int(&b, ":quality", sp->quality);
    bind_text(&b, ":hd_strategy", pm_hd_strategy_name(sp->hd_strategy));
    bind_int(&b, ":mask_resize", sp->mask_resize);
    bind_int(&b, ":has_mask", info->has_mask);
    bind_int(&b, ":width", info->width);
    bind_int(&b, ":height", info->height);
    bind_double(&b, ":created", info->created);
    bind_int(&b, ":input_size", sp->input_size);
    bind_int(&b, ":mask_dilate", sp->mask_dilate);
    bind_text(&b, ":owner", sp->owner);
    bind_int(&b, ":strip_metadata", sp->strip_metadata != 0);
    bind_int(&b, ":strip_gps", sp->strip_gps != 0);
    bind_int(&b, ":jpeg_reencode", sp->jpeg_reencode != 0);
    if ((rc = step_done(j, &b, "inserting a job")))
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
    binder b = {j->upd, NULL};
    bind_progress(&b, info);
    bind_text(&b, ":from", pm_job_state_name(from));
    if ((rc = step_done(j, &b, "updating a job")))
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

/* One row of the jobs table as a job; 0, or -1 for a row whose names this
 * version does not know (a newer pixmend wrote it: left alone). */
static int read_row(sqlite3_stmt *st, const job_cols *c, pm_job_info *in)
{
    memset(in, 0, sizeof *in);
    int state = state_parse(col_text(st, c->state));
    int task = pm_task_parse(col_text(st, c->task));
    int format = format_parse(col_text(st, c->format));
    int strategy = pm_hd_strategy_parse(col_text(st, c->hd_strategy));
    if (state < 0 || task < 0 || format < 0 || strategy < 0)
        return -1;
    snprintf(in->id, sizeof in->id, "%s", col_text(st, c->id));
    in->state = (pm_job_state)state;
    pm_job_spec *sp = &in->spec;
    sp->task = (enum pm_task)task;
    snprintf(sp->model, sizeof sp->model, "%s", col_text(st, c->model));
    sp->priority = sqlite3_column_int(st, c->priority);
    sp->format = (enum pm_format)format;
    sp->quality = sqlite3_column_int(st, c->quality);
    sp->hd_strategy = strategy;
    sp->mask_resize = sqlite3_column_int(st, c->mask_resize);
    sp->input_size = sqlite3_column_int(st, c->input_size);
    sp->mask_dilate = sqlite3_column_int(st, c->mask_dilate);
    snprintf(sp->owner, sizeof sp->owner, "%s", col_text(st, c->owner));
    sp->strip_metadata = sqlite3_column_int(st, c->strip_metadata) != 0;
    sp->strip_gps = sqlite3_column_int(st, c->strip_gps) != 0;
    sp->jpeg_reencode = sqlite3_column_int(st, c->jpeg_reencode) != 0;
    in->has_mask = sqlite3_column_int(st, c->has_mask);
    in->width = sqlite3_column_int(st, c->width);
    in->height = sqlite3_column_int(st, c->height);
    in->created = sqlite3_column_double(st, c->created);
    in->started = sqlite3_column_double(st, c->started);
    in->finished = sqlite3_column_double(st, c->finished);
    in->attempts = sqlite3_column_int(st, c->attempts);
    snprintf(in->result_path, sizeof in->result_path, "%s", col_text(st, c->result_path));
    in->result_bytes = (uint64_t)sqlite3_column_int64(st, c->result_bytes);
    const char *code = col_text(st, c->error_code);
    in->error_code = code[0] ? pm_error_parse(code) : 0;
    snprintf(in->error, sizeof in->error, "%s", col_text(st, c->error_message));
    in->queue_position = -1;
    return 0;
}

int pm_journal_load(pm_journal *j, pm_journal_row_fn fn, void *user)
{
    int rc = 0;
    pthread_mutex_lock(&j->lock);
    sqlite3_stmt *st = j->sel;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        pm_job_info in;
        if (read_row(st, &j->cols, &in))
            continue;
        if ((rc = fn(user, &in, (int64_t)sqlite3_column_int64(st, j->cols.seq))) != 0)
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
    binder b = {j->del_job, NULL};
    bind_text(&b, ":id", id);
    if ((rc = step_done(j, &b, "deleting a job")))
        goto end_tx;
    binder t = {j->del_trans, NULL};
    bind_text(&t, ":id", id);
    rc = step_done(j, &t, "deleting transitions");
end_tx:
    return tx_end(j, rc);
}

int pm_journal_count_transitions(pm_journal *j, const char *id, pm_job_state to)
{
    int n = -1;
    pthread_mutex_lock(&j->lock);
    binder b = {j->count, NULL};
    bind_text(&b, ":id", id);
    bind_text(&b, ":to", pm_job_state_name(to));
    if (!b.missing && sqlite3_step(j->count) == SQLITE_ROW)
        n = sqlite3_column_int(j->count, 0);
    sqlite3_reset(j->count);
    sqlite3_clear_bindings(j->count);
    pthread_mutex_unlock(&j->lock);
    return n;
}
