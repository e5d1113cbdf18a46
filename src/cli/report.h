/* pixmend report: shared types of the capacity report (cmd_report.c and the
 * report_*.c files). Everything here is the CLI layer: it talks to a server
 * over HTTP on loopback and reads /proc; it links no scheduler code. */
#ifndef PM_CLI_REPORT_H
#define PM_CLI_REPORT_H

#include "base/base.h"
#include "pixmend.h"

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

#define RP_MAX_MODELS 4
#define RP_MAX_SIZES 8
#define RP_MAX_REPEAT 100
#define RP_MAX_POINTS 4096
#define RP_MAX_DRILLS 8
#define RP_NTIERS 5
#define RP_MAX_FIGS 12

typedef struct rp_srv_stats rp_srv_stats; /* /api/v1/stats, parsed (report_api.c) */

/* ------------------------------------------------------------ HTTP (report_http.c) */

typedef struct rp_resp {
    int status;      /* HTTP status, or 0 when no answer came */
    char *body;      /* NUL-terminated; caller owns (free) */
    size_t len;
    double seconds;  /* from connect to the last byte read */
} rp_resp;

/* One request to host:port with Connection: close. `ctype`/`body` may be NULL.
 * Returns 0 with *r filled (r->body owned by the caller, rp_resp_free), or a
 * negative PM_E* code when no answer was read (connection refused, timeout). */
int rp_http(const char *host, int port, const char *method, const char *path, const char *ctype,
            const void *body, size_t len, double timeout_s, rp_resp *r);
void rp_resp_free(rp_resp *r);
/* Sends "Authorization: Bearer KEY" with every later request (NULL: none). */
void rp_http_set_key(const char *key);
/* The key set by rp_http_set_key ("" for none); static storage. */
const char *rp_http_key(void);
/* Splits a whole HTTP/1.x answer in buf[0..n) (buf has room for n + 1 bytes)
 * into status and body. Takes buf: on success it is r->body, else freed.
 * PM_EIO when it is not an HTTP answer. */
int rp_parse_response(char *buf, size_t n, rp_resp *r);
/* A connected TCP socket to host:port (blocking), or -1. */
int rp_connect(const char *host, int port, double timeout_s);

/* A multipart/form-data body with the parts image, mask (may be NULL) and
 * model. Caller owns *body (free); ctype receives the Content-Type value. */
int rp_multipart(const uint8_t *image, size_t image_len, const char *image_name, const char *image_type,
                 const uint8_t *mask, size_t mask_len, const char *model, uint8_t **body, size_t *len,
                 char *ctype, size_t ctype_len);

/* The number after the first "key": in json (pass a pointer into the body to
 * read a later object's field), or `dflt` when absent, null or json is NULL. */
double rp_json_num(const char *json, const char *key, double dflt);
/* The string value of "key" copied into out (empty when absent). */
void rp_json_str(const char *json, const char *key, char *out, size_t len);

/* ------------------------------------------------------------ the server (report_server.c) */

typedef struct rp_server {
    char host[64];
    int port;
    pid_t pid;          /* our child, or 0 with --url */
    int out_fd;         /* the reading end of its stdout, 0 when none */
    char data_dir[512]; /* our temporary data directory ("" with --url) */
    char exe[4096];
} rp_server;

/* Starts `exe serve --listen 127.0.0.1:0 --data-dir dir` plus extra arguments
 * (NULL-terminated), reads the port from its start-up line and waits for
 * /readyz. Returns 0, or PM_EIO with the detail set. */
