/* The HTTP service on civetweb (see server.h and docs/api.md).
 *
 * Debian's civetweb runs handlers on threads with 100 KiB stacks: handlers
 * keep big buffers on the heap, and decoding (in pm_sched_submit) runs on a
 * thread of its own.
 *
 * Every civetweb thread runs one request at a time; a handler reads the body
 * into memory (bounded by --max-upload and a minimum transfer rate), parses
 * the multipart form, and hands the job to the scheduler. Errors are JSON
 * {"error": {"code", "message"}} where the message is the sentence of the
 * layer that found the problem (pm_error_detail). */
#include "server/server.h"
#include "server/access.h"
#include "server/codes.h"
#include "server/headers.h"
#include "server/metrics.h"
#include "server/multipart.h"
#include "server/sb.h"
#include "server/server_opts.h"
#include "server/watchdog.h"
#include "server/ws.h"
#include "base/base.h"
#include "monitor/monitor.h"
#include "monitor/sampler.h"
#include "pipeline/mask.h"
#include "pipeline/pipeline.h"
#include "sched/gate.h"

#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define API_PREFIX "/api/v1"
#define MAX_PARTS 16
#define BODY_MIN_RATE (32.0 * 1024) /* bytes/s a body must average after the request timeout */
#define STATUS_PERIOD 5.0           /* seconds between WebSocket status events */
#define TICK 0.25                   /* seconds between watchdog checks */

struct pm_server {
    struct mg_context *ctx;
    pm_sched *sched;               /* not owned */
    pm_ws_hub *hub;                /* owned */
    pm_body_watch *watch;          /* owned */
    pm_metrics metrics;
    pm_server_config cfg;          /* strings below are owned copies */
    char *listen, *web_dir;
    _Atomic(char *) found;  /* owned: pm_server_set_found's JSON, or NULL */
    atomic_int state;
    atomic_int stopping;    /* 1 once pm_server_stop began: samples no longer reach clients */
    double t_start;
    int port;
    char host[64];
    pthread_t ticker;
    int ticker_started;
    pthread_mutex_t tick_lock;
    pthread_cond_t tick_cv;
    int tick_stop;
    pm_sampler *sampler;           /* owned; NULL when sample_interval is 0 */
    pm_access access;
};

#define SAMPLE_RING 300            /* samples kept for charts (5 min at 1 s) */
#define STATS_SAMPLES 120          /* samples /api/v1/stats returns */

/* One request being handled. */
typedef struct req {
    pm_server *srv;
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    const char *method;
    const char *path;      /* local URI, decoded */
    double t0;
    int status;            /* of the response sent */
    int body_unread;       /* the body was not consumed: close the connection */
    pm_identity who;       /* the API key that made it (anonymous admin without --api-keys) */
} req;

void pm_server_default_config(pm_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "127.0.0.1:8080";
    cfg->max_upload = 64ull << 20;
    cfg->request_timeout_ms = 30000;
    cfg->http_threads = 64;
    cfg->ws_max_clients = 256;
    cfg->ws_outbox = 1024;
    cfg->sample_interval = 1.0;
}

/* ------------------------------------------------------------ responses */

static const char *state_name(int st)
{
    return st == PM_SERVER_READY ? "ready" : st == PM_SERVER_DRAINING ? "draining" : "loading";
}

/* Sends a complete response. `extra` is a NULL-terminated list of header
 * name/value pairs (may be NULL). */
static void send_response(req *r, int status, const char *ctype, const void *body, size_t len,
                          const char *const *extra)
{
    struct mg_connection *c = r->conn;
    char lenbuf[32];
    snprintf(lenbuf, sizeof lenbuf, "%zu", len);
    if (r->body_unread)
        mg_disable_keep_alive(c);
    mg_response_header_start(c, status);
    mg_response_header_add(c, "Content-Type", ctype, -1);
    mg_response_header_add(c, "Content-Length", lenbuf, -1);
    mg_response_header_add(c, "Cache-Control", "no-store", -1);
    pm_hdr_security(c);
    pm_hdr_cors(c, r->srv->cfg.cors_origin);
    if (status == 401)
        mg_response_header_add(c, "WWW-Authenticate", "Bearer realm=\"pixmend\"", -1);
    for (int i = 0; extra && extra[i]; i += 2)
        mg_response_header_add(c, extra[i], extra[i + 1], -1);
    mg_response_header_send(c);
    if (len && strcmp(r->method, "HEAD") != 0)
        mg_write(c, body, len);
    r->status = status;
    pm_metrics_count_response(&r->srv->metrics, status);
}

