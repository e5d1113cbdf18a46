/* pixmend serve: the HTTP service (see docs/api.md). */
#include "cli/cli.h"
#include "cli/serve_access.h"
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
    {"data-dir", 'd', 1},
    {"model", 'm', 1},
    {"models", 0, 1},
    {"workers", 0, 1},
    {"threads", 't', 1},
    {"precision", 0, 1},
    {"max-upload", 0, 1},
    {"max-pixels", 0, 1},
    {"max-side", 0, 1},
    {"queue-max", 0, 1},
    {"job-timeout", 0, 1},
    {"result-ttl", 0, 1},
    {"results-max-bytes", 0, 1},
    {"drain-seconds", 0, 1},
    {"log-level", 0, 1},
    {"log-format", 0, 1},
    {"log-file", 0, 1},
    {"web-dir", 0, 1},
    {"request-timeout", 0, 1},
    {"http-threads", 0, 1},
    {"job-delay-ms", 0, 1},
    {"sample-interval", 0, 1},
    {"mem-budget", 0, 1},
    {"pause-at", 0, 1},
    {"resume-below", 0, 1},
    {"aging-seconds", 0, 1},
    {"fast-lane-pixels", 0, 1},
    {"max-wait", 0, 1},
    PM_SERVE_ACCESS_OPTS,
    {"test-leak-bytes", 0, 1}, /* testing only, not in --help: see docs/operations.md */
    {0},
};

#define MAX_MODEL_ARGS 8

/* Every value of a repeatable option (the parser keeps only the last). */
static int collect_repeated(int argc, char **argv, const char *name, char short_name, const char **out, int max)
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

static int parse_seconds(const char *opt, const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo) {
        pm_cli_error(&pm_cmd_serve, "--%s must be a number of seconds >= %g, not '%s'", opt, lo, s);
        return 2;
    }
    *out = v;
    return 0;
}

/* A fraction in (0, 1]: 0.85 or 85%. */
static int parse_fraction(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && *end == '%' && end[1] == '\0') {
        v /= 100;
        end++;
    }
    if (errno || end == s || *end || !(v > 0 && v <= 1)) {
        pm_cli_error(&pm_cmd_serve, "--%s must be a fraction above 0 and at most 1 (e.g. 0.85 or 85%%), not '%s'",
                     opt, s);
        return 2;
    }
    *out = v;
    return 0;
}

#define BUDGET_SHARE 0.7 /* default --mem-budget: this share of the smaller of host memory and the cgroup limit */

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

