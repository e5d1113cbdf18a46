/* pixmend report: the capacity report an operator runs on their own box.
 * Options and the order of the phases; the measurements are in
 * report_measure.c, the drills in report_faults.c, the files in report_out.c. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "cli/cli.h"
#include "cli/report.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const pm_optdef opts[] = {
    {"model", 'm', 1},   {"sizes", 's', 1},      {"repeat", 'r', 1}, {"concurrency", 'c', 1},
    {"soak", 0, 1},      {"faults", 0, 1},       {"mem-budget", 0, 1}, {"out", 'o', 1},
    {"url", 0, 1},       {"leak-jobs", 0, 1},    {"quiet", 'q', 0},  {"api-key", 0, 1}, {0},
};

/* Every value of --model / -m (the parser keeps only the last). */
static int collect_models(int argc, char **argv, const char **out, int max)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (strncmp(argv[i], "--model=", 8) == 0)
            v = argv[i] + 8;
        else if ((strcmp(argv[i], "--model") == 0 || strcmp(argv[i], "-m") == 0) && i + 1 < argc)
            v = argv[++i];
        if (v && n < max)
            out[n++] = v;
    }
    return n;
}

static int parse_sizes(const pm_command *cmd, const char *s, rp_report *r)
{
    r->nsizes = 0;
    while (*s) {
        int w, h, used = 0;
        if (sscanf(s, "%dx%d%n", &w, &h, &used) != 2 || w < 16 || h < 16 || w > 16384 || h > 16384 ||
            r->nsizes >= RP_MAX_SIZES) {
            pm_cli_error(cmd, "--sizes takes up to %d sizes WxH separated by commas, such as 640x480,1280x960 "
                              "(each side 16 to 16384), not '%s'",
                         RP_MAX_SIZES, s);
            return 2;
        }
        r->sizes[r->nsizes][0] = w;
        r->sizes[r->nsizes][1] = h;
        r->nsizes++;
        s += used;
        if (*s == ',')
            s++;
        else if (*s) {
            pm_cli_error(cmd, "--sizes: unexpected '%s'; separate sizes with commas", s);
            return 2;
        }
    }
    return 0;
}

/* "60", "60s", "10m", "1h" */
static int parse_duration(const pm_command *cmd, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60, end++;
    else if (*end == 'h')
        mul = 3600, end++;
    if (errno || end == s || *end || v < 0 || v * mul > 7 * 86400) {
        pm_cli_error(cmd, "--soak takes a duration such as 60s, 30m or 0 (none), not '%s'", s);
        return 2;
    }
    *out = v * mul;
    return 0;
}

static int check_faults(const pm_command *cmd, const char *s)
{
    if (strcmp(s, "all") == 0 || strcmp(s, "none") == 0)
        return 0;
    char list[256], known[128];
    snprintf(list, sizeof list, "%s", s);
    snprintf(known, sizeof known, ",%s,", rp_drill_names());
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char pat[64];
        snprintf(pat, sizeof pat, ",%s,", t);
        if (!strstr(known, pat)) {
            pm_cli_error(cmd, "--faults: unknown drill '%s'; use all, none or a list of %s", t, rp_drill_names());
            return 2;
        }
    }
    return 0;
}

static int parse_url(const pm_command *cmd, const char *url, rp_server *s)
{
    memset(s, 0, sizeof *s);
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    const char *colon = p ? strrchr(p, ':') : NULL;
    if (!p || !colon || colon - p >= (long)sizeof s->host || atoi(colon + 1) <= 0) {
        pm_cli_error(cmd, "--url takes http://HOST:PORT (plain HTTP, such as http://127.0.0.1:8080), not '%s'", url);
        return 2;
    }
    snprintf(s->host, sizeof s->host, "%.*s", (int)(colon - p), p);
    s->port = atoi(colon + 1);
    return 0;
}

