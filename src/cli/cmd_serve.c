/* pixmend serve: the HTTP service (see docs/api.md). */
#include "cli/cli.h"
#include "cli/serve_access.h"
#include "cli/sched_opts.h"
#include "fleet/fleet.h"
#include "monitor/monitor.h"
#include "sched/sched.h"
#include "server/server.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const pm_optdef opts[] = {
    {"listen", 'l', 1},
    PM_SCHED_OPTS,
    {"models", 0, 1},
    {"queue-max", 0, 1},
    {"web-dir", 0, 1},
    {"request-timeout", 0, 1},
    {"http-threads", 0, 1},
    {"sample-interval", 0, 1},
    {"aging-seconds", 0, 1},
    {"fast-lane-pixels", 0, 1},
    {"max-wait", 0, 1},
    PM_SERVE_ACCESS_OPTS,
    {"test-leak-bytes", 0, 1}, /* testing only, not in --help: see docs/operations.md */
    {0},
};

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The UI folder: --web-dir, else share/pixmend/web next to the binary, else
 * the source tree's web/, else the install prefix's (PM_INSTALL_WEB_DIR). */
static const char *find_web_dir(const char *given, char *buf, size_t len)
{
    if (given)
        return given;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(buf, len, "%s/../share/pixmend/web", exe) < (int)len && is_dir(buf))
                return buf;
        }
    }
#ifdef PM_SOURCE_DIR
    if (snprintf(buf, len, "%s/web", PM_SOURCE_DIR) < (int)len && is_dir(buf))
        return buf;
#endif
#ifdef PM_INSTALL_WEB_DIR
    if (snprintf(buf, len, "%s", PM_INSTALL_WEB_DIR) < (int)len && is_dir(buf))
        return buf;
#endif
    return NULL;
}

/* Everything serve's options say. */
typedef struct serve_opts {
    pm_sched_opts o;           /* shared with `pixmend worker` */
    pm_server_config hc;
    const char *models_mode;   /* auto, list, off */
    char webbuf[4096];
} serve_opts;

/* The options only serve has. 0, or 2 after an error line. */
static int serve_only_opts(const pm_args *a, serve_opts *so)
{
#define OPT(name) pm_cli_get(opts, a, name)
    pm_sched_config *sc = &so->o.sc;
    pm_server_config *hc = &so->hc;
    const char *s;
    pm_server_default_config(hc);
    hc->max_upload = so->o.max_upload;
    if ((s = OPT("listen")))
        hc->listen = s;
    if (pm_cli_opt_int(&pm_cmd_serve, opts, a, "queue-max", 1, 1000000, &sc->queue_max))
        return 2;
    if ((s = OPT("request-timeout"))) {
        double t;
        if (pm_cli_seconds(&pm_cmd_serve, "request-timeout", s, 0.1, &t))
            return 2;
        hc->request_timeout_ms = (int)(t * 1000);
    }
    if (pm_cli_opt_int(&pm_cmd_serve, opts, a, "http-threads", 4, 4096, &hc->http_threads))
        return 2;
    if ((s = OPT("test-leak-bytes")) && pm_cli_size(&pm_cmd_serve, "test-leak-bytes", s, &sc->test_leak_bytes))
        return 2;
    if ((s = OPT("sample-interval")) &&
        pm_cli_seconds(&pm_cmd_serve, "sample-interval", s, 0.01, &hc->sample_interval))
        return 2;
    if ((s = OPT("aging-seconds")) && pm_cli_seconds(&pm_cmd_serve, "aging-seconds", s, 0, &sc->aging_seconds))
        return 2;
    if ((s = OPT("fast-lane-pixels")) && pm_cli_pixels(&pm_cmd_serve, "fast-lane-pixels", s, &sc->fast_lane_pixels))
        return 2;
    if ((s = OPT("max-wait")) && pm_cli_seconds(&pm_cmd_serve, "max-wait", s, 0, &sc->max_wait))
        return 2;
    so->models_mode = OPT("models") ? OPT("models") : "list";
    if (strcmp(so->models_mode, "auto") != 0 && strcmp(so->models_mode, "list") != 0 &&
        strcmp(so->models_mode, "off") != 0) {
        pm_cli_error(&pm_cmd_serve, "--models must be auto, list or off, not '%s'", so->models_mode);
        return 2;
    }
    hc->web_dir = find_web_dir(OPT("web-dir"), so->webbuf, sizeof so->webbuf);
    if (OPT("web-dir") && !is_dir(hc->web_dir)) {
        pm_cli_error(&pm_cmd_serve, "--web-dir %s is not a directory", hc->web_dir);
        return 2;
    }
    return 0;
#undef OPT
}