int rp_server_start(rp_server *s, const char *exe, const char *dir, const char *const *extra);
/* SIGTERM, wait (SIGKILL after 10 s). Safe when nothing runs. */
void rp_server_stop(rp_server *s);
/* SIGKILL and reap, as a crash would. */
void rp_server_kill9(rp_server *s);
/* VmRSS and VmHWM of the child in bytes (0 when unknown). */
uint64_t rp_proc_rss(pid_t pid);
uint64_t rp_proc_hwm(pid_t pid);
/* Writes "5" to /proc/PID/clear_refs: VmHWM restarts from VmRSS. */
void rp_proc_reset_hwm(pid_t pid);
/* Open file descriptors of the child, or -1. */
int rp_proc_fds(pid_t pid);
/* The server's RSS: the child's /proc, else /api/v1/stats memory.rss_bytes. */
uint64_t rp_server_rss(const rp_server *s);
/* GET /api/v1/stats into a fresh body (caller frees); NULL on failure. */
char *rp_stats(const rp_server *s);
/* GET /api/v1/stats and parse it into *st; 0, or PM_EIO (st zeroed). */
int rp_stats_read(const rp_server *s, rp_srv_stats *st);
/* GET /metrics into a fresh body (caller frees); NULL on failure. */
char *rp_metrics(const rp_server *s);
/* The same job from a plain outside client (curl, on the synchronous
 * route), timed by that client: 0 with *seconds (and *engine_s, the
 * answer's X-Pixmend-Seconds, -1 when absent), PM_ENOENT without curl,
 * PM_EIO when the job did not come back with 200. */
int rp_outside_job(const rp_server *s, const char *image_path, const char *mask_path, const char *model,
                   double *seconds, double *engine_s);

/* Submits an inpaint job asynchronously and waits for it; fills the figures
 * below. Returns 0 when the job ended done and its result was read. */
typedef struct rp_job {
    char id[64];
    int http_status;        /* of the submission */
    double e2e_s;           /* submit until the result's last byte */
    double engine_s;        /* resources.wall_s */
    double cpu_s;           /* resources.cpu_s */
    double peak_bytes;      /* resources.peak_bytes (heap peak of the job) */
    double predicted_bytes; /* resources.predicted_bytes */
    double started_at, finished_at; /* the server's clock (Unix seconds), -1 unknown */
    size_t result_len;
    char state[16];
} rp_job;
int rp_job_run(const rp_server *s, const uint8_t *body, size_t len, const char *ctype, double timeout_s, rp_job *j);
/* Polls one job until it is done/failed/cancelled or timeout_s passes. */
int rp_job_wait(const rp_server *s, const char *id, double timeout_s, rp_job *j);

/* ------------------------------------------------------------ the server's answers (report_api.c) */
/* Every field the report reads from server JSON is read by these functions.
 * Fields: the submission's "id"; a job's "state", "started_at",
 * "finished_at", "resources".{"wall_s","cpu_s","peak_bytes","predicted_bytes"};
 * /api/v1/stats "jobs".{"submitted","done","recovered"}, "running",
 * "memory".{"rss_bytes","pm_mem_in_use","pm_mem_peak","budget_bytes",
 * "host_total_bytes","cgroup_max_bytes"}, "disk_write_ms".{"p50","p95"},
 * "gpus", "models"[].{"name","memory_law".{"a_bytes","b_bytes_per_pixel",
 * "source"}}, "samples"[].{"t","gpu_mem_used_bytes"}; /metrics samples by name. */

#define RP_MAX_LAWS 8

typedef struct rp_law {
    char name[32];
    double a, b; /* bytes + bytes per pixel */
    char source[16];
} rp_law;

struct rp_srv_stats {
    double submitted, done, recovered, running;            /* -1 when absent */
    double rss, heap_in_use, heap_peak;                    /* heap: -1 when absent */
    double budget, host_total, cgroup_max;                 /* 0 when absent */
    double disk_p50_ms, disk_p95_ms;                       /* -1 when absent */
    double last_sample_t;                                  /* the newest sample's t, -1 none */
    int gpus;                                              /* 1 when the server lists a GPU */
    int nlaws;
    rp_law laws[RP_MAX_LAWS];
};

/* The "id" of a submission's answer ("" when absent). */
void rp_api_job_id(const char *body, char *id, size_t len);
/* A job's state, times and resources into *j; PM_EIO without a state. */
int rp_api_job(const char *body, rp_job *j);
/* 1 when j->state is done, failed or cancelled. */
int rp_api_job_final(const rp_job *j);
/* A /api/v1/stats body into *st; PM_EIO when it is not one. */
int rp_api_stats(const char *body, rp_srv_stats *st);
/* The law of `model` in *st (points into st), or NULL. */
const rp_law *rp_api_law(const rp_srv_stats *st, const char *model);
/* The largest GPU memory in use over a stats body's samples newer than t0;
 * -1 when the server lists no GPU. */