static int parse_options(const pm_command *cmd, int argc, char **argv, rp_report *r)
{
    pm_args a;
    int rc = pm_cli_parse(cmd, opts, 0, 0, argc, argv, &a);
    if (rc)
        return rc == 1 ? -1 : 2;
    const char *v;
    r->repeat = 5;
    r->concurrency = 1;
    r->leak_jobs = 40;
    r->soak_s = 60;
    snprintf(r->faults, sizeof r->faults, "all");
    snprintf(r->outdir, sizeof r->outdir, "pixmend-report");
    if (parse_sizes(cmd, (v = pm_cli_get(opts, &a, "sizes")) ? v : "640x480,1280x960,2560x1920", r))
        return 2;
    if (pm_cli_opt_int(cmd, opts, &a, "repeat", 1, RP_MAX_REPEAT, &r->repeat) ||
        pm_cli_opt_int(cmd, opts, &a, "concurrency", 1, 16, &r->concurrency) ||
        pm_cli_opt_int(cmd, opts, &a, "leak-jobs", 20, 2000, &r->leak_jobs))
        return 2;
    if ((v = pm_cli_get(opts, &a, "soak")) && parse_duration(cmd, v, &r->soak_s))
        return 2;
    if ((v = pm_cli_get(opts, &a, "faults"))) {
        if (check_faults(cmd, v))
            return 2;
        snprintf(r->faults, sizeof r->faults, "%s", v);
    }
    if ((v = pm_cli_get(opts, &a, "mem-budget"))) {
        if (pm_cli_get(opts, &a, "url")) {
            pm_cli_error(cmd, "--mem-budget sets the budget of the server this report starts; with --url, give "
                              "--mem-budget to that server instead");
            return 2;
        }
        snprintf(r->mem_budget, sizeof r->mem_budget, "%s", v);
    }
    if ((v = pm_cli_get(opts, &a, "out")))
        snprintf(r->outdir, sizeof r->outdir, "%s", v);
    r->quiet = pm_cli_get(opts, &a, "quiet") != NULL;
    r->url = pm_cli_get(opts, &a, "url");
    const char *key = pm_cli_get(opts, &a, "api-key");
    if (!key)
        key = getenv("PIXMEND_API_KEY");
    if (pm_cli_get(opts, &a, "api-key") && !r->url) {
        pm_cli_error(cmd, "--api-key is for --url (a server started with --api-keys); the report's own server "
                          "runs without keys");
        return 2;
    }
    if (key && strlen(key) > 256) {
        pm_cli_error(cmd, "--api-key is longer than 256 characters; pass the key itself");
        return 2;
    }
    rp_http_set_key(r->url ? key : NULL);
    if (r->url && parse_url(cmd, r->url, &r->srv))
        return 2;
    const char *margs[RP_MAX_MODELS];
    int nm = collect_models(argc, argv, margs, RP_MAX_MODELS - 1);
    snprintf(r->models[0], sizeof r->models[0], "patchmatch");
    r->nmodels = 1;
    for (int i = 0; i < nm; i++) {
        const char *eq = strchr(margs[i], '=');
        if (!eq || eq == margs[i] || !eq[1] || eq - margs[i] >= 32) {
            pm_cli_error(cmd, "--model takes NAME=FILE (such as lama=big-lama.safetensors), not '%s'", margs[i]);
            return 2;
        }
        if (!r->url && access(eq + 1, R_OK) != 0) {
            pm_cli_error(cmd, "--model %s: cannot read %s: %s", margs[i], eq + 1, strerror(errno));
            return 2;
        }
        snprintf(r->models[r->nmodels], sizeof r->models[0], "%.*s", (int)(eq - margs[i]), margs[i]);
        r->model_args[r->nmodels] = margs[i];
        r->nmodels++;
    }
    if (readlink("/proc/self/exe", r->exe, sizeof r->exe - 1) <= 0) {
        pm_cli_error(cmd, "cannot find this program's own path (/proc/self/exe)");
        return 1;
    }
    return 0;
}

static void remove_tree(const char *path);

