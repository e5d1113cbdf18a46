/* Responses and the JSON of jobs (see server_internal.h). */
#include "server/server_internal.h"

/* ------------------------------------------------------------ responses */

const char *pm_srv_state_name(int st)
{
    return st == PM_SERVER_READY ? "ready" : st == PM_SERVER_DRAINING ? "draining" : "loading";
}

/* Sends a complete response. `extra` is a NULL-terminated list of header
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
    pm_sb_puts(&sb, "{\"error\":");
    pm_srv_error_obj(&sb, code, msg);
    pm_sb_puts(&sb, "}");
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
    snprintf(msg, sizeof msg, "%s is not allowed on %s; use %s", r->method, r->path, allow);
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

/* ------------------------------------------------------------ the wire format
 *
 * One writer per concept, each field name written once: the job object (REST
 * answers, the queue, the stats' recent jobs, and the parts WebSocket job
 * events carry), the error object, and the server, queue, memory, admission
 * and WebSocket summaries shared by /api/v1/stats, /healthz, /readyz and the
 * status/paused/resumed events. docs/api.md lists the names and
 * docs/events.schema.json describes every object; tests/integration/
 * test_contract.py checks real answers and events against that schema. */

void pm_srv_json_time(pm_sb *sb, const char *key, double t)
{
    if (t > 0)
        pm_sb_printf(sb, ",\"%s\":%.3f", key, t);
    else
        pm_sb_printf(sb, ",\"%s\":null", key);
}

void pm_srv_error_obj(pm_sb *sb, const char *code, const char *message)
{
    pm_sb_puts(sb, "{\"code\":");
    pm_sb_json_str(sb, code);
    pm_sb_puts(sb, ",\"message\":");
    pm_sb_json_str(sb, message);
    pm_sb_puts(sb, "}");
}

static const char *bool_str(int v)
{
    return v ? "true" : "false";
}

void pm_srv_job_fields(pm_sb *sb, const pm_job_info *j, unsigned fields)
{
    int ended = j->state == PM_JOB_DONE || j->state == PM_JOB_FAILED || j->state == PM_JOB_CANCELLED;
    if (fields & PM_JF_STATE)
        pm_sb_printf(sb, ",\"state\":\"%s\"", pm_job_state_name(j->state));
    if (fields & PM_JF_TASK) {
        pm_sb_printf(sb, ",\"task\":\"%s\",\"model\":", pm_task_name(j->spec.task));
        pm_sb_json_str(sb, j->spec.model);
        pm_sb_printf(sb, ",\"priority\":%d", j->spec.priority);
    }
    if (fields & PM_JF_OPTIONS) {
        const char *fmt = pm_format_id(j->spec.format);
        pm_sb_printf(sb, ",\"format\":%s%s%s,\"sync\":%s", fmt ? "\"" : "", fmt ? fmt : "null", fmt ? "\"" : "",
                     bool_str(j->sync));
        if (j->spec.task == PM_TASK_INPAINT)
            pm_sb_printf(sb, ",\"mask_dilate\":%d", j->spec.mask_dilate);
        else
            pm_sb_printf(sb, ",\"input_size\":%d", j->spec.input_size);
        pm_sb_printf(sb, ",\"strip_metadata\":%s,\"strip_gps\":%s,\"jpeg_reencode\":%s",
                     bool_str(j->spec.strip_metadata), bool_str(j->spec.strip_gps), bool_str(j->spec.jpeg_reencode));
    }
    if (fields & PM_JF_QUEUE) {
        if (j->state == PM_JOB_QUEUED && j->queue_position >= 0)
            pm_sb_printf(sb, ",\"queue_position\":%d", j->queue_position);
        else
            pm_sb_puts(sb, ",\"queue_position\":null");
        pm_sb_printf(sb, ",\"lane\":\"%s\"", j->lane == 0 ? "fast" : "normal");
    }
    if (fields & PM_JF_PROGRESS)
        pm_sb_printf(sb, ",\"progress\":{\"value\":%d,\"max\":%d}", j->progress_value, j->progress_max);
    if (fields & PM_JF_ATTEMPTS)
        pm_sb_printf(sb, ",\"attempts\":%d", j->attempts);
    if (fields & PM_JF_SIZE)
        pm_sb_printf(sb, ",\"width\":%d,\"height\":%d", j->width, j->height);
    if (fields & PM_JF_TIMES) {
        pm_srv_json_time(sb, "created_at", j->created);
        pm_srv_json_time(sb, "started_at", j->started);
        pm_srv_json_time(sb, "finished_at", j->finished);
    }
    if (fields & PM_JF_RESULT) {
        if (j->sync)
            pm_sb_puts(sb, ",\"result_url\":null");
        else
            pm_sb_printf(sb, ",\"result_url\":\"" API_PREFIX "/jobs/%s/result\"", j->id);
        if (j->state == PM_JOB_DONE)
            pm_sb_printf(sb, ",\"result_bytes\":%" PRIu64, j->result_bytes);
        else
            pm_sb_puts(sb, ",\"result_bytes\":null");
    }
    if ((fields & PM_JF_ERROR) && (j->state == PM_JOB_FAILED || j->state == PM_JOB_CANCELLED)) {
        pm_sb_puts(sb, ",\"error\":");
        pm_srv_error_obj(sb, pm_error_code_name(j->error_code), j->error);
    }
    if (fields & PM_JF_RESOURCES) {
        pm_sb_printf(sb, ",\"resources\":{\"predicted_bytes\":%" PRIu64, j->predicted_bytes);
        if (ended && j->finished > 0 && j->started > 0)
            pm_sb_printf(sb, ",\"wall_s\":%.3f,\"cpu_s\":%.3f,\"peak_bytes\":%" PRIu64 "}",
                         j->finished > j->started ? j->finished - j->started : 0.0, j->cpu_seconds, j->peak_bytes);
        else
            pm_sb_puts(sb, ",\"wall_s\":null,\"cpu_s\":null,\"peak_bytes\":null}");
    }
}