double rp_api_gpu_peak_since(const char *body, double t0);
/* The value of an unlabelled /metrics sample `name`, or dflt. */
double rp_api_metric(const char *text, const char *name, double dflt);

/* ------------------------------------------------------------ measurements (report_measure.c) */

typedef struct rp_input {
    int w, h;
    uint8_t *image, *mask; /* JPEG image, PNG mask; owned (free) */
    size_t image_len, mask_len;
    double mask_share;     /* fraction of pixels the mask selects */
} rp_input;

/* The generated photograph-like test image and its mask (see cmd_report's
 * help). The caller owns in's buffers (rp_input_free). */
int rp_make_input(int w, int h, rp_input *in);
void rp_input_free(rp_input *in);

typedef struct rp_cell { /* one model at one size */
    char model[32];
    int w, h, runs, errors;
    double e2e[RP_MAX_REPEAT], engine[RP_MAX_REPEAT];
    double e2e_p50, e2e_p95, e2e_max, eng_p50, eng_p95, eng_max;
    double cpu_s;             /* median CPU seconds */
    double job_peak;          /* largest resources.peak_bytes */
    double rss_above_base;    /* process RSS peak (VmHWM) above the idle RSS */
    double process_peak;      /* VmHWM of the server process */
    double predicted;         /* admission's prediction */
    double law_predicted;     /* the fitted law's prediction at the end of the run */
    double disk_write_ms;     /* mean result write of this cell (/metrics), -1 unknown */
    double gpu_peak;          /* GPU memory peak in bytes, -1 when no GPU */
    /* The same job from a plain outside client, interleaved with ours. */
    int outside_n;
    double outside[RP_MAX_REPEAT], outside_p50; /* -1 when not timed */
    double outside_engine[RP_MAX_REPEAT];       /* X-Pixmend-Seconds, -1 when absent */
    double outside_engine_p50;
    int npairs;                                 /* runs where both ended well */
    double pair_ratio[RP_MAX_REPEAT], pair_ratio_p50; /* ours / outside, per pair */
    double load1;             /* the 1-minute load average after the cell */
} rp_cell;

typedef struct rp_series {
    int n;
    double t[RP_MAX_POINTS], v[RP_MAX_POINTS], fds[RP_MAX_POINTS];
    double heap[RP_MAX_POINTS]; /* soak: the server's pm_mem_in_use, -1 when unread */
} rp_series;

#define RP_LEAK_MAX_WARMUP 400
#define RP_LEAK_WINDOW 20 /* jobs over which the warm-up judges RSS level */
#define RP_LEAK_MAX_WARMUP_BYTES (256.0 * 1048576)

typedef struct rp_leak {
    int jobs, errors;
    int warmup;            /* warm-up jobs run before the measured ones */
    rp_series rss;         /* x = job index, v = RSS bytes */
    double slope;          /* bytes per job, fitted over the second half (the verdict's) */
    double slope_all, intercept; /* the fit over every job after the warm-up */
    double threshold;      /* the verdict's bound */
    int pass;
} rp_leak;

typedef struct rp_soak {
    double seconds;
    int jobs, errors;
    rp_series samples;     /* t = seconds since start, v = RSS, fds */
    double rss_first, rss_last, fds_first, fds_last, heap_first, heap_last, drift_bytes;
    int pass;
    char why[256];
} rp_soak;

typedef struct rp_drill {
    char name[32];
    char expected[300];
    char observed[400];
    int ran, pass;        /* ran = 0: skipped */
    int nfig;             /* the drill's figures, by name (report.json drills[].figures) */
    char fig_name[RP_MAX_FIGS][32];
    double fig_val[RP_MAX_FIGS];
} rp_drill;

