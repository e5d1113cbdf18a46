/* pixmend worker: runs jobs of a fleet's Redis queue (docs/operations.md,
 * Running a fleet). */
#include "cli/cli.h"
#include "cli/sched_opts.h"
#include "cli/worker_http.h"
#include "fleet/fleet.h"
#include "sched/sched.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const pm_optdef opts[] = {
    PM_SCHED_OPTS,
    {"metrics-listen", 0, 1},
    {"name", 0, 1},
    {0},
};

/* The default data directory: a fresh one under $TMPDIR, removed at exit
 * (a worker keeps nothing there but its lock and an empty journal). */
static int temp_data_dir(char *buf, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, len, "%s/pixmend-worker-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(buf) ? 0 : -1;
}

static void remove_temp_dir(const char *dir)
{
    static const char *const names[] = {"journal.sqlite",     "journal.sqlite-wal", "journal.sqlite-shm",
                                        "journal.sqlite-journal", "pixmend.lock"};
    char p[4200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    const char *subs[] = {"inputs", "outputs"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
        rmdir(p);
    }
    rmdir(dir);
}

static char *render_metrics(void *user)
{
    return pm_fleet_worker_metrics(user);
}

static int wait_for_stop(void)
{
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    for (;;) {
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(&stop_sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            return sig;
    }
}

static int run(int argc, char **argv)
{
    pm_args a;
    int rc = pm_cli_parse(&pm_cmd_worker, opts, 0, 0, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    pm_sched_opts o;
    if (pm_cli_sched_opts(&pm_cmd_worker, opts, &a, argc, argv, &o))
        return 2;
    pm_mem_return_large_blocks(); /* finished jobs give their memory back */
    if (!o.fc.redis_url) {
        pm_cli_error(&pm_cmd_worker, "--redis URL is required: the fleet's Redis, e.g. redis://10.0.0.5:6379/0");
        return 2;
    }
    if (o.sc.workers < 1) {
        pm_cli_error(&pm_cmd_worker, "--workers must be at least 1 (jobs this worker runs at once)");
        return 2;
    }
    o.fc.name = pm_cli_get(opts, &a, "name");
    o.sc.queue_max = o.sc.workers;
    o.sc.max_wait = 0;
    if (pm_log_setup((enum pm_log_level)o.log_level, (enum pm_log_format)o.log_format, o.log_file)) {
        pm_cli_error(&pm_cmd_worker, "%s", pm_error_detail());
        return 1;
    }
    pm_log_install_sighup();
    signal(SIGPIPE, SIG_IGN); /* a write to a Redis that went away fails with EPIPE; the worker reconnects */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);

    int exit_code = 1;
    char tmpdir[4096] = "";
    pm_sched *local = NULL;
    pm_fleet_worker *fw = NULL;
    pm_worker_http *http = NULL;
    char names[256];
    if (pm_fleet_probe(o.fc.redis_url)) { /* before loading models: say so at once */
        pm_cli_error(&pm_cmd_worker, "%s", pm_error_detail());
        goto close_log;
    }
    if (!o.sc.data_dir) {
        if (temp_data_dir(tmpdir, sizeof tmpdir)) {
            pm_cli_error(&pm_cmd_worker, "cannot create a directory under $TMPDIR; give --data-dir DIR");
            goto close_log;
        }
        o.sc.data_dir = tmpdir;
    }
    if (pm_sched_create(&o.sc, &local)) {
        pm_cli_error(&pm_cmd_worker, "%s", pm_error_detail());
        goto remove_dir;
    }
    if (pm_cli_load_models(&pm_cmd_worker, local, &o, names, sizeof names))
        goto destroy_sched;
    if (pm_sched_start(local) || pm_fleet_worker_start(&o.fc, &o.sc, local, &fw)) {
        pm_cli_error(&pm_cmd_worker, "%s", pm_error_detail());
        goto destroy_sched;
    }
    const char *ml = pm_cli_get(opts, &a, "metrics-listen");
    int mport = 0;
    if (ml && pm_worker_http_start(ml, render_metrics, fw, &http, &mport)) {
        pm_cli_error(&pm_cmd_worker, "%s", pm_error_detail());
        goto stop_worker;
    }
    printf("pixmend worker taking jobs from %s (models: %s; %d at once)", o.fc.redis_url, names, o.sc.workers);
    if (http)
        printf("; metrics on http://%.*s:%d/metrics", (int)(strrchr(ml, ':') - ml), ml, mport);
    printf("\n");
    fflush(stdout);

    int sig = wait_for_stop();
    pm_info("shutdown", "%s received: finishing running jobs (up to %g s), then handing the others back",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", o.drain_seconds);
    exit_code = 0;
    pm_worker_http_stop(http);
stop_worker:
    pm_fleet_worker_stop(fw);
destroy_sched:
    pm_sched_destroy(local);
remove_dir:
    if (tmpdir[0])
        remove_temp_dir(tmpdir);
    if (exit_code == 0)
        pm_info("stopped", "pixmend worker stopped");
close_log:
    pm_log_shutdown();
    return exit_code;
}

const pm_command pm_cmd_worker = {
    "worker",
    "run jobs from a fleet's Redis queue (see serve --redis)",
    "usage: pixmend worker --redis URL [options]\n"
    "\n"
    "Takes jobs from the fleet's Redis Streams (fast lane first), runs them and\n"
    "stores their results in Redis, where any `pixmend serve --redis` front serves\n"
    "them. Each worker admits jobs by its own memory law and budget.\n"
    "\n"
    "      --redis URL             redis://HOST[:PORT][/DB] (required); unreachable at start: exit 1\n"
    "  -m, --model NAME=FILE       load a model (repeatable), as serve; load the same models on\n"
    "                              every worker and front; the built-in patchmatch is always loaded\n"
    "      --workers N             jobs run at once (default 1)\n"
    "  -t, --threads N             engine threads per job (default 0 = all cores)\n"
    "      --precision P           fp32 (default) or bf16 for LaMa and DDColor (CPUs with\n"
    "                              avx512_bf16 or AMX; refused at start elsewhere)\n"
    "      --mem-budget B|N%       predicted peak memory the running jobs may use together\n"
    "                              (default 70% of host memory or the cgroup limit)\n"
    "      --pause-at F            take no job while memory in use reaches F (default 0.85) ...\n"
    "      --resume-below F        ... until it falls below F (default 0.75)\n"
    "      --claim-idle S          take over a job whose worker stopped refreshing its claim S\n"
    "                              seconds ago (default 30; a running worker refreshes every S/3)\n"
    "      --max-deliveries N      fail a job handed to workers more than N times (default 3)\n"
    "      --drain-seconds S       on SIGTERM, let running jobs finish for S seconds (default 30),\n"
    "                              then hand them back to the queue; exit 0\n"
    "      --metrics-listen H:P    serve /metrics and /healthz on this address (port 0 = any)\n"
    "      --name NAME             consumer name in Redis (default HOST-PID)\n"
    "      --max-upload B, --max-pixels N, --max-side N, --job-timeout S\n"
    "                              limits, as serve (default 64M, 16M, 8192, 600)\n"
    "      --result-ttl S          seconds results are kept in Redis (default 86400)\n"
    "      --results-max-bytes B   cap on results in Redis, oldest evicted first (default 10G)\n"
    "  -d, --data-dir DIR          local scratch (default: a new directory under $TMPDIR)\n"
    "      --log-level L, --log-format F, --log-file FILE   as serve\n"
    "      --job-delay-ms N        testing: each job first waits N ms (cancellable, as progress)\n",
    run,
};