void pm_srv_job_open(pm_sb *sb, const pm_job_info *j)
{
    pm_sb_puts(sb, "{\"id\":");
    pm_sb_json_str(sb, j->id);
    pm_srv_job_fields(sb, j, PM_JF_ALL);
}

void pm_srv_job_json(pm_sb *sb, const pm_job_info *j)
{
    pm_srv_job_open(sb, j);
    pm_sb_puts(sb, "}");
}

/* What a WebSocket event of each type carries of its job (besides "job",
 * its id, and "seq"). */
static unsigned event_fields(pm_job_event_type type)
{
    switch (type) {
    case PM_EV_QUEUED: return PM_JF_STATE | PM_JF_TASK | PM_JF_QUEUE;
    case PM_EV_STARTED: return PM_JF_STATE | PM_JF_ATTEMPTS;
    case PM_EV_PROGRESS: return PM_JF_STATE | PM_JF_PROGRESS;
    case PM_EV_DONE: return PM_JF_STATE | PM_JF_RESULT | PM_JF_RESOURCES;
    case PM_EV_FAILED:
    case PM_EV_CANCELLED: return PM_JF_STATE | PM_JF_ERROR | PM_JF_RESOURCES;
    }
    return PM_JF_STATE;
}

/* The event a WebSocket client receives; called under the scheduler's lock. */
void pm_srv_on_job_event(void *user, pm_job_event_type type, uint64_t seq, const pm_job_info *j)
{
    pm_server *srv = user;
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_printf(&sb, "{\"type\":\"%s\",\"seq\":%" PRIu64 ",\"job\":", pm_job_event_name(type), seq);
    pm_sb_json_str(&sb, j->id);
    pm_srv_job_fields(&sb, j, event_fields(type));
    pm_sb_puts(&sb, "}");
    if (!sb.failed)
        pm_ws_broadcast(srv->hub, j->id, j->spec.owner, sb.buf, sb.len);
    pm_sb_free(&sb);
}

void pm_srv_server_members(pm_sb *sb, pm_server *srv)
{
    pm_sb_printf(sb, "\"state\":\"%s\",\"version\":\"%s\",\"uptime_s\":%.3f",
                 pm_srv_state_name(atomic_load(&srv->state)), PM_VERSION_STRING, pm_now() - srv->t_start);
}

void pm_srv_queue_members(pm_sb *sb, const pm_sched_stats *st, int detail)
{
    pm_sb_printf(sb, "\"depth\":%d,\"max\":%d", st->queue_depth, st->queue_max);
    if (detail)
        pm_sb_printf(sb,
                     ",\"lanes\":{\"fast\":%d,\"normal\":%d},\"fast_lane_pixels\":%" PRIu64
                     ",\"drain_rate\":%.4f,\"max_wait_s\":%g,\"aging_s\":%g",
                     st->lane_depth[0], st->lane_depth[1], st->fast_lane_pixels, st->drain_rate, st->max_wait,
                     st->aging_seconds);
}