typedef struct rp_tier_row {
    char model[32];
    double a, b;                /* the law: bytes + bytes/pixel */
    char source[16];
    int w[RP_NTIERS + 1], h[RP_NTIERS + 1]; /* largest 4:3 image per tier, the last = this box */
    /* A law fitted here to the measured job peaks against whole-image
     * pixels (least squares on the relative error); fit_n = 0 when fewer
     * than 2 sizes ran. */
    int fit_n;
    double fit_a, fit_b, fit_max_error; /* largest |law - measured| / measured */
    double fit_px[RP_MAX_SIZES], fit_peak[RP_MAX_SIZES], fit_err[RP_MAX_SIZES];
    double fit_rss[RP_MAX_SIZES], fit_pred[RP_MAX_SIZES]; /* RSS above idle, admission's prediction */
    int fw[RP_NTIERS + 1], fh[RP_NTIERS + 1];
    /* The same fit to the server's RSS above idle (what the process paid);
     * rss_fit_n = 0 with --url or fewer than 2 sizes. */
    int rss_fit_n;
    double rss_fit_a, rss_fit_b, rss_fit_max_error;
    int rw[RP_NTIERS + 1], rh[RP_NTIERS + 1];
} rp_tier_row;


/* Everything the report holds. */
typedef struct rp_report {
    /* options */
    const char *url;
    char exe[4096];
    char outdir[1024];
    int nmodels;
    char models[RP_MAX_MODELS][32];
    const char *model_args[RP_MAX_MODELS];
    int nsizes;
    int sizes[RP_MAX_SIZES][2];
    int repeat, concurrency, leak_jobs;
    double soak_s;
    char faults[256];
    char mem_budget[64];
    int quiet;
    /* results */
    rp_server srv;
    double baseline_rss;
    rp_cell cells[RP_MAX_MODELS * RP_MAX_SIZES];
    int ncells;
    rp_leak leak;
    rp_soak soak;
    rp_drill drills[RP_MAX_DRILLS];
    int ndrills;
    rp_tier_row tiers[RP_MAX_MODELS];
    int ntiers;
    double box_bytes, budget_share;      /* budget_share: the default, PM_DEFAULT_BUDGET_SHARE */
    double server_budget_share;          /* the server under test's budget / box, 0 unknown */
    double load_start[3], load_end[3];   /* /proc/loadavg around the model and size runs */
    char outside_client[32];             /* "curl", or why none: "none (concurrency > 1)" */
    double disk_write_p50_ms, disk_write_p95_ms;
    char started_at[32];
    double total_s;
    int pass;
} rp_report;

/* Progress on the terminal: phase and time left. */
typedef struct rp_progress {
    int enabled;
    double start, planned_s, done_s, phase_start, phase_s;
    char phase[48];
} rp_progress;
void rp_progress_phase(rp_progress *p, const char *phase, double planned_s);
void rp_progress_tick(rp_progress *p, double frac);
void rp_progress_end(rp_progress *p);

/* The phases. Each fills its part of *r and owns nothing it returns; 0, or
 * a PM_E* code when it could not run at all (a failed job is a figure). */
int rp_measure_cells(rp_report *r, rp_progress *p);
int rp_measure_leak(rp_report *r, rp_progress *p);
int rp_measure_soak(rp_report *r, rp_progress *p);
void rp_measure_tiers(rp_report *r);
/* Least-squares line through (x[i], y[i]). */
void rp_fit_line(const double *x, const double *y, int n, double *slope, double *intercept);
/* y = a + b x minimising the sum of ((a + b x[i] - y[i]) / y[i])^2 (y > 0);
 * a is held at 0 when the free fit would make it negative. */
void rp_fit_relative(const double *x, const double *y, int n, double *a, double *b);
/* The largest 4:3 image (*w x *h) whose a + b x pixels fits share x bytes; 0x0 if none. */
void rp_tier_size(double bytes, double share, double a, double b, int *w, int *h);
double rp_quantile(const double *v, int n, double q);
/* The 1, 5 and 15 minute load averages (-1 each when unreadable). */
void rp_read_loadavg(double load[3]);

/* ------------------------------------------------------------ drills (report_faults.c) */
int rp_run_drills(rp_report *r, rp_progress *p);
/* "oversize,bad-file,...": the drills --faults may name. */
const char *rp_drill_names(void);

/* ------------------------------------------------------------ output (report_out.c) */
/* Each writes one file; 0 or PM_EIO with the detail set. */
int rp_write_json(const rp_report *r, const char *path);
int rp_write_md(const rp_report *r, const char *path);
int rp_write_html(const rp_report *r, const char *path);
/* Per model and size: latency (ours and the outside client's), job peak;
 * the fitted memory laws; the load average. */
void rp_print_summary(const rp_report *r, FILE *f);

#endif
