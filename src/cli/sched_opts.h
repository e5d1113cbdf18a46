/* Options shared by `pixmend serve` and `pixmend worker`: the scheduler's
 * limits and guard, the models, logging and the fleet. */
#ifndef PM_CLI_SCHED_OPTS_H
#define PM_CLI_SCHED_OPTS_H

#include "cli/cli.h"
#include "fleet/fleet.h"
#include "sched/sched.h"

/* The option table entries both commands parse with pm_cli_sched_opts. */
#define PM_SCHED_OPTS                                                                                             \
    {"data-dir", 'd', 1}, {"model", 'm', 1}, {"workers", 0, 1}, {"threads", 't', 1}, {"max-upload", 0, 1},        \
        {"max-pixels", 0, 1}, {"max-side", 0, 1}, {"job-timeout", 0, 1}, {"result-ttl", 0, 1},                   \
        {"results-max-bytes", 0, 1}, {"drain-seconds", 0, 1}, {"log-level", 0, 1}, {"log-format", 0, 1},          \
        {"log-file", 0, 1}, {"job-delay-ms", 0, 1}, {"mem-budget", 0, 1}, {"pause-at", 0, 1},                     \
        {"resume-below", 0, 1}, {"redis", 0, 1}, {"claim-idle", 0, 1}, {"max-deliveries", 0, 1},        \
        {"precision", 0, 1}

#define PM_CLI_MAX_MODEL_ARGS 8

/* What the shared options say. */
typedef struct pm_sched_opts {
    pm_sched_config sc;
    pm_fleet_config fc;           /* fc.redis_url NULL: no --redis */
    uint64_t max_upload;          /* --max-upload (also the decode limit on file bytes) */
    double drain_seconds;
    int log_level;
    int log_format;               /* enum pm_log_format */
    const char *log_file;
    const char *model_args[PM_CLI_MAX_MODEL_ARGS]; /* NAME=FILE, checked */
    int nmodels;
} pm_sched_opts;

/* Seconds >= lo, or 2 after an error line. */
int pm_cli_seconds(const pm_command *cmd, const char *opt, const char *s, double lo, double *out);

/* Parses the shared options of `a` (defaults first) into *o. `min_workers`:
 * 0 where --workers 0 is allowed (with --redis). Returns 0, or 2 after an
 * error line. */
int pm_cli_sched_opts(const pm_command *cmd, const pm_optdef *opts, const pm_args *a, int argc, char **argv,
                      pm_sched_opts *o);

/* Loads the built-in PatchMatch and each --model into `sched`; the names go
 * to `names` ("patchmatch, lama"). 0, or 1 after an error line. */
int pm_cli_load_models(const pm_command *cmd, pm_sched *sched, const pm_sched_opts *o, char *names, size_t len);

/* Every value of a repeatable option (the parser keeps only the last). */
int pm_cli_collect_repeated(const pm_optdef *opts, int argc, char **argv, const char *name, char short_name,
                            const char **out, int max);

#endif