/* Starts our own server in a fresh temporary directory. */
static int start_own_server(const pm_command *cmd, rp_report *r)
{
    char tmpl[] = "/tmp/pixmend-report-XXXXXX";
    if (!mkdtemp(tmpl)) {
        pm_cli_error(cmd, "cannot make a temporary directory in /tmp: %s", strerror(errno));
        return 1;
    }
    const char *extra[24];
    int n = 0;
    extra[n++] = "--max-upload";
    extra[n++] = "16M";
    for (int i = 1; i < r->nmodels; i++) {
        extra[n++] = "--model";
        extra[n++] = r->model_args[i];
    }
    if (r->mem_budget[0]) {
        extra[n++] = "--mem-budget";
        extra[n++] = r->mem_budget;
    }
    extra[n] = NULL;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/data", tmpl);
    if (rp_server_start(&r->srv, r->exe, dir, extra)) {
        pm_cli_error(cmd, "cannot start the server under test: %s (set PM_REPORT_SERVER_LOG=1 to see its messages)",
                     pm_error_detail());
        remove_tree(tmpl);
        return 1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* rm -r of our temporary directory (only one that mkdtemp made). */
static void remove_tree(const char *path)
{
    if (strncmp(path, "/tmp/pixmend-report-", 20) != 0 || strstr(path, ".."))
        return;
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "pixmend report: could not remove %s: %s\n", path, strerror(errno));
}

static void run_phases(rp_report *r, rp_progress *p)
{
    double est_cells = 0;
    for (int s = 0; s < r->nsizes; s++)
        est_cells += r->nmodels * r->repeat * (0.3 + (double)r->sizes[s][0] * r->sizes[s][1] / 1.5e6);
    if (r->concurrency == 1)
        est_cells *= 2; /* the outside client's job next to each of ours */
    int drills = strcmp(r->faults, "none") != 0;
    p->planned_s = est_cells + r->leak_jobs * 0.15 + r->soak_s + (drills ? 15 : 0);
    rp_progress_phase(p, "models and sizes", est_cells);
    rp_measure_cells(r, p);
    rp_progress_phase(p, "leak check", r->leak_jobs * 0.15);
    rp_measure_leak(r, p);
    if (r->soak_s > 0) {
        rp_progress_phase(p, "soak", r->soak_s);
        rp_measure_soak(r, p);
    } else {
        r->soak.pass = 1;
        snprintf(r->soak.why, sizeof r->soak.why, "no soak (--soak 0)");
    }
    rp_measure_tiers(r);
    if (drills) {
        rp_progress_phase(p, "fault drills", 15);
        rp_run_drills(r, p);
    }
}

static int run(int argc, char **argv)
{
    const pm_command *cmd = &pm_cmd_report;
    rp_report *r = calloc(1, sizeof *r);
    if (!r) {
        pm_cli_error(cmd, "out of memory");
        return 1;
    }
    int rc = parse_options(cmd, argc, argv, r);
    if (rc) {
        free(r);
        return rc < 0 ? 0 : rc;
    }
    if (mkdir(r->outdir, 0755) != 0 && errno != EEXIST) {
        pm_cli_error(cmd, "cannot create --out %s: %s", r->outdir, strerror(errno));
        free(r);
        return 1;
    }
    time_t now = time(NULL);
    strftime(r->started_at, sizeof r->started_at, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (!r->url && (rc = start_own_server(cmd, r))) {
        free(r);
        return rc;
    }
    if (r->url && rp_server_rss(&r->srv) == 0) {
        pm_cli_error(cmd, "%s does not answer GET /api/v1/stats; is it a pixmend server?", r->url);
        free(r);
        return 1;
    }
    rp_progress p = {.enabled = !r->quiet && isatty(STDERR_FILENO), .start = pm_now()};
    double t0 = pm_now();
    run_phases(r, &p);
    rp_progress_end(&p);
    r->total_s = pm_now() - t0;
    char tmpdir[600] = "";
    if (!r->url) {
        snprintf(tmpdir, sizeof tmpdir, "%s", r->srv.data_dir);
        char *slash = strrchr(tmpdir, '/');
        if (slash)
            *slash = '\0';
        rp_server_stop(&r->srv);
    }
    r->pass = r->leak.pass && r->soak.pass;
    for (int i = 0; i < r->ndrills; i++)
        if (r->drills[i].ran && !r->drills[i].pass)
            r->pass = 0;
    for (int i = 0; i < r->ncells; i++)
        if (r->cells[i].errors)
            r->pass = 0;
    char path[1200];
    int werr = 0;
    snprintf(path, sizeof path, "%s/report.json", r->outdir);
    werr |= rp_write_json(r, path);
    snprintf(path, sizeof path, "%s/report.md", r->outdir);
    werr |= rp_write_md(r, path);
    snprintf(path, sizeof path, "%s/report.html", r->outdir);
    werr |= rp_write_html(r, path);
    if (tmpdir[0])
        remove_tree(tmpdir);
    if (werr) {
        pm_cli_error(cmd, "cannot write the report into %s: %s", r->outdir, pm_error_detail());
        free(r);
        return 1;
    }
    if (!r->quiet)
        rp_print_summary(r, stdout);
    printf("report written to %s/report.{json,md,html}: %s (leak %s, soak %s)\n", r->outdir,
           r->pass ? "all checks passed" : "SOME CHECKS FAILED", r->leak.pass ? "clean" : "FAILED",
           r->soak.pass ? "clean" : "FAILED");
    rc = r->pass ? 0 : 1;
    free(r);
    return rc;
}

const pm_command pm_cmd_report = {
    "report", "the capacity report of this box: latency, memory, leaks, soak, fault drills",
    "usage: pixmend report [options]\n\n"
    "Starts its own `pixmend serve` on a free loopback port with a temporary data\n"
    "directory (or measures --url), runs jobs through the HTTP API and writes\n"
    "report.json, report.md and report.html into --out. Exit status 0 when every\n"
    "drill passed and the leak and soak verdicts are clean, 1 otherwise.\n\n"
    "Phases: each model at each size (--repeat runs; at concurrency 1 each run\n"
    "has the same job from a plain outside client, curl, next to it, and the\n"
    "ratio of the two is reported); a leak check (identical 320x240 jobs,\n"
    "server RSS after each, a least-squares slope); a soak (mixed 320x240 and\n"
    "640x480 jobs from several clients: RSS, heap, descriptors, errors); the\n"
    "memory tiers from a law fitted to the measured job peaks, next to\n"
    "admission's law; the fault drills.\n\n"
    "The test image is generated: a sky gradient, a horizon, ground of three\n"
    "octaves of value noise, hard-edged blocks and grain, saved as JPEG (quality\n"
    "90); the mask is a fixed rectangle of 28% x 28% of the sides (7.8%).\n\n"
    "  -m, --model NAME=FILE   also measure this model (repeatable; passed to serve)\n"
    "  -s, --sizes LIST        WxH,... (default 640x480,1280x960,2560x1920)\n"
    "  -r, --repeat N          runs per model and size (default 5)\n"
    "  -c, --concurrency N     jobs in flight at once while measuring (default 1)\n"
    "      --soak DURATION     steady load for this long: 60s (default), 30m, 0 = none\n"
    "      --faults LIST       all (default), none, or some of: oversize, bad-file,\n"
    "                          disconnect, slow-client, five-large, kill9\n"
    "      --mem-budget B|N%   passed to the server under test\n"
    "      --leak-jobs N       jobs of the leak check (default 40)\n"
    "  -o, --out DIR           where the three files go (default ./pixmend-report)\n"
    "      --url http://H:P    measure a running server; drills that need our own\n"
    "                          server are listed as skipped\n"
    "      --api-key KEY       with --url: the key to send (Authorization: Bearer);\n"
    "                          default $PIXMEND_API_KEY. An admin key sees all stats\n"
    "  -q, --quiet             no progress bar\n",
    run,
};