static void send_json(req *r, int status, pm_sb *sb, const char *const *extra)
{
    if (sb->failed) {
        static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
        send_response(r, 503, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    send_response(r, status, "application/json", pm_sb_str(sb), sb->len, extra);
}

static void send_error_ex(req *r, int status, const char *code, const char *msg, int retry_after,
                          const char *allow)
{
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_puts(&sb, "{\"error\":{\"code\":");
    pm_sb_json_str(&sb, code);
    pm_sb_puts(&sb, ",\"message\":");
    pm_sb_json_str(&sb, msg);
    pm_sb_puts(&sb, "}}");
    const char *extra[7] = {0};
    int n = 0;
    char ra[16];
    if (retry_after > 0) {
        snprintf(ra, sizeof ra, "%d", retry_after);
        extra[n++] = "Retry-After";
        extra[n++] = ra;
    }
    if (allow) {
        extra[n++] = "Allow";
        extra[n++] = allow;
    }
    send_json(r, status, &sb, extra);
    pm_sb_free(&sb);
}

static void send_error(req *r, int status, const char *code, const char *msg)
{
    send_error_ex(r, status, code, msg, 0, NULL);
}

static void send_method_not_allowed(req *r, const char *allow)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s is not allowed on %s; use %s", r->method, r->path, allow);
    send_error_ex(r, 405, "method_not_allowed", msg, 0, allow);
}

/* Answers a refused submission: status from the code, counted as rejected. */
static void send_submit_error(req *r, int rc, const char *msg)
{
    pm_server *srv = r->srv;
    int status;
    pm_reject_reason why;
    const char *code = pm_error_code_name(rc);
    int retry = 0;
    switch (rc) {
    case PM_EINVAL:
    case PM_EEMPTY: status = 400; why = PM_REJECT_INVALID; break;
    case PM_ENOENT: status = 404; why = PM_REJECT_NOT_FOUND; code = "model_not_found"; break;
    case PM_ETOOBIG: status = 413; why = PM_REJECT_TOO_LARGE; break;
    case PM_EFORMAT:
    case PM_ECORRUPT:
    case PM_ETRUNCATED:
    case PM_EEXTENSION:
    case PM_EUNSUPPORTED: status = 415; why = PM_REJECT_UNSUPPORTED; break;
    case PM_EMISMATCH:
    case PM_EMASKEMPTY: status = 422; why = PM_REJECT_MISMATCH; break;
    case PM_EBUSY:
        if (pm_sched_draining(srv->sched) || atomic_load(&srv->state) == PM_SERVER_DRAINING) {
            status = 503;
            why = PM_REJECT_UNAVAILABLE;
            code = "draining";
            retry = 30;
        } else {
            status = 429;
            why = PM_REJECT_BUSY;
            code = "queue_full";
            retry = pm_sched_retry_after(srv->sched);
        }
        break;
    case PM_ENOMEM: status = 503; why = PM_REJECT_UNAVAILABLE; retry = 5; break;
    default: status = 500; why = PM_REJECT_INVALID; break;
    }
    pm_metrics_count_rejected(&srv->metrics, why);
    send_error_ex(r, status, code, msg && msg[0] ? msg : pm_strerror(rc), retry, NULL);
}

/* ------------------------------------------------------------ JSON of jobs */

static void json_time(pm_sb *sb, const char *key, double t)
{
    if (t > 0)
        pm_sb_printf(sb, ",\"%s\":%.3f", key, t);
    else
        pm_sb_printf(sb, ",\"%s\":null", key);
}

static void job_json(pm_sb *sb, const pm_job_info *j)
{
    pm_sb_puts(sb, "{\"id\":");
    pm_sb_json_str(sb, j->id);
    pm_sb_printf(sb, ",\"state\":\"%s\",\"task\":\"%s\",\"model\":", pm_job_state_name(j->state),
                 pm_task_name(j->spec.task));
    pm_sb_json_str(sb, j->spec.model);
    pm_sb_printf(sb, ",\"priority\":%d,\"format\":\"%s\",\"sync\":%s", j->spec.priority,
                 j->spec.format == PM_FMT_JPEG ? "jpeg" : j->spec.format == PM_FMT_WEBP ? "webp" : "png",
                 j->sync ? "true" : "false");
    if (j->state == PM_JOB_QUEUED)
        pm_sb_printf(sb, ",\"queue_position\":%d", j->queue_position);
    else
        pm_sb_puts(sb, ",\"queue_position\":null");
    pm_sb_printf(sb, ",\"progress\":{\"value\":%d,\"max\":%d}", j->progress_value, j->progress_max);
    if (j->spec.task == PM_TASK_INPAINT)
        pm_sb_printf(sb, ",\"mask_dilate\":%d", j->spec.mask_dilate);
    pm_sb_printf(sb, ",\"strip_metadata\":%s,\"strip_gps\":%s,\"jpeg_reencode\":%s",
                 j->spec.strip_metadata ? "true" : "false", j->spec.strip_gps ? "true" : "false",
                 j->spec.jpeg_reencode ? "true" : "false");
    pm_sb_printf(sb, ",\"attempts\":%d,\"width\":%d,\"height\":%d", j->attempts, j->width, j->height);
    json_time(sb, "created_at", j->created);
    json_time(sb, "started_at", j->started);
    json_time(sb, "finished_at", j->finished);
    if (j->state == PM_JOB_DONE && !j->sync)
        pm_sb_printf(sb, ",\"result_url\":\"" API_PREFIX "/jobs/%s/result\",\"result_bytes\":%" PRIu64, j->id,
                     j->result_bytes);
    if (j->state == PM_JOB_FAILED || j->state == PM_JOB_CANCELLED) {
        pm_sb_printf(sb, ",\"error\":{\"code\":\"%s\",\"message\":", pm_error_code_name(j->error_code));
        pm_sb_json_str(sb, j->error);
        pm_sb_puts(sb, "}");
    }
    pm_sb_printf(sb, ",\"lane\":\"%s\",\"resources\":{\"predicted_bytes\":%" PRIu64,
                 j->lane == 0 ? "fast" : "normal", j->predicted_bytes);
    if (j->finished > 0 && j->started > 0)
        pm_sb_printf(sb, ",\"wall_s\":%.3f,\"cpu_s\":%.3f,\"peak_bytes\":%" PRIu64 "}",
                     j->finished > j->started ? j->finished - j->started : 0.0, j->cpu_seconds, j->peak_bytes);
    else
        pm_sb_puts(sb, ",\"wall_s\":null,\"cpu_s\":null,\"peak_bytes\":null}");
    pm_sb_puts(sb, "}");
}

/* The event a WebSocket client receives; called under the scheduler's lock. */
static void on_job_event(void *user, pm_job_event_type type, uint64_t seq, const pm_job_info *j)
{
    pm_server *srv = user;
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_printf(&sb, "{\"type\":\"%s\",\"job\":\"%s\",\"seq\":%" PRIu64 ",\"state\":\"%s\"",
                 pm_job_event_name(type), j->id, seq, pm_job_state_name(j->state));
    switch (type) {
    case PM_EV_QUEUED:
        pm_sb_printf(&sb, ",\"position\":%d,\"priority\":%d,\"task\":\"%s\",\"model\":", j->queue_position,
                     j->spec.priority, pm_task_name(j->spec.task));
        pm_sb_json_str(&sb, j->spec.model);
        break;
    case PM_EV_STARTED:
        pm_sb_printf(&sb, ",\"attempt\":%d", j->attempts);
        break;
    case PM_EV_PROGRESS:
        pm_sb_printf(&sb, ",\"value\":%d,\"max\":%d", j->progress_value, j->progress_max);
        break;
    case PM_EV_DONE:
        if (!j->sync)
            pm_sb_printf(&sb, ",\"result\":\"" API_PREFIX "/jobs/%s/result\"", j->id);
        pm_sb_printf(&sb, ",\"bytes\":%" PRIu64 ",\"seconds\":%.3f", j->result_bytes,
                     j->finished > j->started ? j->finished - j->started : 0.0);
        break;
    case PM_EV_FAILED:
    case PM_EV_CANCELLED:
        pm_sb_printf(&sb, ",\"code\":\"%s\",\"message\":", pm_error_code_name(j->error_code));
        pm_sb_json_str(&sb, j->error);
        break;
    }
    pm_sb_puts(&sb, "}");
    if (!sb.failed)
        pm_ws_broadcast(srv->hub, j->id, j->spec.owner, sb.buf, sb.len);
    pm_sb_free(&sb);
}

/* A server-wide status event; caller owns the result (pm_free). */
static char *status_event(void *user)
{
    pm_server *srv = user;
    pm_sched_stats st;
    pm_ws_stats ws;
    pm_sched_get_stats(srv->sched, &st);
    pm_ws_get_stats(srv->hub, &ws);
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_printf(&sb,
                 "{\"type\":\"status\",\"state\":\"%s\",\"queue_depth\":%d,\"queue_max\":%d,\"running\":%d,"
                 "\"workers\":%d,\"ws_clients\":%d,\"time\":%.3f,\"paused\":%s}",
                 state_name(atomic_load(&srv->state)), st.queue_depth, st.queue_max, st.running, st.workers,
                 ws.clients, pm_wall_time(), st.paused ? "true" : "false");
    if (sb.failed) {
        pm_sb_free(&sb);
        return NULL;
    }
    return sb.buf;
}

/* On the sampler thread after each sample: feeds the admission gate and
 * tells WebSocket clients about a pause or a resume. */
static void on_sample(void *user, const pm_sample *x)
{
    pm_server *srv = user;
    if (atomic_load(&srv->stopping))
        return;
    const char *source = "host";
    double usage = pm_gate_usage(x, &source);
    int t = pm_sched_admission_update(srv->sched, usage, source);
    if (!t)
        return;
    pm_sched_stats st;
    pm_sched_get_stats(srv->sched, &st);
    double now = pm_wall_time();
    char msg[320];
    int n = snprintf(msg, sizeof msg,
                     "{\"type\":\"%s\",\"t\":%.3f,\"time\":%.3f,\"gauge\":%.4f,\"high_mark\":%.4f,"
                     "\"low_mark\":%.4f,\"source\":\"%s\",\"pauses\":%" PRIu64 ",\"queue_depth\":%d}",
                     t > 0 ? "paused" : "resumed", now, now, usage, st.high_mark, st.low_mark, source, st.pauses,
                     st.queue_depth);
    if (n > 0 && (size_t)n < sizeof msg)
        pm_ws_broadcast(srv->hub, NULL, NULL, msg, (size_t)n);
}

static void broadcast_status(pm_server *srv)
{
    char *s = status_event(srv);
    if (s)
        pm_ws_broadcast(srv->hub, NULL, NULL, s, strlen(s));
    pm_free(s);
}

/* ------------------------------------------------------------ request bodies */

/* Reads the whole body into *out (caller owns; pm_free). On failure sends the
 * error response and returns -1. Each mg_read must return within the request
 * timeout plus the time its bytes take at BODY_MIN_RATE, or the watchdog cuts
 * the connection's read side and the client gets 408. */
static int read_body(req *r, uint8_t **out, size_t *out_len)
{
    pm_server *srv = r->srv;
    uint64_t max = srv->cfg.max_upload;
    long long cl = r->ri->content_length;
    char msg[256];
    int status = 0;
    const char *code = NULL;
    *out = NULL;
    *out_len = 0;
    if (cl >= 0 && (uint64_t)cl > max) {
        r->body_unread = 1;
        snprintf(msg, sizeof msg,
                 "the request body is %lld bytes; this server accepts at most %" PRIu64
                 " bytes (%.1f MiB, --max-upload)",
                 cl, max, (double)max / 1048576.0);
        pm_metrics_count_rejected(&srv->metrics, PM_REJECT_TOO_LARGE);
        send_error(r, 413, "too_large", msg);
        return -1;
    }
    size_t cap = cl >= 0 ? (size_t)cl : 256 * 1024;
    uint8_t *buf = pm_malloc(cap ? cap : 1);
    if (!buf) {
        r->body_unread = 1;
        send_error(r, 503, "out_of_memory", "out of memory reading the request body; retry later");
        return -1;
    }
    size_t got = 0;
    double timeout = srv->cfg.request_timeout_ms / 1000.0;
    int slot = pm_watch_begin(srv->watch, r->conn);
    for (;;) {
        if (cl >= 0 && got == (size_t)cl)
            break;
        if (got == cap) {
            /* Chunked or unknown length: grow, up to the limit + 1 to detect excess. */
            size_t ncap = cap * 2;
            if (ncap > max + 1)
                ncap = (size_t)max + 1;
            if (ncap <= cap) {
                status = 413;
                code = "too_large";
                snprintf(msg, sizeof msg,
                         "the request body exceeds %" PRIu64 " bytes (%.1f MiB), the most this server accepts "
                         "(--max-upload)",
                         max, (double)max / 1048576.0);
                pm_metrics_count_rejected(&srv->metrics, PM_REJECT_TOO_LARGE);
                break;
            }
            uint8_t *nb = pm_realloc(buf, ncap);
            if (!nb) {
                status = 503;
                code = "out_of_memory";
                snprintf(msg, sizeof msg, "out of memory reading the request body; retry later");
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - got;
        if (want > 64 * 1024)
            want = 64 * 1024;
        double t = pm_now();
        pm_watch_deadline(srv->watch, slot, t + timeout + (double)want / BODY_MIN_RATE);
        int n = mg_read(r->conn, buf + got, want);
        if (n > 0) {
            got += (size_t)n;
            atomic_fetch_add(&srv->metrics.upload_bytes, (unsigned long long)n);
            continue;
        }
        if (n < 0 || pm_now() - t >= timeout || (cl >= 0 && got < (size_t)cl)) {
            int slow = n < 0 || pm_now() - t >= timeout;
            status = slow ? 408 : 400;
            code = slow ? "request_timeout" : "bad_request";
            snprintf(msg, sizeof msg,
                     slow ? "the request body arrived too slowly (%zu bytes in %.1f s); the server needs each "
                            "64 KiB within %.0f s at %.0f KiB/s at least"
                          : "the request body ended after %zu bytes (a truncated upload?)",
                     got, pm_now() - r->t0, timeout, BODY_MIN_RATE / 1024);
        }
        break; /* n == 0: the end of the body */
    }
    int cut = pm_watch_end(srv->watch, slot);
    if (cut && (status == 0 || status == 400) && !(cl >= 0 && got == (size_t)cl)) {
        status = 408;
        code = "request_timeout";
        snprintf(msg, sizeof msg,
                 "the request body arrived too slowly (%zu bytes in %.1f s); the server needs each 64 KiB within "
                 "%.0f s at %.0f KiB/s at least",
                 got, pm_now() - r->t0, timeout, BODY_MIN_RATE / 1024);
    }
    if (status) {
        r->body_unread = 1;
        pm_free(buf);
        send_error(r, status, code, msg);
        return -1;
    }
    *out = buf;
    *out_len = got;
    return 0;
}

/* ------------------------------------------------------------ forms */

typedef struct form {
    pm_mp_part parts[MAX_PARTS];
    int n;
    const pm_mp_part *image, *mask;
    pm_job_spec spec;
} form;

#define FIELDS_LIST                                                                                         \
    "image, mask, task, model, priority, format, hd_strategy, mask_resize, quality, input_size, mask_dilate, " \
    "strip_metadata, strip_gps, jpeg_reencode"

/* Parses the form of a submission. `task` < 0: the form names it; otherwise
 * the route fixes it. Sends a 400/415 response and returns -1 on bad input. */
static int parse_form(req *r, const uint8_t *body, size_t len, int task, form *f)
{
    pm_server *srv = r->srv;
    const char *ct = mg_get_header(r->conn, "Content-Type");
    char msg[512];
    memset(f, 0, sizeof *f);
    pm_job_spec_default(&f->spec);
    if (task >= 0)
        f->spec.task = (enum pm_task)task;
    if (pm_multipart_parse(ct, body, len, f->parts, MAX_PARTS, &f->n)) {
        pm_metrics_count_rejected(&srv->metrics, PM_REJECT_INVALID);
        send_error(r, 400, "bad_request", pm_error_detail());
        return -1;
    }
    unsigned seen = 0;
    for (int i = 0; i < f->n; i++) {
        const pm_mp_part *p = &f->parts[i];
        static const char *const names[] = {"image", "mask", "task", "model", "priority",
                                            "format", "hd_strategy", "mask_resize", "quality", "input_size",
                                            "mask_dilate", "strip_metadata", "strip_gps", "jpeg_reencode"};
        int k = -1;
        for (int n = 0; n < (int)(sizeof names / sizeof names[0]); n++)
            if (strcmp(p->name, names[n]) == 0)
                k = n;
        if (k < 0) {
            snprintf(msg, sizeof msg, "unknown form field '%.64s'; the fields are: " FIELDS_LIST, p->name);
            goto bad;
        }
        if (seen & (1u << k)) {
            snprintf(msg, sizeof msg, "form field '%s' is given twice", names[k]);
            goto bad;
        }
        seen |= 1u << k;
        if (k == 0) {
            f->image = p;
            continue;
        }
        if (k == 1) {
            f->mask = p;
            continue;
        }
        char v[64];
        if (pm_mp_text(p, v, sizeof v)) {
            snprintf(msg, sizeof msg, "form field '%s' is too long for its kind (at most 63 characters)", names[k]);
            goto bad;
        }
        switch (k) {
        case 2: {
            int t = pm_task_parse(v);
            if (t < 0) {
                snprintf(msg, sizeof msg, "task must be 'inpaint' or 'colorize', not '%s'", v);
                goto bad;
            }
            if (task >= 0 && t != task) {
                snprintf(msg, sizeof msg, "this route does %s; task '%s' contradicts it", pm_task_name(task), v);
                goto bad;
            }
            f->spec.task = (enum pm_task)t;
            break;
        }
        case 3:
            if (!v[0] || strlen(v) >= sizeof f->spec.model || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(v)) {
                snprintf(msg, sizeof msg, "model must be a model name such as 'patchmatch', not '%s'", v);
                goto bad;
            }
            memcpy(f->spec.model, v, strlen(v) + 1); /* length checked above */
            break;
        case 4:
            if (pm_mp_int(v, 0, PM_PRIORITY_MAX, &f->spec.priority)) {
                snprintf(msg, sizeof msg, "priority must be a whole number from 0 to %d (9 runs first), not '%s'",
                         PM_PRIORITY_MAX, v);
                goto bad;
            }
            break;
        case 5:
            if (strcasecmp(v, "png") == 0)
                f->spec.format = PM_FMT_PNG;
            else if (strcasecmp(v, "jpeg") == 0 || strcasecmp(v, "jpg") == 0)
                f->spec.format = PM_FMT_JPEG;
            else if (strcasecmp(v, "webp") == 0)
                f->spec.format = PM_FMT_WEBP;
            else {
                snprintf(msg, sizeof msg, "format must be png, jpeg or webp, not '%s'", v);
                goto bad;
            }
            break;
        case 6: {
            int s = pm_hd_strategy_parse(v);
            if (s < 0) {
                snprintf(msg, sizeof msg, "hd_strategy must be auto, original, resize or crop, not '%s'", v);
                goto bad;
            }
            f->spec.hd_strategy = s;
            break;
        }
        case 7:
        case 11:
        case 12:
        case 13: {
            int b;
            if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0)
                b = 1;
            else if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0)
                b = 0;
            else {
                snprintf(msg, sizeof msg, "%s must be 1 or 0, not '%s'", names[k], v);
                goto bad;
            }
            *(k == 7 ? &f->spec.mask_resize : k == 11 ? &f->spec.strip_metadata
                      : k == 12 ? &f->spec.strip_gps : &f->spec.jpeg_reencode) = b;
            break;
        }
        case 8:
            if (pm_mp_int(v, 1, 100, &f->spec.quality)) {
                snprintf(msg, sizeof msg, "quality must be a whole number from 1 to 100, not '%s'", v);
                goto bad;
            }
            break;
        case 9:
            if (pm_mp_int(v, 64, 2048, &f->spec.input_size) || f->spec.input_size % 32) {
                snprintf(msg, sizeof msg,
                         "input_size must be a multiple of 32 from 64 to 2048 (portrait 512, building 1024), "
                         "not '%s'", v);
                goto bad;
            }
            break;
        case 10:
            if (pm_mp_int(v, -PM_MASK_DILATE_MAX, PM_MASK_DILATE_MAX, &f->spec.mask_dilate)) {
                snprintf(msg, sizeof msg,
                         "mask_dilate must be a whole number of pixels from -%d to %d (negative shrinks the mask), "
                         "not '%s'", PM_MASK_DILATE_MAX, PM_MASK_DILATE_MAX, v);
                goto bad;
            }
            break;
        }
    }
    if (!f->image) {
        snprintf(msg, sizeof msg, "the form has no 'image' file part; send it as e.g. curl -F image=@photo.png");
        goto bad;
    }
    return 0;

bad:
    pm_metrics_count_rejected(&srv->metrics, PM_REJECT_INVALID);
    send_error(r, 400, "bad_request", msg);
    return -1;
}

/* Checks the state and the Content-Type, reads the body and parses the form.
 * On success *body is the caller's (pm_free). */
static int receive_submission(req *r, int task, form *f, uint8_t **body)
{
    pm_server *srv = r->srv;
    *body = NULL;
    int st = atomic_load(&srv->state);
    if (st != PM_SERVER_READY) {
        r->body_unread = 1;
        pm_metrics_count_rejected(&srv->metrics, PM_REJECT_UNAVAILABLE);
        if (st == PM_SERVER_LOADING)
            send_error_ex(r, 503, "loading", "the server is still loading its models; retry in a few seconds", 5,
                          NULL);
        else
            send_error_ex(r, 503, "draining",
                          "the server is shutting down and accepts no new jobs; retry on another instance or later",
                          30, NULL);
        return -1;
    }
    char boundary[128];
    if (pm_multipart_boundary(mg_get_header(r->conn, "Content-Type"), boundary, sizeof boundary)) {
        r->body_unread = 1;
        pm_metrics_count_rejected(&srv->metrics, PM_REJECT_UNSUPPORTED);
        send_error(r, 415, "unsupported_media_type", pm_error_detail());
        return -1;
    }
    size_t len;
    if (read_body(r, body, &len))
        return -1;
    if (parse_form(r, *body, len, task, f)) {
        pm_free(*body);
        *body = NULL;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ routes */

/* Submits the form's job as the request's key: 0 with *info; a PM_E* code
 * (for send_submit_error); or 1 after a 429 for the key's quota was sent. */
static int submit_owned(req *r, form *f, int sync, pm_job_info *info)
{
    pm_access *acc = &r->srv->access;
    char msg[320];
    int retry;
    snprintf(f->spec.owner, sizeof f->spec.owner, "%s", r->who.name);
    if (acc->auth)
        pm_auth_submit_lock(acc->auth, &r->who);
    int rc = pm_access_quota(acc, &r->who, msg, sizeof msg, &retry);
    if (rc) {
        pm_metrics_count_rejected(&r->srv->metrics, PM_REJECT_BUSY);
        send_error_ex(r, rc, "key_quota", msg, retry, NULL);
        rc = 1;
    } else {
        pm_error_clear();
        rc = pm_sched_submit(r->srv->sched, &f->spec, sync, f->image->data, f->image->len,
                             f->image->has_filename ? f->image->filename : NULL, f->mask ? f->mask->data : NULL,
                             f->mask ? f->mask->len : 0,
                             f->mask && f->mask->has_filename ? f->mask->filename : NULL, info);
        if (rc == 0 && acc->auth)
            pm_auth_count(acc->auth, &r->who, PM_AUTH_SUBMITTED);
    }
    if (acc->auth)
        pm_auth_submit_unlock(acc->auth, &r->who);
    return rc;
}

static void route_submit(req *r)
{
    form *f = pm_malloc(sizeof *f);
    if (!f) {
        send_error(r, 503, "out_of_memory", "out of memory; retry later");
        return;
    }
    uint8_t *body = NULL;
    if (receive_submission(r, -1, f, &body))
        goto free_form;
    pm_job_info info;
    int rc = submit_owned(r, f, 0, &info);
    if (rc) {
        if (rc != 1)
            send_submit_error(r, rc, pm_error_detail());
        goto free_body;
    }
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_printf(&sb,
                 "{\"id\":\"%s\",\"state\":\"%s\",\"queue_position\":%d,\"task\":\"%s\",\"model\":", info.id,
                 pm_job_state_name(info.state), info.queue_position, pm_task_name(info.spec.task));
    pm_sb_json_str(&sb, info.spec.model);
    pm_sb_printf(&sb,
                 ",\"status_url\":\"" API_PREFIX "/jobs/%s\",\"result_url\":\"" API_PREFIX
                 "/jobs/%s/result\",\"events_url\":\"/ws?job=%s\"}",
                 info.id, info.id, info.id);
    char loc[96];
    snprintf(loc, sizeof loc, API_PREFIX "/jobs/%s", info.id);
    const char *extra[] = {"Location", loc, NULL};
    send_json(r, 202, &sb, extra);
    pm_sb_free(&sb);
free_body:
    pm_free(body);
free_form:
    pm_free(f);
}

static void route_sync(req *r, enum pm_task task)
{
    pm_server *srv = r->srv;
    form *f = pm_malloc(sizeof *f);
    if (!f) {
        send_error(r, 503, "out_of_memory", "out of memory; retry later");
        return;
    }
    uint8_t *body = NULL;
    if (receive_submission(r, (int)task, f, &body))
        goto free_form;
    pm_job_info info;
    int rc = submit_owned(r, f, 1, &info);
    pm_free(body);
    body = NULL;
    if (rc) {
        if (rc != 1)
            send_submit_error(r, rc, pm_error_detail());
        goto free_form;
    }
    uint8_t *out = NULL;
    size_t out_len = 0;
    pm_job_info fin;
    rc = pm_sched_wait(srv->sched, info.id, &fin, &out, &out_len);
    if (rc) {
        int status;
        const char *code = pm_error_code_name(rc);
        int retry = 0;
        switch (rc) {
        case PM_EINVAL:
        case PM_EMISMATCH:
        case PM_ENOSOURCE: status = 422; break;
        case PM_ETIMEOUT: status = 504; break;
        case PM_ECANCELLED:
            if (atomic_load(&srv->state) == PM_SERVER_DRAINING || pm_sched_draining(srv->sched)) {
                status = 503;
                code = "draining";
                retry = 30;
            } else {
                status = 409;
            }
            break;
        case PM_ENOMEM: status = 503; retry = 5; break;
        default: status = 500; break;
        }
        send_error_ex(r, status, code, fin.error[0] ? fin.error : pm_strerror(rc), retry, NULL);
        goto free_form;
    }
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", fin.finished > fin.started ? fin.finished - fin.started : 0.0);
    const char *extra[] = {"X-Pixmend-Job", fin.id, "X-Pixmend-Seconds", secs, "X-Pixmend-Model", fin.spec.model,
                           NULL};
    enum pm_format fmt = fin.spec.format;
    send_response(r, 200, fmt == PM_FMT_JPEG ? "image/jpeg" : fmt == PM_FMT_WEBP ? "image/webp" : "image/png", out,
                  out_len, extra);
    pm_free(out);
free_form:
    pm_free(body);
    pm_free(f);
}

static int valid_id(const char *s, size_t n)
{
    if (n != PM_JOB_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void send_unknown_job(req *r, const char *id)
{
    char msg[256];
    snprintf(msg, sizeof msg, "no job '%.40s': the id is unknown or the job expired", id);
    send_error(r, 404, "job_not_found", msg);
}

/* Job `id` if it exists and the request's key may see it (404 otherwise). */
static int get_owned(req *r, const char *id, pm_job_info *info)
{
    return pm_sched_get(r->srv->sched, id, info) == 0 && pm_access_owns(&r->who, info) ? 0 : PM_ENOENT;
}

static void route_job(req *r, const char *id)
{
    pm_job_info info;
    int rc = get_owned(r, id, &info);
    if (rc == 0 && strcmp(r->method, "DELETE") == 0)
        rc = pm_sched_cancel(r->srv->sched, id, &info);
    if (rc == PM_ENOENT) {
        send_unknown_job(r, id);
        return;
    }
    if (rc == PM_EINVAL) {
        send_error(r, 409, "conflict", pm_error_detail());
        return;
    }
    pm_sb sb;
    pm_sb_init(&sb);
    job_json(&sb, &info);
    send_json(r, strcmp(r->method, "DELETE") == 0 ? 202 : 200, &sb, NULL);
    pm_sb_free(&sb);
}

static void route_result(req *r, const char *id)
{
    pm_server *srv = r->srv;
    pm_job_info info;
    char msg[600];
    if (get_owned(r, id, &info)) {
        send_unknown_job(r, id);
        return;
    }
    if (info.state != PM_JOB_DONE || info.sync) {
        if (info.state == PM_JOB_QUEUED || info.state == PM_JOB_RUNNING) {
            snprintf(msg, sizeof msg, "job %s is %s; its result is not ready (watch /ws?job=%s or poll %s/jobs/%s)",
                     id, pm_job_state_name(info.state), id, API_PREFIX, id);
            send_error_ex(r, 409, "not_ready", msg, 1, NULL);
        } else {
            snprintf(msg, sizeof msg, "job %s %s and has no result: %s", id, pm_job_state_name(info.state),
                     info.error);
            send_error(r, 409, "no_result", msg);
        }
        return;
    }
    char path[4096];
    pm_sched_result_path(srv->sched, &info, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        snprintf(msg, sizeof msg, "the result of job %s is gone (expired or evicted)", id);
        send_error(r, 404, "result_not_found", msg);
        return;
    }
    char lenbuf[32], disp[160], fname[112];
    snprintf(lenbuf, sizeof lenbuf, "%lld", (long long)st.st_size);
    const char *ext = info.spec.format == PM_FMT_JPEG ? "jpg" : info.spec.format == PM_FMT_WEBP ? "webp" : "png";
    snprintf(disp, sizeof disp, "%s.%s", id, ext);
    pm_hdr_filename(fname, sizeof fname, disp);
    snprintf(disp, sizeof disp, "inline; filename=\"%s\"", fname);
    mg_response_header_start(r->conn, 200);
    mg_response_header_add(r->conn, "Content-Type",
                           info.spec.format == PM_FMT_JPEG   ? "image/jpeg"
                           : info.spec.format == PM_FMT_WEBP ? "image/webp"
                                                             : "image/png",
                           -1);
    mg_response_header_add(r->conn, "Content-Length", lenbuf, -1);
    mg_response_header_add(r->conn, "Content-Disposition", disp, -1);
    mg_response_header_add(r->conn, "Cache-Control", "private, max-age=3600", -1);
    pm_hdr_security(r->conn);
    pm_hdr_cors(r->conn, srv->cfg.cors_origin);
    mg_response_header_send(r->conn);
    r->status = 200;
    pm_metrics_count_response(&srv->metrics, 200);
    /* civetweb threads have 100 KiB stacks: the copy buffer lives on the heap. */
    size_t bufsize = 64 * 1024;
    char *buf = strcmp(r->method, "HEAD") != 0 ? pm_malloc(bufsize) : NULL;
    if (buf) {
        ssize_t n;
        while ((n = read(fd, buf, bufsize)) > 0)
            if (mg_write(r->conn, buf, (size_t)n) <= 0)
                break;
        pm_free(buf);
    }
    close(fd);
}

static void route_queue(req *r)
{
    pm_sched *s = r->srv->sched;
    pm_sched_stats st;
    pm_sched_get_stats(s, &st);
    int max = st.queue_max + st.workers + 8;
    if (max > 2000)
        max = 2000;
    pm_job_info *list = pm_malloc((size_t)max * sizeof *list);
    if (!list) {
        send_error(r, 503, "out_of_memory", "out of memory; retry later");
        return;
    }
    int total;
    int n = pm_sched_list(s, list, max, &total);
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_printf(&sb, "{\"depth\":%d,\"max\":%d,\"running\":[", st.queue_depth, st.queue_max);
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (list[i].state != PM_JOB_RUNNING || !pm_access_owns(&r->who, &list[i]))
            continue;
        pm_sb_puts(&sb, first ? "" : ",");
        first = 0;
        job_json(&sb, &list[i]);
    }
    pm_sb_puts(&sb, "],\"queued\":[");
    first = 1;
    for (int i = 0; i < n; i++) {
        if (list[i].state != PM_JOB_QUEUED || !pm_access_owns(&r->who, &list[i]))
            continue;
        pm_sb_puts(&sb, first ? "" : ",");
        first = 0;
        job_json(&sb, &list[i]);
    }
    pm_sb_printf(&sb, "],\"truncated\":%s}", n < total ? "true" : "false");
    send_json(r, 200, &sb, NULL);
    pm_sb_free(&sb);
    pm_free(list);
}

#define RECENT_JOBS 20

/* GET /api/v1/stats: the fields docs/ui.md lists (the dashboard's), plus a
 * ring of samples for charts. Big buffers are on the heap (small stacks). */
static void route_stats(req *r)
{
    pm_server *srv = r->srv;
    pm_sched_stats *st = pm_malloc(sizeof *st);
    pm_sample *hist = pm_malloc(STATS_SAMPLES * sizeof *hist);
    pm_job_info *recent = pm_malloc(RECENT_JOBS * sizeof *recent);
    if (!st || !hist || !recent) {
        send_error(r, 503, "out_of_memory", "out of memory; retry later");
        goto free_buffers;
    }
    pm_ws_stats ws;
    pm_sched_get_stats(srv->sched, st);
    pm_ws_get_stats(srv->hub, &ws);
    int nh = srv->sampler ? pm_sampler_history(srv->sampler, hist, STATS_SAMPLES) : 0;
    int nr = pm_sched_recent(srv->sched, recent, RECENT_JOBS);
    const pm_sample *x = nh > 0 ? &hist[nh - 1] : NULL;
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_printf(&sb,
                 "{\"version\":\"%s\",\"state\":\"%s\",\"uptime_s\":%.3f,\"jobs\":{\"submitted\":%" PRIu64
                 ",\"done\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64 ",\"rejected\":%" PRIu64
                 ",\"timed_out\":%" PRIu64 ",\"recovered\":%" PRIu64 "},",
                 PM_VERSION_STRING, state_name(atomic_load(&srv->state)), pm_now() - srv->t_start, st->submitted,
                 st->done, st->failed, st->cancelled, pm_metrics_rejected_total(&srv->metrics), st->timed_out,
                 st->recovered);
    pm_sb_printf(&sb,
                 "\"queue\":{\"depth\":%d,\"max\":%d,\"lanes\":{\"fast\":%d,\"normal\":%d},\"fast_lane_pixels\":%" PRIu64
                 ",\"drain_rate\":%.4f,\"max_wait_s\":%g,\"aging_s\":%g},\"running\":%d,\"workers\":%d,\"threads\":%d,"
                 "\"avg_run_seconds\":%.6f,\"results\":{\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 "},",
                 st->queue_depth, st->queue_max, st->lane_depth[0], st->lane_depth[1], st->fast_lane_pixels,
                 st->drain_rate, st->max_wait, st->aging_seconds, st->running, st->workers, st->threads,
                 st->avg_run_seconds, st->results_count, st->results_bytes);
    pm_sb_puts(&sb, "\"cpu\":{\"per_core\":[");
    for (int i = 0; x && i < x->ncpu; i++)
        pm_sb_printf(&sb, "%s%.1f", i ? "," : "", x->cpu_percent[i]);
    pm_sb_printf(&sb, "],\"total\":%.1f,\"process\":%.1f},", x ? x->cpu_total_percent : 0.0,
                 x ? x->process_cpu_percent : 0.0);
    pm_sb_printf(&sb,
                 "\"memory\":{\"rss_bytes\":%" PRIu64 ",\"budget_bytes\":%" PRIu64 ",\"reserved_bytes\":%" PRIu64
                 ",\"pm_mem_in_use\":%zu,\"pm_mem_peak\":%zu,\"host_total_bytes\":%" PRIu64
                 ",\"host_available_bytes\":%" PRIu64 ",\"cgroup_max_bytes\":%" PRIu64 ",\"cgroup_current_bytes\":%" PRIu64
                 "},",
                 pm_read_rss(), st->mem_budget, st->mem_reserved, pm_mem_in_use(), pm_mem_peak(),
                 x ? x->host_total : 0, x ? x->host_available : 0, x && x->has_cgroup_limit ? x->cgroup_max : 0,
                 x && x->has_cgroup_limit ? x->cgroup_current : 0);
    pm_sb_puts(&sb, "\"gpus\":[");
    for (int i = 0; x && i < x->ngpu; i++) {
        pm_sb_printf(&sb, "%s{\"index\":%d,\"name\":", i ? "," : "", i);
        pm_sb_json_str(&sb, x->gpu[i].name);
        pm_sb_printf(&sb, ",\"mem_used_bytes\":%" PRIu64 ",\"mem_total_bytes\":%" PRIu64 ",\"util_percent\":%u}",
                     x->gpu[i].mem_used, x->gpu[i].mem_total, x->gpu[i].util_percent);
    }
    pm_sb_printf(&sb,
                 "],\"admission\":{\"paused\":%s,\"gauge\":%.4f,\"source\":\"%s\",\"high_mark\":%.4f,\"low_mark\":%.4f,"
                 "\"pauses\":%" PRIu64 ",\"resumes\":%" PRIu64 ",\"budget_bytes\":%" PRIu64 ",\"transitions\":[",
                 st->paused ? "true" : "false", st->gauge, st->gauge_source ? st->gauge_source : "host", st->high_mark,
                 st->low_mark, st->pauses, st->resumes, st->mem_budget);
    for (int i = 0; i < st->ntransitions; i++)
        pm_sb_printf(&sb, "%s{\"t\":%.3f,\"paused\":%s,\"gauge\":%.4f}", i ? "," : "", st->transitions[i].t,
                     st->transitions[i].paused ? "true" : "false", st->transitions[i].gauge);
    pm_sb_printf(&sb, "]},\"latency_ms\":{\"p50\":%.1f,\"p90\":%.1f,\"p95\":%.1f,\"p99\":%.1f,\"count\":%" PRIu64 "},",
                 pm_hist_quantile(&st->run_seconds, 0.5) * 1000, pm_hist_quantile(&st->run_seconds, 0.9) * 1000,
                 pm_hist_quantile(&st->run_seconds, 0.95) * 1000, pm_hist_quantile(&st->run_seconds, 0.99) * 1000,
                 st->run_seconds.count);
    pm_sb_printf(&sb, "\"queue_wait_ms\":{\"p50\":%.1f,\"p95\":%.1f},\"disk_write_ms\":{\"p50\":%.2f,\"p95\":%.2f,"
                      "\"count\":%" PRIu64 "},",
                 pm_hist_quantile(&st->queue_wait, 0.5) * 1000, pm_hist_quantile(&st->queue_wait, 0.95) * 1000,
                 pm_hist_quantile(&st->disk_write, 0.5) * 1000, pm_hist_quantile(&st->disk_write, 0.95) * 1000,
                 st->disk_write.count);
    pm_sb_puts(&sb, "\"models\":[");
    for (int i = 0; i < st->nmodels; i++) {
        const pm_memlaw *l = &st->models[i].law;
        pm_sb_printf(&sb, "%s{\"name\":", i ? "," : "");
        pm_sb_json_str(&sb, st->models[i].name);
        pm_sb_printf(&sb,
                     ",\"task\":\"%s\",\"done\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64
                     ",\"memory_law\":{\"a_bytes\":%.0f,\"b_bytes_per_pixel\":%.4f,\"source\":\"%s\"}}",
                     pm_task_name(st->models[i].task), st->models[i].done, st->models[i].failed,
                     st->models[i].cancelled, l->a, l->b, l->source);
    }
    pm_sb_puts(&sb, "],\"recent_jobs\":[");
    for (int i = 0, shown = 0; i < nr; i++) {
        const pm_job_info *j = &recent[i];
        if (!pm_access_owns(&r->who, j))
            continue;
        pm_sb_printf(&sb, "%s{\"id\":\"%s\",\"task\":\"%s\",\"model\":", shown++ ? "," : "", j->id,
                     pm_task_name(j->spec.task));
        pm_sb_json_str(&sb, j->spec.model);
        pm_sb_printf(&sb, ",\"state\":\"%s\",\"width\":%d,\"height\":%d,\"lane\":\"%s\"", pm_job_state_name(j->state),
                     j->width, j->height, j->lane == 0 ? "fast" : "normal");
        json_time(&sb, "created_at", j->created);
        json_time(&sb, "started_at", j->started);
        json_time(&sb, "finished_at", j->finished);
        pm_sb_printf(&sb, ",\"predicted_bytes\":%" PRIu64 ",\"peak_bytes\":%" PRIu64 ",\"error\":", j->predicted_bytes,
                     j->peak_bytes);
        if (j->error[0] && (j->state == PM_JOB_FAILED || j->state == PM_JOB_CANCELLED))
            pm_sb_json_str(&sb, j->error);
        else
            pm_sb_puts(&sb, "null");
        pm_sb_puts(&sb, "}");
    }
    pm_sb_puts(&sb, "],\"samples\":[");
    for (int i = 0; i < nh; i++) {
        const pm_sample *h = &hist[i];
        const char *src;
        double g = pm_gate_usage(h, &src);
        pm_sb_printf(&sb, "%s{\"t\":%.3f,\"cpu\":%.1f,\"process_cpu\":%.1f,\"rss_bytes\":%" PRIu64 ",\"gauge\":%.4f",
                     i ? "," : "", h->time, h->cpu_total_percent, h->process_cpu_percent, h->rss, g);
        if (h->ngpu > 0)
            pm_sb_printf(&sb, ",\"gpu_mem_used_bytes\":%" PRIu64, h->gpu[0].mem_used);
        pm_sb_puts(&sb, "}");
    }
    pm_sb_printf(&sb, "],\"websocket\":{\"clients\":%d,\"messages\":%" PRIu64 ",\"overflows\":%" PRIu64 "}}", ws.clients,
                 ws.messages_total, ws.overflowed_total);
    send_json(r, 200, &sb, NULL);
    pm_sb_free(&sb);
free_buffers:
    pm_free(recent);
    pm_free(hist);
    pm_free(st);
}

static void route_models(req *r)
{
    pm_sched *s = r->srv->sched;
    const pm_model_desc *loaded[16];
    int nl = pm_sched_models(s, loaded, 16);
    if (nl > 16)
        nl = 16;
    const char *def_inpaint = pm_sched_default_model(s, PM_TASK_INPAINT);
    const char *def_color = pm_sched_default_model(s, PM_TASK_COLORIZE);
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_puts(&sb, "{\"models\":[");
    for (int i = 0; pm_models[i]; i++) {
        const pm_model_desc *d = pm_models[i];
        int is_loaded = 0;
        for (int k = 0; k < nl; k++)
            if (loaded[k] == d)
                is_loaded = 1;
        const char *def = d->task == PM_TASK_COLORIZE ? def_color : def_inpaint;
        pm_sb_printf(&sb, "%s{\"name\":", i ? "," : "");
        pm_sb_json_str(&sb, d->name);
        pm_sb_printf(&sb, ",\"task\":\"%s\",\"loaded\":%s,\"default\":%s,\"needs_file\":%s}", pm_task_name(d->task),
                     is_loaded ? "true" : "false", is_loaded && def && strcmp(def, d->name) == 0 ? "true" : "false",
                     d->needs_file ? "true" : "false");
    }
    const char *found = atomic_load(&r->srv->found);
    pm_sb_printf(&sb, "]%s%s}", found ? ",\"found\":" : "", found ? found : "");
    send_json(r, 200, &sb, NULL);
    pm_sb_free(&sb);
}

/* ------------------------------------------------------------ handlers */

static void req_init(req *r, pm_server *srv, struct mg_connection *conn)
{
    memset(r, 0, sizeof *r);
    r->srv = srv;
    r->conn = conn;
    r->ri = mg_get_request_info(conn);
    r->method = r->ri->request_method ? r->ri->request_method : "";
    r->path = r->ri->local_uri ? r->ri->local_uri : "";
    r->t0 = pm_now();
}

/* After an early answer (413, 503, 415 before the body was read), reads and
 * discards what the client is still sending, for up to 2 s and
 * --max-upload + 16 MiB bytes, so that closing the connection does not reset
 * it before the client has read the answer (a client still sending more than
 * that sees the answer only if it reads while it sends). */
static void drain_body(req *r)
{
    pm_server *srv = r->srv;
    int slot = pm_watch_begin(srv->watch, r->conn);
    if (slot < 0)
        return; /* unwatched, a trickling client could hold the thread */
    size_t bufsize = 64 * 1024;
    char *buf = pm_malloc(bufsize);
    double end = pm_now() + 2.0;
    pm_watch_deadline(srv->watch, slot, end);
    uint64_t total = 0;
    while (buf && total <= srv->cfg.max_upload + (16u << 20) && pm_now() < end) {
        int n = mg_read(r->conn, buf, bufsize);
        if (n <= 0)
            break;
        total += (uint64_t)n;
    }
    pm_watch_end(srv->watch, slot);
    pm_free(buf);
}

static int req_done(req *r, enum pm_log_level level)
{
    if (r->body_unread)
        drain_body(r);
    char status[8], ms[32];
    snprintf(status, sizeof status, "%d", r->status);
    snprintf(ms, sizeof ms, "%.1f", (pm_now() - r->t0) * 1000.0);
    pm_logkv(r->status >= 500 ? PM_LOG_WARN : level, "http", "request", "method", r->method, "path", r->path,
             "status", status, "ms", ms, "client", r->ri->remote_addr, NULL);
    return r->status ? r->status : 500;
}

static int is(const req *r, const char *m)
{
    return strcmp(r->method, m) == 0;
}

/* Who makes the request (with --api-keys: a valid key, within its rate);
 * answers 401 or 429 itself and returns -1. */
static int authorize(req *r)
{
    char msg[256];
    int retry;
    int st = pm_access_request(&r->srv->access, r->conn, &r->who, msg, sizeof msg, &retry);
    if (st == 0)
        return 0;
    r->body_unread = 1;
    if (st == 429)
        pm_metrics_count_rejected(&r->srv->metrics, PM_REJECT_BUSY);
    send_error_ex(r, st, st == 401 ? "unauthorized" : "rate_limited", msg, retry, NULL);
    return -1;
}

static int api_handler(struct mg_connection *conn, void *cbdata)
{
    req r;
    req_init(&r, cbdata, conn);
    size_t plen = strlen(API_PREFIX);
    const char *p = strncmp(r.path, API_PREFIX, plen) == 0 ? r.path + plen : r.path;
    int get = is(&r, "GET") || is(&r, "HEAD");
    if (is(&r, "OPTIONS") && r.srv->cfg.cors_origin)
        r.status = pm_hdr_preflight(conn, r.srv->cfg.cors_origin);
    else if (authorize(&r))
        ;
    else if (strcmp(p, "/jobs") == 0) {
        if (is(&r, "POST"))
            route_submit(&r);
        else
            send_method_not_allowed(&r, "POST");
    } else if (strncmp(p, "/jobs/", 6) == 0) {
        const char *id = p + 6;
        const char *slash = strchr(id, '/');
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        char idbuf[PM_JOB_ID_LEN + 1];
        if (!valid_id(id, idlen)) {
            char shown[48];
            snprintf(shown, sizeof shown, "%.*s", (int)(idlen < 40 ? idlen : 40), id);
            send_unknown_job(&r, shown);
        } else {
            memcpy(idbuf, id, idlen);
            idbuf[idlen] = '\0';
            if (!slash) {
                if (get || is(&r, "DELETE"))
                    route_job(&r, idbuf);
                else
                    send_method_not_allowed(&r, "GET, DELETE");
            } else if (strcmp(slash, "/result") == 0) {
                if (get)
                    route_result(&r, idbuf);
                else
                    send_method_not_allowed(&r, "GET");
            } else {
                send_error(&r, 404, "not_found", "no such route; see docs/api.md");
            }
        }
    } else if (strcmp(p, "/inpaint") == 0 || strcmp(p, "/colorize") == 0) {
        if (is(&r, "POST"))
            route_sync(&r, p[1] == 'i' ? PM_TASK_INPAINT : PM_TASK_COLORIZE);
        else
            send_method_not_allowed(&r, "POST");
    } else if (strcmp(p, "/queue") == 0 || strcmp(p, "/stats") == 0 || strcmp(p, "/models") == 0) {
        if (!get)
            send_method_not_allowed(&r, "GET");
        else if (p[1] == 'q')
            route_queue(&r);
        else if (p[1] == 's')
            route_stats(&r);
        else
            route_models(&r);
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "no route %s %.120s; see docs/api.md for the API", r.method, r.path);
        send_error(&r, 404, "not_found", msg);
    }
    return req_done(&r, get ? PM_LOG_DEBUG : PM_LOG_INFO);
}

static int healthz_handler(struct mg_connection *conn, void *cbdata)
{
    req r;
    req_init(&r, cbdata, conn);
    pm_server *srv = cbdata;
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sched_stats ss;
    pm_sched_get_stats(srv->sched, &ss);
    uint64_t host_total = 0, host_avail = 0, cg_max = 0, cg_cur = 0;
    int cg_limited = 0;
    pm_read_meminfo(&host_total, &host_avail);
    pm_read_cgroup_memory(&cg_limited, &cg_max, &cg_cur);
    pm_sb_printf(&sb,
                 "{\"status\":\"ok\",\"state\":\"%s\",\"version\":\"%s\",\"uptime_s\":%.3f,"
                 "\"memory\":{\"rss_bytes\":%" PRIu64 ",\"pm_mem_in_use\":%zu,\"pm_mem_peak\":%zu,"
                 "\"budget_bytes\":%" PRIu64 ",\"reserved_bytes\":%" PRIu64 ",\"host_total_bytes\":%" PRIu64
                 ",\"host_available_bytes\":%" PRIu64 ",\"cgroup\":",
                 state_name(atomic_load(&srv->state)), PM_VERSION_STRING, pm_now() - srv->t_start, pm_read_rss(),
                 pm_mem_in_use(), pm_mem_peak(), ss.mem_budget, ss.mem_reserved, host_total, host_avail);
    if (cg_limited)
        pm_sb_printf(&sb, "{\"max_bytes\":%" PRIu64 ",\"current_bytes\":%" PRIu64 "}", cg_max, cg_cur);
    else
        pm_sb_puts(&sb, "null");
    pm_sb_printf(&sb, "},\"admission\":{\"paused\":%s,\"gauge\":%.4f}}", ss.paused ? "true" : "false", ss.gauge);
    send_json(&r, 200, &sb, NULL);
    pm_sb_free(&sb);
    return req_done(&r, PM_LOG_DEBUG);
}

static int readyz_handler(struct mg_connection *conn, void *cbdata)
{
    req r;
    req_init(&r, cbdata, conn);
    pm_server *srv = cbdata;
    int st = atomic_load(&srv->state);
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sched_stats ss;
    pm_sched_get_stats(srv->sched, &ss);
    if (st == PM_SERVER_READY && ss.paused) {
        pm_sb_printf(&sb,
                     "{\"ready\":false,\"state\":\"paused\",\"admission\":{\"paused\":true,\"gauge\":%.4f,"
                     "\"high_mark\":%.4f,\"low_mark\":%.4f,\"source\":\"%s\"},\"error\":{\"code\":\"paused\","
                     "\"message\":\"intake is paused: memory in use (%.0f %% by %s) reached the pause mark (%.0f %%); "
                     "it resumes below %.0f %%\"}}",
                     ss.gauge, ss.high_mark, ss.low_mark, ss.gauge_source, ss.gauge * 100, ss.gauge_source,
                     ss.high_mark * 100, ss.low_mark * 100);
        const char *extra[] = {"Retry-After", "10", NULL};
        send_json(&r, 503, &sb, extra);
    } else if (st == PM_SERVER_READY) {
        pm_sb_puts(&sb, "{\"ready\":true,\"state\":\"ready\"}");
        send_json(&r, 200, &sb, NULL);
    } else {
        pm_sb_printf(&sb, "{\"ready\":false,\"state\":\"%s\",\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     state_name(st), state_name(st),
                     st == PM_SERVER_LOADING ? "the server is loading its models"
                                             : "the server is shutting down");
        const char *extra[] = {"Retry-After", st == PM_SERVER_LOADING ? "5" : "30", NULL};
        send_json(&r, 503, &sb, extra);
    }
    pm_sb_free(&sb);
    return req_done(&r, PM_LOG_DEBUG);
}

static int metrics_handler(struct mg_connection *conn, void *cbdata)
{
    req r;
    req_init(&r, cbdata, conn);
    pm_server *srv = cbdata;
    if (srv->cfg.metrics_auth && srv->access.auth) {
        if (authorize(&r))
            return req_done(&r, PM_LOG_INFO);
        if (!r.who.admin) {
            send_error(&r, 403, "forbidden", "/metrics needs an admin key on this server (--metrics-auth)");
            return req_done(&r, PM_LOG_INFO);
        }
    }
    pm_sched_stats st;
    pm_ws_stats ws;
    pm_sched_get_stats(srv->sched, &st);
    pm_ws_get_stats(srv->hub, &ws);
    pm_sample *x = pm_malloc(sizeof *x); /* large: not on a civetweb stack */
    int have = x && srv->sampler && pm_sampler_latest(srv->sampler, x) == 0;
    pm_metrics_view v = {
        .sched = &st,
        .ws = &ws,
        .state = atomic_load(&srv->state),
        .uptime_seconds = pm_now() - srv->t_start,
        .rss_bytes = pm_read_rss(),
        .heap_bytes = pm_mem_in_use(),
        .sample = have ? x : NULL,
    };
    pm_sb sb;
    pm_sb_init(&sb);
    pm_metrics_render(&sb, &srv->metrics, &v);
    if (srv->access.auth)
        pm_auth_metrics(srv->access.auth, &sb);
    if (sb.failed)
        send_error(&r, 503, "out_of_memory", "out of memory");
    else
        send_response(&r, 200, "text/plain; version=0.0.4; charset=utf-8", sb.buf, sb.len, NULL);
    pm_sb_free(&sb);
    pm_free(x);
    return req_done(&r, PM_LOG_DEBUG);
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    pm_debug("civetweb", "%s", message);
    return 1;
}

/* Checks slow bodies every TICK and sends a status event every STATUS_PERIOD. */
static void *ticker_main(void *arg)
{
    pm_server *srv = arg;
    double next_status = pm_now() + STATUS_PERIOD;
    pthread_mutex_lock(&srv->tick_lock);
    while (!srv->tick_stop) {
        struct timespec ts;
        pm_deadline(&ts, TICK);
        pthread_cond_timedwait(&srv->tick_cv, &srv->tick_lock, &ts);
        if (srv->tick_stop)
            break;
        pthread_mutex_unlock(&srv->tick_lock);
        double now = pm_now();
        int cut = pm_watch_check(srv->watch, now);
        if (cut)
            pm_info("slow_body", "%d request(s) cut off for sending their body too slowly", cut);
        if (now >= next_status) {
            next_status = now + STATUS_PERIOD;
            broadcast_status(srv);
        }
        pthread_mutex_lock(&srv->tick_lock);
    }
    pthread_mutex_unlock(&srv->tick_lock);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

int pm_server_start(const pm_server_config *cfg, pm_sched *sched, pm_server **out)
{
    int rc;
    *out = NULL;
    pm_server *srv = pm_calloc(1, sizeof *srv);
    if (!srv)
        return pm_errorf(PM_ENOMEM, "out of memory starting the server");
    srv->cfg = *cfg;
    srv->sched = sched;
    srv->t_start = pm_now();
    atomic_init(&srv->state, PM_SERVER_LOADING);
    pm_metrics_init(&srv->metrics);
    pthread_mutex_init(&srv->tick_lock, NULL);
    pm_cond_init_monotonic(&srv->tick_cv);
    srv->listen = pm_strdup(cfg->listen ? cfg->listen : "127.0.0.1:8080");
    if (cfg->web_dir)
        srv->web_dir = pm_strdup(cfg->web_dir);
    if (!srv->listen || (cfg->web_dir && !srv->web_dir)) {
        rc = pm_errorf(PM_ENOMEM, "out of memory starting the server");
        goto free_server;
    }
    const char *colon = strrchr(srv->listen, ':');
    if (colon)
        snprintf(srv->host, sizeof srv->host, "%.*s", (int)(colon - srv->listen), srv->listen);
    else
        snprintf(srv->host, sizeof srv->host, "0.0.0.0");
    if ((rc = pm_watch_create(cfg->http_threads > 0 ? cfg->http_threads : 64, &srv->watch)))
        goto free_server;
    if ((rc = pm_ws_hub_create(cfg->ws_max_clients, cfg->ws_outbox, status_event, srv, &srv->hub)))
        goto free_server;

    /* The sampler and the event sink exist before the first request can be
     * answered: request threads read srv->sampler without a lock. */
    if (cfg->sample_interval > 0 &&
        (rc = pm_sampler_start(&srv->sampler, cfg->sample_interval, SAMPLE_RING, on_sample, srv)))
        goto free_hub;
    pm_sched_set_event_fn(sched, on_job_event, srv);

    pm_server_opts opts;
    if ((cfg->tls_cert && (rc = pm_server_tls_prepare())) ||
        (rc = pm_server_opts_build(cfg, srv->listen, srv->web_dir, &opts)))
        goto stop_sampler;
    srv->access = (pm_access){.auth = cfg->auth, .sched = sched, .key_max_queued = cfg->key_max_queued,
                              .cors_origin = cfg->cors_origin};

    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    cb.begin_request = pm_access_begin_request;
    cb.init_connection = pm_access_init_connection;
    cb.connection_close = pm_access_connection_close;
    if (cfg->tls_cert)
        cb.init_ssl = pm_server_init_tls;
    mg_init_library(cfg->tls_cert ? MG_FEATURES_TLS : 0);
    char errtext[256] = "";
    unsigned errcode = 0;
    struct mg_error_data err = {.code = &errcode, .text = errtext, .text_buffer_size = sizeof errtext};
    struct mg_init_data init = {.callbacks = &cb, .user_data = &srv->cfg, .configuration_options = opts.v};
    srv->ctx = mg_start2(&init, &err);
    pm_server_opts_free(&opts);
    if (!srv->ctx) {
        rc = pm_server_start_error(cfg, srv->listen, errtext[0] ? errtext : "civetweb failed to start");
        goto exit_library;
    }
    struct mg_server_port ports[4];
    int np = mg_get_server_ports(srv->ctx, 4, ports);
    srv->port = np > 0 ? ports[0].port : 0;

    mg_set_request_handler(srv->ctx, API_PREFIX, api_handler, srv);
    mg_set_request_handler(srv->ctx, "/healthz", healthz_handler, srv);
    mg_set_request_handler(srv->ctx, "/readyz", readyz_handler, srv);
    mg_set_request_handler(srv->ctx, "/metrics", metrics_handler, srv);
    pm_ws_hub_set_admit(srv->hub, pm_access_ws_admit, &srv->access);
    pm_ws_hub_attach(srv->hub, srv->ctx, "/ws");

    if (pthread_create(&srv->ticker, NULL, ticker_main, srv) == 0)
        srv->ticker_started = 1;
    *out = srv;
    return 0;

exit_library:
    mg_exit_library();
stop_sampler:
    pm_sched_set_event_fn(sched, NULL, NULL);
    pm_sampler_stop(srv->sampler);
free_hub:
    pm_ws_hub_destroy(srv->hub);
free_server:
    pm_watch_destroy(srv->watch);
    pthread_mutex_destroy(&srv->tick_lock);
    pthread_cond_destroy(&srv->tick_cv);
    pm_free(srv->listen);
    pm_free(srv->web_dir);
    pm_free(srv);
    return rc;
}

int pm_server_port(const pm_server *srv)
{
    return srv->port;
}

const char *pm_server_host(const pm_server *srv)
{
    return srv->host;
}

int pm_server_set_found(pm_server *srv, const char *json)
{
    char *copy = pm_strdup(json);
    if (!copy)
        return pm_errorf(PM_ENOMEM, "out of memory");
    char *none = NULL;
    if (!atomic_compare_exchange_strong(&srv->found, &none, copy)) {
        pm_free(copy);
        return pm_errorf(PM_EINVAL, "pm_server_set_found: already set");
    }
    return 0;
}

void pm_server_set_state(pm_server *srv, pm_server_state st)
{
    int old = atomic_exchange(&srv->state, (int)st);
    if (old != (int)st) {
        pm_info("server_state", "server is %s", state_name(st));
        broadcast_status(srv);
    }
}

void pm_server_keys_reloaded(pm_server *srv)
{
    int n = pm_ws_revalidate(srv->hub, pm_access_ws_still_valid, &srv->access);
    if (n)
        pm_info("ws_revoked", "%d WebSocket client(s) closed: their API key is no longer valid", n);
}

void pm_server_stop(pm_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, 1);
    pthread_mutex_lock(&srv->tick_lock);
    srv->tick_stop = 1;
    pthread_cond_signal(&srv->tick_cv);
    pthread_mutex_unlock(&srv->tick_lock);
    if (srv->ticker_started)
        pthread_join(srv->ticker, NULL);
    pm_sched_set_event_fn(srv->sched, NULL, NULL);
    /* Let WebSocket clients receive the last events (the drain's) first. */
    pm_ws_flush(srv->hub, 2.0);
    mg_stop(srv->ctx);
    mg_exit_library();
    /* Only now: request handlers (/api/v1/stats, /metrics) read the sampler
     * until mg_stop has joined them. */
    pm_sampler_stop(srv->sampler);
    srv->sampler = NULL;
    pm_ws_hub_destroy(srv->hub);
    pm_watch_destroy(srv->watch);
    pthread_mutex_destroy(&srv->tick_lock);
    pthread_cond_destroy(&srv->tick_cv);
    pm_free(srv->listen);
    pm_free(srv->web_dir);
    pm_free(atomic_load(&srv->found));
    pm_free(srv);
}
