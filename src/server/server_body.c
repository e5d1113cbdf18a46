/* Request bodies and multipart forms into job specs (see server_internal.h). */
#include "server/server_internal.h"

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
        pm_srv_send_error(r, 413, "too_large", msg);
        return -1;
    }
    size_t cap = cl >= 0 ? (size_t)cl : 256 * 1024;
    uint8_t *buf = pm_malloc(cap ? cap : 1);
    if (!buf) {
        r->body_unread = 1;
        pm_srv_send_error(r, 503, "out_of_memory", "out of memory reading the request body; retry later");
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
        pm_srv_send_error(r, status, code, msg);
        return -1;
    }
    *out = buf;
    *out_len = got;
    return 0;
}

/* ------------------------------------------------------------ forms */

#define FIELDS_LIST                                                                                         \
    "image, mask, task, model, priority, format, hd_strategy, mask_resize, quality, input_size, mask_dilate, " \
    "strip_metadata, strip_gps, jpeg_reencode"

/* A numeric field through the option table (sched/options.h): 0 with *out,
 * or -1 with the sentence in msg. */
static int parse_option(const char *name, const char *v, int *out, char *msg, size_t n)
{
    const pm_option_range *o = pm_option_find(name);
    if (o && pm_option_parse(o, v, out) == 0)
        return 0;
    char what[200] = "";
    if (o)
        pm_option_describe(o, what, sizeof what);
    snprintf(msg, n, "%s must be %s, not '%.63s'", name, what, v);
    return -1;
}

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
        pm_srv_send_error(r, 400, "bad_request", pm_error_detail());
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
        case 8:
        case 9:
        case 10:
            if (parse_option(names[k], v, k == 4 ? &f->spec.priority : k == 8 ? &f->spec.quality
                                           : k == 9 ? &f->spec.input_size : &f->spec.mask_dilate, msg, sizeof msg))
                goto bad;
            break;
        case 5:
            f->spec.format = pm_format_parse(v);
            if (f->spec.format == PM_FMT_UNKNOWN) {
                int n = snprintf(msg, sizeof msg, "format must be one of");
                for (int i = 0; pm_format_at(i) != PM_FMT_UNKNOWN && n > 0 && (size_t)n < sizeof msg; i++)
                    n += snprintf(msg + n, sizeof msg - (size_t)n, "%s %s", i ? "," : "", pm_format_id(pm_format_at(i)));
                if (n > 0 && (size_t)n < sizeof msg)
                    snprintf(msg + n, sizeof msg - (size_t)n, ", not '%s'", v);
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
        }
    }
    if (!f->image) {
        snprintf(msg, sizeof msg, "the form has no 'image' file part; send it as e.g. curl -F image=@photo.png");
        goto bad;
    }
    return 0;

bad:
    pm_metrics_count_rejected(&srv->metrics, PM_REJECT_INVALID);
    pm_srv_send_error(r, 400, "bad_request", msg);
    return -1;
}

/* Checks the state and the Content-Type, reads the body and parses the form.
 * On success *body is the caller's (pm_free). */
int pm_srv_receive_submission(req *r, int task, form *f, uint8_t **body)
{
    pm_server *srv = r->srv;
    *body = NULL;
    int st = atomic_load(&srv->state);
    if (st != PM_SERVER_READY) {
        r->body_unread = 1;
        pm_metrics_count_rejected(&srv->metrics, PM_REJECT_UNAVAILABLE);
        if (st == PM_SERVER_LOADING)
            pm_srv_send_error_ex(r, 503, "loading", "the server is still loading its models; retry in a few seconds", 5,
                          NULL);
        else
            pm_srv_send_error_ex(r, 503, "draining",
                          "the server is shutting down and accepts no new jobs; retry on another instance or later",
                          30, NULL);
        return -1;
    }
    char boundary[128];
    if (pm_multipart_boundary(mg_get_header(r->conn, "Content-Type"), boundary, sizeof boundary)) {
        r->body_unread = 1;
        pm_metrics_count_rejected(&srv->metrics, PM_REJECT_UNSUPPORTED);
        pm_srv_send_error(r, 415, "unsupported_media_type", pm_error_detail());
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