static void announce(const serve_opts *so, pm_server *srv, pm_auth *auth, const char *names, int local_workers)
{
    const pm_sched_config *sc = &so->o.sc;
    const char *host = pm_server_host(srv);
    printf("pixmend serving on %s://%s:%d (models: %s)\n", so->hc.tls_cert ? "https" : "http",
           strcmp(host, "0.0.0.0") == 0 ? "0.0.0.0" : host, pm_server_port(srv), names);
    fflush(stdout);
    pm_logkv(PM_LOG_INFO, "serving", "pixmend serving", "listen", so->hc.listen, "models", names, "data_dir",
             sc->data_dir, NULL);
    pm_serve_access_announce(&so->hc, host, auth);
    char budget[32], marks[48], lane[32], nw[16];
    snprintf(budget, sizeof budget, "%llu", (unsigned long long)sc->mem_budget);
    snprintf(marks, sizeof marks, "%.2f/%.2f", sc->pause_at, sc->resume_below);
    snprintf(lane, sizeof lane, "%llu", (unsigned long long)sc->fast_lane_pixels);
    pm_logkv(PM_LOG_INFO, "admission", "admission: memory budget, pause/resume marks, fast lane", "budget_bytes",
             budget, "marks", marks, "fast_lane_pixels", lane, NULL);
    snprintf(nw, sizeof nw, "%d", local_workers);
    if (so->o.fc.redis_url)
        pm_logkv(PM_LOG_INFO, "fleet_front", "jobs live in the fleet's Redis", "redis", so->o.fc.redis_url,
                 "local_workers", nw, NULL);
}