static int run(int argc, char **argv)
{
    pm_args a;
    int rc = pm_cli_parse(&pm_cmd_serve, opts, 0, 0, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
#define OPT(name) pm_cli_get(opts, &a, name)

    pm_sched_config sc;
    pm_sched_default_config(&sc);
    pm_server_config hc;
    pm_server_default_config(&hc);
    double drain_seconds = 30;
    const char *s;

    if ((s = OPT("listen")))
        hc.listen = s;
    if ((s = OPT("data-dir")))
        sc.data_dir = s;
    if (pm_cli_opt_int(&pm_cmd_serve, opts, &a, "workers", 1, 64, &sc.workers))
        return 2;
    if (pm_cli_opt_int(&pm_cmd_serve, opts, &a, "threads", 0, 1024, &sc.threads))
        return 2;
    if ((s = OPT("precision"))) {
        if (strcmp(s, "fp32") != 0 && strcmp(s, "bf16") != 0) {
            pm_cli_error(&pm_cmd_serve, "--precision must be fp32 or bf16, not '%s'", s);
            return 2;
        }
        sc.precision = strcmp(s, "bf16") == 0 ? PM_PREC_BF16 : PM_PREC_FP32;
    }
    if ((s = OPT("max-upload"))) {
        if (pm_cli_size(&pm_cmd_serve, "max-upload", s, &hc.max_upload))
            return 2;
        if (hc.max_upload < 1024) {
            pm_cli_error(&pm_cmd_serve, "--max-upload must be at least 1K");
            return 2;
        }
    }
    sc.limits.max_file_bytes = hc.max_upload;
    if (pm_cli_limits(&pm_cmd_serve, opts, &a, &sc.limits)) /* --max-pixels, --max-side */
        return 2;
    if (pm_cli_opt_int(&pm_cmd_serve, opts, &a, "queue-max", 1, 1000000, &sc.queue_max))
        return 2;
    if ((s = OPT("job-timeout")) && parse_seconds("job-timeout", s, 0, &sc.job_timeout))
        return 2;
    if ((s = OPT("result-ttl")) && parse_seconds("result-ttl", s, 1, &sc.result_ttl))
        return 2;
    if ((s = OPT("results-max-bytes")) && pm_cli_size(&pm_cmd_serve, "results-max-bytes", s, &sc.results_max_bytes))
        return 2;
    if ((s = OPT("drain-seconds")) && parse_seconds("drain-seconds", s, 0, &drain_seconds))
        return 2;
    if ((s = OPT("request-timeout"))) {
        double t;
        if (parse_seconds("request-timeout", s, 0.1, &t))
            return 2;
        hc.request_timeout_ms = (int)(t * 1000);
    }
    if (pm_cli_opt_int(&pm_cmd_serve, opts, &a, "http-threads", 4, 4096, &hc.http_threads))
        return 2;
    if (pm_cli_opt_int(&pm_cmd_serve, opts, &a, "job-delay-ms", 0, 3600000, &sc.job_delay_ms))
        return 2;
    if ((s = OPT("test-leak-bytes")) && pm_cli_size(&pm_cmd_serve, "test-leak-bytes", s, &sc.test_leak_bytes))
        return 2;
    sc.max_wait = 900;
    sc.mem_budget = pm_memory_share(BUDGET_SHARE);
    if ((s = OPT("sample-interval")) && parse_seconds("sample-interval", s, 0.01, &hc.sample_interval))
        return 2;
    if ((s = OPT("mem-budget"))) {
        size_t len = strlen(s);
        if (len > 1 && s[len - 1] == '%') {
            char *end;
            errno = 0;
            double pct = strtod(s, &end);
            if (errno || end != s + len - 1 || !(pct > 0) || pct > 100) {
                pm_cli_error(&pm_cmd_serve, "--mem-budget %s: a share must be a percentage from 0 to 100, such as 60%%",
                             s);
                return 2;
            }
            sc.mem_budget = pm_memory_share(pct / 100);
        } else if (pm_cli_size(&pm_cmd_serve, "mem-budget", s, &sc.mem_budget)) {
            return 2;
        }
        if (sc.mem_budget < (1u << 20)) {
            pm_cli_error(&pm_cmd_serve, "--mem-budget must be at least 1M (bytes the running jobs may use together)");
            return 2;
        }
    }
    if ((s = OPT("pause-at")) && parse_fraction("pause-at", s, &sc.pause_at))
        return 2;
    if ((s = OPT("resume-below")) && parse_fraction("resume-below", s, &sc.resume_below))
        return 2;
    if (!(sc.resume_below < sc.pause_at)) {
        pm_cli_error(&pm_cmd_serve, "--resume-below (%g) must be below --pause-at (%g)", sc.resume_below, sc.pause_at);
        return 2;
    }
    if ((s = OPT("aging-seconds")) && parse_seconds("aging-seconds", s, 0, &sc.aging_seconds))
        return 2;
    if ((s = OPT("fast-lane-pixels")) && pm_cli_pixels(&pm_cmd_serve, "fast-lane-pixels", s, &sc.fast_lane_pixels))
        return 2;
    if ((s = OPT("max-wait")) && parse_seconds("max-wait", s, 0, &sc.max_wait))
        return 2;
    int level = PM_LOG_INFO;
    if ((s = OPT("log-level")) && (level = pm_log_level_parse(s)) < 0) {
        pm_cli_error(&pm_cmd_serve, "--log-level must be debug, info, warn, error or off, not '%s'", s);
        return 2;
    }
    enum pm_log_format lf = PM_LOG_TEXT;
    if ((s = OPT("log-format"))) {
        if (strcmp(s, "json") == 0)
            lf = PM_LOG_JSON;
        else if (strcmp(s, "text") != 0) {
            pm_cli_error(&pm_cmd_serve, "--log-format must be text or json, not '%s'", s);
            return 2;
        }
    }
    const char *model_args[MAX_MODEL_ARGS];
    int nmodels = collect_repeated(argc, argv, "model", 'm', model_args, MAX_MODEL_ARGS);
    for (int i = 0; i < nmodels; i++) {
        const char *eq = strchr(model_args[i], '=');
        if (!eq || eq == model_args[i] || !eq[1]) {
            pm_cli_error(&pm_cmd_serve, "--model must be NAME=FILE (e.g. lama=big-lama.ckpt), not '%s'", model_args[i]);
            return 2;
        }
    }
    const char *models_mode = OPT("models") ? OPT("models") : "list";
    if (strcmp(models_mode, "auto") != 0 && strcmp(models_mode, "list") != 0 && strcmp(models_mode, "off") != 0) {
        pm_cli_error(&pm_cmd_serve, "--models must be auto, list or off, not '%s'", models_mode);
        return 2;
    }
    char webbuf[4096];
    hc.web_dir = find_web_dir(OPT("web-dir"), webbuf, sizeof webbuf);
    if (OPT("web-dir") && !is_dir(hc.web_dir)) {
        pm_cli_error(&pm_cmd_serve, "--web-dir %s is not a directory", hc.web_dir);
        return 2;
    }

    pm_auth *auth = NULL;
    if ((rc = pm_serve_access_setup(opts, &a, &hc, &sc, &auth)))
        return rc;

    if (pm_log_setup((enum pm_log_level)level, lf, OPT("log-file"))) {
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

    int exit_code = 1;
    pm_sched *sched = NULL;
    pm_server *srv = NULL;
    if (pm_sched_create(&sc, &sched)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        goto close_log;
    }
    if (pm_server_start(&hc, sched, &srv)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        goto destroy_sched;
    }

    /* Models: the built-in PatchMatch always, then each --model NAME=FILE. */
    char names[256];
    size_t used = 0;
    if (pm_sched_load_model(sched, "patchmatch", NULL)) {
        pm_cli_error(&pm_cmd_serve, "cannot load the built-in PatchMatch: %s", pm_error_detail());
        goto stop_server;
    }
    used += (size_t)snprintf(names + used, sizeof names - used, "patchmatch");
    for (int i = 0; i < nmodels; i++) {
        char name[64];
        const char *eq = strchr(model_args[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - model_args[i]), model_args[i]);
        if (pm_sched_load_model(sched, name, eq + 1)) {
            pm_cli_error(&pm_cmd_serve, "cannot load model %s from %s: %s", name, eq + 1, pm_error_detail());
            goto stop_server;
        }
        if (used < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, ", %s", name);
    }
    if (strcmp(models_mode, "off") != 0 &&
        pm_cli_serve_models(sched, srv, models_mode[0] == 'a', model_args, nmodels, names, sizeof names)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        goto stop_server;
    }
    if (pm_sched_start(sched)) {
        pm_cli_error(&pm_cmd_serve, "%s", pm_error_detail());
        goto stop_server;
    }
    pm_server_set_state(srv, PM_SERVER_READY);
    const char *host = pm_server_host(srv);
    printf("pixmend serving on %s://%s:%d (models: %s)\n", hc.tls_cert ? "https" : "http", strcmp(host, "0.0.0.0") == 0 ? "0.0.0.0" : host,
           pm_server_port(srv), names);
    fflush(stdout);
    pm_logkv(PM_LOG_INFO, "serving", "pixmend serving", "listen", hc.listen, "models", names, "data_dir",
             sc.data_dir, NULL);
    pm_serve_access_announce(&hc, host, auth);
    char budget[32], marks[48], lane[32];
    snprintf(budget, sizeof budget, "%llu", (unsigned long long)sc.mem_budget);
    snprintf(marks, sizeof marks, "%.2f/%.2f", sc.pause_at, sc.resume_below);
    snprintf(lane, sizeof lane, "%llu", (unsigned long long)sc.fast_lane_pixels);
    pm_logkv(PM_LOG_INFO, "admission", "admission: memory budget, pause/resume marks, fast lane", "budget_bytes",
             budget, "marks", marks, "fast_lane_pixels", lane, NULL);

    int sig;
    for (;;) {
        struct timespec ts = {1, 0};
        sig = sigtimedwait(&stop_sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (pm_serve_access_poll(auth))
            pm_server_keys_reloaded(srv);
    }
    pm_info("shutdown", "%s received: draining (up to %g s for running jobs)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            drain_seconds);
    pm_server_set_state(srv, PM_SERVER_DRAINING);
    pm_sched_drain(sched, drain_seconds);
    exit_code = 0;

stop_server:
    pm_server_stop(srv);
destroy_sched:
    pm_sched_destroy(sched);
    if (exit_code == 0)
        pm_info("stopped", "pixmend stopped");
close_log:
    pm_log_shutdown();
    pm_auth_destroy(auth);
    return exit_code;
#undef OPT
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
    "      --workers N             compute workers (default 1: one compute device)\n"
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
    "Memory laws per model are in DATA/memlaw.json; `pixmend calibrate` measures them.\n"
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
