/* Options shared by `pixmend serve` and `pixmend worker` (sched_opts.h). */
#include "cli/sched_opts.h"
#include "monitor/monitor.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int pm_cli_collect_repeated(const pm_optdef *opts, int argc, char **argv, const char *name, char short_name,
                            const char **out, int max)
{
    int n = 0;
    size_t nl = strlen(name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        const char *val = NULL;
        if (strncmp(a, "--", 2) == 0 && strncmp(a + 2, name, nl) == 0 && a[2 + nl] == '=') {
            val = a + 3 + nl;
        } else if ((strncmp(a, "--", 2) == 0 && strcmp(a + 2, name) == 0) ||
                   (short_name && a[0] == '-' && a[1] == short_name && a[2] == '\0')) {
            if (i + 1 < argc)
                val = argv[++i];
        } else if (a[0] == '-' && !strchr(a, '=')) {
            /* Skip the value of another option that takes one. */
            for (int k = 0; opts[k].name; k++)
                if (opts[k].has_arg && ((a[1] == '-' && strcmp(a + 2, opts[k].name) == 0) ||
                                        (a[1] == opts[k].short_name && a[2] == '\0' && opts[k].short_name))) {
                    i++;
                    break;
                }
        }
        if (val && n < max)
            out[n++] = val;
    }
    return n;
}

int pm_cli_seconds(const pm_command *cmd, const char *opt, const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo) {
        pm_cli_error(cmd, "--%s must be a number of seconds >= %g, not '%s'", opt, lo, s);
        return 2;
    }
    *out = v;
    return 0;
}

/* A fraction in (0, 1]: 0.85 or 85%. */
static int parse_fraction(const pm_command *cmd, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && *end == '%' && end[1] == '\0') {
        v /= 100;
        end++;
    }
    if (errno || end == s || *end || !(v > 0 && v <= 1)) {
        pm_cli_error(cmd, "--%s must be a fraction above 0 and at most 1 (e.g. 0.85 or 85%%), not '%s'", opt, s);
        return 2;
    }
    *out = v;
    return 0;
}

int pm_cli_mem_budget(const pm_command *cmd, const char *s, uint64_t *out)
{
    size_t len = strlen(s);
    if (len > 1 && s[len - 1] == '%') {
        char *end;
        errno = 0;
        double pct = strtod(s, &end);
        if (errno || end != s + len - 1 || !(pct > 0) || pct > 100) {
            pm_cli_error(cmd, "--mem-budget %s: a share must be a percentage from 0 to 100, such as 60%%", s);
            return 2;
        }
        *out = pm_memory_share(pct / 100);
    } else if (pm_cli_size(cmd, "mem-budget", s, out)) {
        return 2;
    }
    if (*out < (1u << 20)) {
        pm_cli_error(cmd, "--mem-budget must be at least 1M (bytes the running jobs may use together)");
        return 2;
    }
    return 0;
}

/* --log-level, --log-format, --log-file. */
static int log_opts(const pm_command *cmd, const pm_optdef *opts, const pm_args *a, pm_sched_opts *o)
{
    const char *s;
    o->log_level = PM_LOG_INFO;
    if ((s = pm_cli_get(opts, a, "log-level")) && (o->log_level = pm_log_level_parse(s)) < 0) {
        pm_cli_error(cmd, "--log-level must be debug, info, warn, error or off, not '%s'", s);
        return 2;
    }
    o->log_format = PM_LOG_TEXT;
    if ((s = pm_cli_get(opts, a, "log-format"))) {
        if (strcmp(s, "json") == 0)
            o->log_format = PM_LOG_JSON;
        else if (strcmp(s, "text") != 0) {
            pm_cli_error(cmd, "--log-format must be text or json, not '%s'", s);
            return 2;
        }
    }
    o->log_file = pm_cli_get(opts, a, "log-file");
    return 0;
}

/* --redis, --claim-idle, --max-deliveries. */
static int fleet_opts(const pm_command *cmd, const pm_optdef *opts, const pm_args *a, pm_sched_opts *o)
{
    const char *s;
    pm_fleet_default_config(&o->fc);
    o->fc.drain_seconds = o->drain_seconds;
    o->fc.redis_url = pm_cli_get(opts, a, "redis");
    if (o->fc.redis_url && pm_fleet_check_url(o->fc.redis_url)) {
        pm_cli_error(cmd, "%s", pm_error_detail());
        return 2;
    }
    if ((s = pm_cli_get(opts, a, "claim-idle")) && pm_cli_seconds(cmd, "claim-idle", s, 0.1, &o->fc.claim_idle))
        return 2;
    if (pm_cli_opt_int(cmd, opts, a, "max-deliveries", 1, 1000, &o->fc.max_deliveries))
        return 2;
    if (!o->fc.redis_url && (pm_cli_get(opts, a, "claim-idle") || pm_cli_get(opts, a, "max-deliveries"))) {
        pm_cli_error(cmd, "--claim-idle and --max-deliveries apply to a fleet; give --redis URL too");
        return 2;
    }
    return 0;
}