/* Waits for SIGTERM or SIGINT (reloading the API keys when asked); returns the signal. */
static int wait_for_stop(const sigset_t *stop_sigs, pm_server *srv, pm_auth *auth)
{
    for (;;) {
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(stop_sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            return sig;
        if (pm_serve_access_poll(auth))
            pm_server_keys_reloaded(srv);
    }
}

/* serve --redis --workers N (N > 0): this process also runs N jobs at once
 * from the fleet's queue, in a scheduler of its own (DATA/worker). */
static int start_local_worker(const serve_opts *so, int nworkers, char *dir, size_t dirlen, pm_sched **local,
                              pm_fleet_worker **fw)
{
    pm_sched_config wc = so->o.sc;
    snprintf(dir, dirlen, "%s/worker", so->o.sc.data_dir ? so->o.sc.data_dir : "pixmend-data");
    wc.data_dir = dir;
    wc.store = NULL;
    wc.workers = nworkers;
    wc.queue_max = nworkers;
    wc.max_wait = 0;
    char names[256];
    if (pm_sched_create(&wc, local)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        return 1;
    }
    if (pm_cli_load_models(&pm_cmd_serve, *local, &so->o, names, sizeof names))
        return 1;
    if (pm_sched_start(*local) || pm_fleet_worker_start(&so->o.fc, &wc, *local, fw)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        return 1;
    }
    return 0;
}

static int run(int argc, char **argv)
{
    pm_args a;
    int rc = pm_cli_parse(&pm_cmd_serve, opts, 0, 0, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    serve_opts so;
    if (pm_cli_sched_opts(&pm_cmd_serve, opts, &a, argc, argv, &so.o) || serve_only_opts(&a, &so))
        return 2;
    pm_mem_return_large_blocks(); /* finished jobs give their memory back */
    pm_sched_config *sc = &so.o.sc;
    pm_auth *auth = NULL;
    if ((rc = pm_serve_access_setup(opts, &a, &so.hc, sc, &auth)))
        return rc;
    if (pm_log_setup((enum pm_log_level)so.o.log_level, (enum pm_log_format)so.o.log_format, so.o.log_file)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        pm_auth_destroy(auth);
        return 1;
    }
    pm_log_install_sighup();
    pm_serve_access_sighup();

    /* SIGTERM and SIGINT are taken by sigtimedwait below; no thread sees them. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);

    int exit_code = 1, local_workers = sc->workers;
    pm_sched *sched = NULL, *local = NULL;
    pm_server *srv = NULL;
    pm_jobstore *fleet = NULL;
    pm_fleet_worker *fw = NULL;
    char names[256], wdir[4200];
    if (so.o.fc.redis_url) {
        signal(SIGPIPE, SIG_IGN); /* a write to a Redis that went away fails with EPIPE, answered 503 */
        if (pm_fleet_front_open(&so.o.fc, sc, &fleet)) {
            pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
            goto close_log;
        }
        sc->store = fleet;
        sc->workers = 1; /* the front's models: one state each, for checking jobs and their memory law */
    } else {
        local_workers = 0;
    }
    if (pm_sched_create(sc, &sched)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        goto close_fleet;
    }
    if (pm_server_start(&so.hc, sched, &srv)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        goto destroy_sched;
    }
    if (pm_cli_load_models(&pm_cmd_serve, sched, &so.o, names, sizeof names))
        goto stop_server;
    if (strcmp(so.models_mode, "off") != 0 &&
        pm_cli_serve_models(sched, srv, so.models_mode[0] == 'a', so.o.model_args, so.o.nmodels, names,
                            sizeof names)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        goto stop_server;
    }
    if (pm_sched_start(sched)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        goto stop_server;
    }
    if (local_workers > 0 && start_local_worker(&so, local_workers, wdir, sizeof wdir, &local, &fw))
        goto stop_server;
    pm_server_set_state(srv, PM_SERVER_READY);
    announce(&so, srv, auth, names, local_workers);

    int sig = wait_for_stop(&stop_sigs, srv, auth);
    pm_info("shutdown", "%s received: draining (up to %g s for running jobs)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            so.o.drain_seconds);
    pm_server_set_state(srv, PM_SERVER_DRAINING);
    pm_fleet_worker_stop(fw); /* finishes or hands back this process's fleet jobs */
    fw = NULL;
    pm_sched_drain(sched, so.o.drain_seconds);
    exit_code = 0;

stop_server:
    pm_fleet_worker_stop(fw);
    pm_sched_destroy(local);
    pm_server_stop(srv);
destroy_sched:
    pm_sched_destroy(sched);
close_fleet:
    pm_fleet_front_close(fleet);
    if (exit_code == 0)
        pm_info("stopped", "pixmend stopped");
close_log:
    pm_log_shutdown();
    pm_auth_destroy(auth);
    return exit_code;
}

const pm_command pm_cmd_serve = {
    "serve",
    "run the HTTP service (jobs, WebSocket events, metrics)",
    "usage: pixmend serve [options]\n"
    "\n"
    "Runs the image-restoration service: the HTTP API (docs/api.md), WebSocket\n"
    "events at /ws, /healthz, /readyz, /metrics and the web UI at /.\n"
    "\n"
    "  -l, --listen HOST:PORT      address to listen on (default 127.0.0.1:8080; port 0 = any free port)\n"
    "  -d, --data-dir DIR          journal, uploaded inputs and results (default ./pixmend-data)\n"
    "  -m, --model NAME=FILE       load a model, e.g. lama=big-lama.ckpt or ddcolor=ddcolor.pth;\n"
    "                              repeatable; the built-in patchmatch is always loaded\n"
    "      --models auto|list|off  the LaMa and DDColor weights in the usual caches (see `pixmend\n"
    "                              models`): auto loads the largest of each task no --model\n"
    "                              names; list (default) only lists them in the log and on\n"
    "                              /api/v1/models; off does not look\n"
    "      --workers N             compute workers (default 1: one compute device); with --redis,\n"
    "                              the fleet's jobs this process runs at once (0 = a front only)\n"
    "  -t, --threads N             engine threads per worker (default 0 = all cores)\n"
    "      --precision P           fp32 (default) or bf16 for LaMa and DDColor (CPUs with\n"
    "                              avx512_bf16 or AMX)\n"
    "      --max-upload BYTES      largest request body (default 64M); larger gets 413\n"
    "      --max-pixels N          largest image in pixels (default 16M)\n"
    "      --max-side N            longest image side (default 8192)\n"
    "      --queue-max N           jobs waiting at most (default 64); beyond that 429\n"
    "      --job-timeout S         seconds a job may run (default 600; 0 = no limit)\n"
    "      --result-ttl S          seconds results are kept (default 86400)\n"
    "      --results-max-bytes B   cap on stored results, oldest evicted first (default 10G; 0 = none)\n"
    "      --drain-seconds S       on SIGTERM, wait this long for running jobs (default 30)\n"
    "      --request-timeout S     a request and its body must arrive within S seconds, beyond\n"
    "                              that at 32 KiB/s at least (default 30)\n"
    "      --http-threads N        concurrent connections, WebSockets included (default 64)\n"
    "      --web-dir DIR           static UI files (default: the installed or source web/)\n"
    "      --log-level L           debug, info, warn, error, off (default info)\n"
    "      --log-format F          text or json (default text)\n"
    "      --log-file FILE         log to FILE (reopened on SIGHUP) instead of stderr\n"
    "      --job-delay-ms N        testing: each job first waits N ms (cancellable, as progress)\n"
    "\n"
    "Resource guard (docs/operations.md):\n"
    "      --mem-budget B|N%       predicted peak memory the running jobs may use together: bytes\n"
    "                              (4G, 1536M) or a share of the smaller of host memory and the\n"
    "                              cgroup limit (60%); default 70%\n"
    "                              a job that alone exceeds it is refused with 413\n"
    "      --pause-at F            pause intake when memory in use (host, cgroup or GPU) reaches F\n"
    "                              (default 0.85); submissions still queue, no job starts\n"
    "      --resume-below F        resume when it falls below F (default 0.75)\n"
    "      --sample-interval S     seconds between resource samples (default 1)\n"
    "      --aging-seconds S       a waiting job gains one priority step every S seconds (default 30; 0 = off)\n"
    "      --fast-lane-pixels N    images of at most N pixels use the fast lane (default 1M)\n"
    "      --max-wait S            refuse (429) when the expected wait exceeds S seconds (default 900; 0 = off)\n"
    "Memory laws per model are in DATA/memlaw.json; `pixmend calibrate` measures them.\n"    "\n"
    "Fleet (docs/operations.md, Running a fleet):\n"
    "      --redis URL             redis://HOST[:PORT][/DB]: the queue, jobs, inputs, results and\n"
    "                              events live in this Redis, shared with other fronts and with\n"
    "                              `pixmend worker`s; unreachable at start: exit 1\n"
    "      --claim-idle S          (with --workers N) take over a job whose worker stopped\n"
    "                              refreshing its claim S seconds ago (default 30)\n"
    "      --max-deliveries N      fail a job handed to workers more than N times (default 3)\n"
    "\n"
    "Access control (docs/operations.md):\n"
    "      --api-keys FILE         require 'Authorization: Bearer KEY'; lines NAME:KEY or\n"
    "                              NAME:sha256:HEX, ':admin' at the end for admin keys; the file\n"
    "                              must not be readable by other users; SIGHUP reads it again\n"
    "      --key-max-queued N      jobs one key may have waiting; beyond that 429 for that key only\n"
    "      --key-max-running N     jobs of one key running at once; its others wait\n"
    "      --key-rate R            API requests per second per key (10, 10/s, 600/min); 429 beyond\n"
    "      --metrics-auth          /metrics needs an admin key (default: open, like /healthz)\n"
    "      --tls-cert FILE         serve HTTPS and WSS with this PEM certificate (chain) ...\n"
    "      --tls-key FILE          ... and this PEM private key\n"
    "      --cors-origin ORIGIN    allow API calls from pages of this one origin (default: none)\n"
    "\n"
    "SIGTERM or SIGINT: stop accepting jobs (503), let running jobs finish within\n"
    "--drain-seconds, keep queued jobs in the journal for the next start, exit 0.\n",
    run,
};