void pm_srv_memory_members(pm_sb *sb, const pm_sched_stats *st)
{
    uint64_t host_total = 0, host_avail = 0, cg_max = 0, cg_cur = 0;
    int cg_limited = 0;
    pm_read_meminfo(&host_total, &host_avail);
    pm_read_cgroup_memory(&cg_limited, &cg_max, &cg_cur);
    pm_sb_printf(sb,
                 "\"rss_bytes\":%" PRIu64 ",\"budget_bytes\":%" PRIu64 ",\"reserved_bytes\":%" PRIu64
                 ",\"pm_mem_in_use\":%zu,\"pm_mem_peak\":%zu,\"host_total_bytes\":%" PRIu64
                 ",\"host_available_bytes\":%" PRIu64,
                 pm_read_rss(), st->mem_budget, st->mem_reserved, pm_mem_in_use(), pm_mem_peak(), host_total,
                 host_avail);
    if (cg_limited)
        pm_sb_printf(sb, ",\"cgroup_max_bytes\":%" PRIu64 ",\"cgroup_current_bytes\":%" PRIu64, cg_max, cg_cur);
    else
        pm_sb_puts(sb, ",\"cgroup_max_bytes\":null,\"cgroup_current_bytes\":null");
}

void pm_srv_admission_members(pm_sb *sb, const pm_sched_stats *st, int transitions)
{
    pm_sb_printf(sb,
                 "\"paused\":%s,\"gauge\":%.4f,\"source\":\"%s\",\"high_mark\":%.4f,\"low_mark\":%.4f,"
                 "\"pauses\":%" PRIu64 ",\"resumes\":%" PRIu64,
                 bool_str(st->paused), st->gauge, st->gauge_source ? st->gauge_source : "host", st->high_mark,
                 st->low_mark, st->pauses, st->resumes);
    if (!transitions)
        return;
    pm_sb_puts(sb, ",\"transitions\":[");
    for (int i = 0; i < st->ntransitions; i++)
        pm_sb_printf(sb, "%s{\"t\":%.3f,\"paused\":%s,\"gauge\":%.4f}", i ? "," : "", st->transitions[i].t,
                     bool_str(st->transitions[i].paused), st->transitions[i].gauge);
    pm_sb_puts(sb, "]");
}

void pm_srv_ws_members(pm_sb *sb, const pm_ws_stats *ws)
{
    pm_sb_printf(sb, "\"clients\":%d,\"messages\":%" PRIu64 ",\"overflows\":%" PRIu64, ws->clients,
                 ws->messages_total, ws->overflowed_total);
}

/* A server-wide status event; caller owns the result (pm_free). */
char *pm_srv_status_event(void *user)
{
    pm_server *srv = user;
    pm_sched_stats *st = pm_malloc(sizeof *st); /* large: not on a civetweb stack */
    if (!st)
        return NULL;
    pm_ws_stats ws;
    pm_sched_get_stats(srv->sched, st);
    pm_ws_get_stats(srv->hub, &ws);
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_printf(&sb, "{\"type\":\"status\",\"t\":%.3f,", pm_wall_time());
    pm_srv_server_members(&sb, srv);
    pm_sb_puts(&sb, ",\"queue\":{");
    pm_srv_queue_members(&sb, st, 0);
    pm_sb_printf(&sb, "},\"running\":%d,\"workers\":%d,\"websocket\":{", st->running, st->workers);
    pm_srv_ws_members(&sb, &ws);
    pm_sb_puts(&sb, "},\"admission\":{");
    pm_srv_admission_members(&sb, st, 0);
    pm_sb_puts(&sb, "}}");
    pm_free(st);
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
    pm_sched_stats *st = pm_malloc(sizeof *st);
    if (!st)
        return;
    pm_sched_get_stats(srv->sched, st);
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_printf(&sb, "{\"type\":\"%s\",\"t\":%.3f,\"admission\":{", t > 0 ? "paused" : "resumed", pm_wall_time());
    pm_srv_admission_members(&sb, st, 0);
    pm_sb_puts(&sb, "},\"queue\":{");
    pm_srv_queue_members(&sb, st, 0);
    pm_sb_puts(&sb, "}}");
    if (!sb.failed)
        pm_ws_broadcast(srv->hub, NULL, NULL, sb.buf, sb.len);
    pm_sb_free(&sb);
    pm_free(st);
}

void pm_srv_broadcast_status(pm_server *srv)
{
    char *s = pm_srv_status_event(srv);
    if (s)
        pm_ws_broadcast(srv->hub, NULL, NULL, s, strlen(s));
    pm_free(s);
}
