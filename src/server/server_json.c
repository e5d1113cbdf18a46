/* Responses and the JSON of jobs (see server_internal.h). */
#include "server/server_internal.h"

/* ------------------------------------------------------------ responses */

const char *pm_srv_state_name(int st)
{
    return st == PM_SERVER_READY ? "ready" : st == PM_SERVER_DRAINING ? "draining" : "loading";
}

/* Sends a complete response. `extra` pm_srv_is a NULL-terminated list of header
 * name/value pairs (may be NULL). */
void pm_srv_send_response(req *r, int status, const char *ctype, const void *body, size_t len,
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

void pm_srv_send_json(req *r, int status, pm_sb *sb, const char *const *extra)
{
    if (sb->failed) {
        static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
        pm_srv_send_response(r, 503, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    pm_srv_send_response(r, status, "application/json", pm_sb_str(sb), sb->len, extra);
}

void pm_srv_send_error_ex(req *r, int status, const char *code, const char *msg, int retry_after,
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
    pm_srv_send_json(r, status, &sb, extra);
    pm_sb_free(&sb);
}

void pm_srv_send_error(req *r, int status, const char *code, const char *msg)
{
    pm_srv_send_error_ex(r, status, code, msg, 0, NULL);
}

void pm_srv_send_method_not_allowed(req *r, const char *allow)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s pm_srv_is not allowed on %s; use %s", r->method, r->path, allow);
    pm_srv_send_error_ex(r, 405, "method_not_allowed", msg, 0, allow);
}

/* Answers a refused submission: status from the code, counted as rejected. */
void pm_srv_send_submit_error(req *r, int rc, const char *msg)
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
    case PM_ENOMEM:
    case PM_EUNAVAIL: status = 503; why = PM_REJECT_UNAVAILABLE; retry = 5; break;
    default: status = 500; why = PM_REJECT_INVALID; break;
    }
    pm_metrics_count_rejected(&srv->metrics, why);
    pm_srv_send_error_ex(r, status, code, msg && msg[0] ? msg : pm_strerror(rc), retry, NULL);
}

/* ------------------------------------------------------------ JSON of jobs */

void pm_srv_json_time(pm_sb *sb, const char *key, double t)
{
    if (t > 0)
        pm_sb_printf(sb, ",\"%s\":%.3f", key, t);
    else
        pm_sb_printf(sb, ",\"%s\":null", key);
}

void pm_srv_job_json(pm_sb *sb, const pm_job_info *j)
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
    pm_srv_json_time(sb, "created_at", j->created);
    pm_srv_json_time(sb, "started_at", j->started);
    pm_srv_json_time(sb, "finished_at", j->finished);
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
void pm_srv_on_job_event(void *user, pm_job_event_type type, uint64_t seq, const pm_job_info *j)
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
char *pm_srv_status_event(void *user)
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
                 pm_srv_state_name(atomic_load(&srv->state)), st.queue_depth, st.queue_max, st.running, st.workers,
                 ws.clients, pm_wall_time(), st.paused ? "true" : "false");
    if (sb.failed) {
        pm_sb_free(&sb);
        return NULL;
    }
    return sb.buf;
}

/* On the sampler thread after each sample: feeds the admission gate and
 * tells WebSocket clients about a pause or a resume. */
void pm_srv_on_sample(void *user, const pm_sample *x)
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

void pm_srv_broadcast_status(pm_server *srv)
{
    char *s = pm_srv_status_event(srv);
    if (s)
        pm_ws_broadcast(srv->hub, NULL, NULL, s, strlen(s));
    pm_free(s);
}