int pm_cli_sched_opts(const pm_command *cmd, const pm_optdef *opts, const pm_args *a, int argc, char **argv,
                      pm_sched_opts *o)
{
    const char *s;
    memset(o, 0, sizeof *o);
    pm_sched_config *sc = &o->sc;
    pm_sched_default_config(sc);
    o->max_upload = 64u << 20;
    o->drain_seconds = 30;
    if ((s = pm_cli_get(opts, a, "data-dir")))
        sc->data_dir = s;
    int redis = pm_cli_get(opts, a, "redis") != NULL;
    if (!redis && (s = pm_cli_get(opts, a, "workers")) && strcmp(s, "0") == 0) {
        pm_cli_error(cmd, "--workers 0 (a front that runs no job) needs --redis URL: without a fleet "
                          "nothing would run the jobs");
        return 2;
    }
    if (pm_cli_opt_int(cmd, opts, a, "workers", redis ? 0 : 1, 64, &sc->workers))
        return 2;
    if (pm_cli_opt_int(cmd, opts, a, "threads", 0, 1024, &sc->threads))
        return 2;
    if ((s = pm_cli_get(opts, a, "precision"))) {
        if (strcmp(s, "fp32") != 0 && strcmp(s, "bf16") != 0) {
            pm_cli_error(cmd, "--precision must be fp32 or bf16, not '%s'", s);
            return 2;
        }
        sc->precision = strcmp(s, "bf16") == 0 ? PM_PREC_BF16 : PM_PREC_FP32;
    }
    if ((s = pm_cli_get(opts, a, "max-upload"))) {
        if (pm_cli_size(cmd, "max-upload", s, &o->max_upload))
            return 2;
        if (o->max_upload < 1024) {
            pm_cli_error(cmd, "--max-upload must be at least 1K");
            return 2;
        }
    }
    sc->limits.max_file_bytes = o->max_upload;
    if (pm_cli_limits(cmd, opts, a, &sc->limits)) /* --max-pixels, --max-side */
        return 2;
    if ((s = pm_cli_get(opts, a, "job-timeout")) && pm_cli_seconds(cmd, "job-timeout", s, 0, &sc->job_timeout))
        return 2;
    if ((s = pm_cli_get(opts, a, "result-ttl")) && pm_cli_seconds(cmd, "result-ttl", s, 1, &sc->result_ttl))
        return 2;
    if ((s = pm_cli_get(opts, a, "results-max-bytes")) &&
        pm_cli_size(cmd, "results-max-bytes", s, &sc->results_max_bytes))
        return 2;
    if ((s = pm_cli_get(opts, a, "drain-seconds")) && pm_cli_seconds(cmd, "drain-seconds", s, 0, &o->drain_seconds))
        return 2;
    if (pm_cli_opt_int(cmd, opts, a, "job-delay-ms", 0, 3600000, &sc->job_delay_ms))
        return 2;
    sc->max_wait = 900;
    sc->mem_budget = pm_memory_share(PM_DEFAULT_BUDGET_SHARE);
    if ((s = pm_cli_get(opts, a, "mem-budget")) && pm_cli_mem_budget(cmd, s, &sc->mem_budget))
        return 2;
    if ((s = pm_cli_get(opts, a, "pause-at")) && parse_fraction(cmd, "pause-at", s, &sc->pause_at))
        return 2;
    if ((s = pm_cli_get(opts, a, "resume-below")) && parse_fraction(cmd, "resume-below", s, &sc->resume_below))
        return 2;
    if (!(sc->resume_below < sc->pause_at)) {
        pm_cli_error(cmd, "--resume-below (%g) must be below --pause-at (%g)", sc->resume_below, sc->pause_at);
        return 2;
    }
    if (log_opts(cmd, opts, a, o) || fleet_opts(cmd, opts, a, o))
        return 2;
    o->nmodels = pm_cli_collect_repeated(opts, argc, argv, "model", 'm', o->model_args, PM_CLI_MAX_MODEL_ARGS);
    for (int i = 0; i < o->nmodels; i++) {
        const char *eq = strchr(o->model_args[i], '=');
        if (!eq || eq == o->model_args[i] || !eq[1]) {
            pm_cli_error(cmd, "--model must be NAME=FILE (e.g. lama=big-lama.ckpt), not '%s'", o->model_args[i]);
            return 2;
        }
    }
    return 0;
}

int pm_cli_load_models(const pm_command *cmd, pm_sched *sched, const pm_sched_opts *o, char *names, size_t len)
{
    size_t used = 0;
    if (pm_sched_load_model(sched, "patchmatch", NULL)) {
        pm_cli_error(cmd, "cannot load the built-in PatchMatch: %s", pm_error_detail());
        return 1;
    }
    used += (size_t)snprintf(names + used, len - used, "patchmatch");
    for (int i = 0; i < o->nmodels; i++) {
        char name[64];
        const char *eq = strchr(o->model_args[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - o->model_args[i]), o->model_args[i]);
        if (pm_sched_load_model(sched, name, eq + 1)) {
            pm_cli_error(cmd, "cannot load model %s from %s: %s", name, eq + 1, pm_error_detail());
            return 1;
        }
        if (used < len)
            used += (size_t)snprintf(names + used, len - used, ", %s", name);
    }
    return 0;
}
