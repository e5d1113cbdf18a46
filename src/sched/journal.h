/* The job journal: one SQLite database in WAL mode with synchronous=FULL, so
 * that a committed row survives a crash of the process or the machine.
 *
 * Table jobs holds one row per accepted job (id unique); table transitions
 * holds one row per state change, written in the same transaction as the
 * change, guarded by the state the job must be in (so a job cannot reach
 * `done` twice). Enums are stored by name; PRAGMA user_version is the schema
 * version (2), and older journals are upgraded when opened (journal.c,
 * docs/operations.md). Thread-safe: one connection behind a mutex. */
#ifndef PM_JOURNAL_H
#define PM_JOURNAL_H

#include "sched/sched.h"

#include <stdint.h>

typedef struct pm_journal pm_journal;

/* Opens or creates the journal at `path`, upgrading an older one; PM_EIO
 * for one a newer pixmend wrote. Caller owns *out (pm_journal_close). */
int pm_journal_open(const char *path, pm_journal **out);
void pm_journal_close(pm_journal *j);

/* Commits a new job (state from info->state, normally queued) and a
 * transition from nothing to that state. *seq receives its submission order. */
int pm_journal_insert(pm_journal *j, const pm_job_info *info, int64_t *seq);

/* Commits a state change of job info->id from `from` to info->state, with
 * the job's times, attempts, result and error as in *info. Returns
 * PM_EINTERNAL (and changes nothing) if the job is not in state `from`. */
int pm_journal_transition(pm_journal *j, const pm_job_info *info, pm_job_state from);

/* Calls fn for every job in submission order; stops early if fn returns
 * non-zero (and returns that value). */
typedef int (*pm_journal_row_fn)(void *user, const pm_job_info *info, int64_t seq);
int pm_journal_load(pm_journal *j, pm_journal_row_fn fn, void *user);

/* Deletes job `id` and its transitions (after its result expired). */
int pm_journal_forget(pm_journal *j, const char *id);

/* How many transitions of job `id` led to `to` (tests and audits). */
int pm_journal_count_transitions(pm_journal *j, const char *id, pm_job_state to);

#endif
