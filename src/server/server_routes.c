/* The v1 API routes (see server_internal.h). */
#include "server/server_internal.h"

/* ------------------------------------------------------------ routes */

/* Submits the form's job as the request's key: 0 with *info; a PM_E* code
 * (for pm_srv_send_submit_error); or 1 after a 429 for the key's quota was sent. */
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
        pm_srv_send_error_ex(r, rc, "key_quota", msg, retry, NULL);
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

void pm_srv_route_submit(req *r)
{
    form *f = pm_malloc(sizeof *f);
    if (!f) {
        pm_srv_send_error(r, 503, "out_of_memory", "out of memory; retry later");
        return;
    }
    uint8_t *body = NULL;
    if (pm_srv_receive_submission(r, -1, f, &body))
        goto free_form;
    pm_job_info info;
    int rc = submit_owned(r, f, 0, &info);
    if (rc) {
        if (rc != 1)
            pm_srv_send_submit_error(r, rc, pm_error_detail());
        goto free_body;
    }
    pm_sb sb;
    pm_sb_init(&sb);
    /* The job object, and where to follow it. */
    pm_srv_job_open(&sb, &info);
    pm_sb_printf(&sb, ",\"status_url\":\"" API_PREFIX "/jobs/%s\",\"events_url\":\"/ws?job=%s\"}", info.id,
                 info.id);
    char loc[96];
    snprintf(loc, sizeof loc, API_PREFIX "/jobs/%s", info.id);
    const char *extra[] = {"Location", loc, NULL};
    pm_srv_send_json(r, 202, &sb, extra);
    pm_sb_free(&sb);
free_body:
    pm_free(body);
free_form:
    pm_free(f);
}

void pm_srv_route_sync(req *r, enum pm_task task)
{
    pm_server *srv = r->srv;
    form *f = pm_malloc(sizeof *f);
    if (!f) {
        pm_srv_send_error(r, 503, "out_of_memory", "out of memory; retry later");
        return;
    }
    uint8_t *body = NULL;
    if (pm_srv_receive_submission(r, (int)task, f, &body))
        goto free_form;
    pm_job_info info;
    int rc = submit_owned(r, f, 1, &info);
    pm_free(body);
    body = NULL;
    if (rc) {
        if (rc != 1)
            pm_srv_send_submit_error(r, rc, pm_error_detail());
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
        case PM_EFORMAT: /* the pixel data, which submission does not decode */
        case PM_ECORRUPT:
        case PM_ETRUNCATED: status = 415; break;
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
        pm_srv_send_error_ex(r, status, code, fin.error[0] ? fin.error : pm_strerror(rc), retry, NULL);
        goto free_form;
    }
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", fin.finished > fin.started ? fin.finished - fin.started : 0.0);
    const char *extra[] = {"X-Pixmend-Job", fin.id, "X-Pixmend-Seconds", secs, "X-Pixmend-Model", fin.spec.model,
                           NULL};
    pm_srv_send_response(r, 200, pm_format_mime(fin.spec.format), out, out_len, extra);
    pm_free(out);
free_form:
    pm_free(body);
    pm_free(f);
}

int pm_srv_valid_id(const char *s, size_t n)
{
    if (n != PM_JOB_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

void pm_srv_send_unknown_job(req *r, const char *id)
{
    char msg[256];
    snprintf(msg, sizeof msg, "no job '%.40s': the id is unknown or the job expired", id);
    pm_srv_send_error(r, 404, "job_not_found", msg);
}

/* Job `id` if it exists and the request's key may see it (404 otherwise). */
static int get_owned(req *r, const char *id, pm_job_info *info)
{
    int rc = pm_sched_get(r->srv->sched, id, info);
    if (rc == PM_EUNAVAIL) /* the fleet's Redis is down: 503 with its reason, not "no such job" */
        return rc;
    return rc == 0 && pm_access_owns(&r->who, info) ? 0 : PM_ENOENT;
}

void pm_srv_route_job(req *r, const char *id)
{
    pm_job_info info;
    int rc = get_owned(r, id, &info);
    if (rc == 0 && strcmp(r->method, "DELETE") == 0)
        rc = pm_sched_cancel(r->srv->sched, id, &info);
    if (rc == PM_EUNAVAIL) {
        pm_srv_send_error_ex(r, 503, "unavailable", pm_error_detail(), 5, NULL);
        return;
    }
    if (rc == PM_ENOENT) {
        pm_srv_send_unknown_job(r, id);
        return;
    }
    if (rc == PM_EINVAL) {
        pm_srv_send_error(r, 409, "conflict", pm_error_detail());
        return;
    }
    pm_sb sb;
    pm_sb_init(&sb);
    pm_srv_job_json(&sb, &info);
    pm_srv_send_json(r, strcmp(r->method, "DELETE") == 0 ? 202 : 200, &sb, NULL);
    pm_sb_free(&sb);
}

void pm_srv_route_result(req *r, const char *id)
{
    pm_server *srv = r->srv;
    pm_job_info info;
    char msg[600];
    int rc = get_owned(r, id, &info);
    if (rc == PM_EUNAVAIL) {
        pm_srv_send_error_ex(r, 503, "unavailable", pm_error_detail(), 5, NULL);
        return;
    }
    if (rc) {
        pm_srv_send_unknown_job(r, id);
        return;
    }
    if (info.state != PM_JOB_DONE || info.sync) {
        if (info.state == PM_JOB_QUEUED || info.state == PM_JOB_RUNNING) {
            snprintf(msg, sizeof msg, "job %s is %s; its result is not ready (watch /ws?job=%s or poll %s/jobs/%s)",
                     id, pm_job_state_name(info.state), id, API_PREFIX, id);
            pm_srv_send_error_ex(r, 409, "not_ready", msg, 1, NULL);
        } else {
            snprintf(msg, sizeof msg, "job %s %s and has no result: %s", id, pm_job_state_name(info.state),
                     info.error);
            pm_srv_send_error(r, 409, "no_result", msg);
        }
        return;
    }
    char path[4096];
    if (pm_sched_result_path(srv->sched, &info, path, sizeof path) == PM_EUNAVAIL) {
        pm_srv_send_error_ex(r, 503, "unavailable", pm_error_detail(), 5, NULL);
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        snprintf(msg, sizeof msg, "the result of job %s is gone (expired or evicted)", id);
        pm_srv_send_error(r, 404, "result_not_found", msg);
        return;
    }
    char lenbuf[32], disp[160], fname[112];
    snprintf(lenbuf, sizeof lenbuf, "%lld", (long long)st.st_size);
    snprintf(disp, sizeof disp, "%s.%s", id, pm_format_ext(info.spec.format));
    pm_hdr_filename(fname, sizeof fname, disp);
    snprintf(disp, sizeof disp, "inline; filename=\"%s\"", fname);
    mg_response_header_start(r->conn, 200);
    mg_response_header_add(r->conn, "Content-Type", pm_format_mime(info.spec.format), -1);
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

void pm_srv_route_queue(req *r)
{
    pm_sched *s = r->srv->sched;
    pm_sched_stats st;
    pm_sched_get_stats(s, &st);
    int max = st.queue_max + st.workers + 8;
    if (max > 2000)
        max = 2000;
    pm_job_info *list = pm_malloc((size_t)max * sizeof *list);
    if (!list) {
        pm_srv_send_error(r, 503, "out_of_memory", "out of memory; retry later");
        return;
    }
    int total;
    int n = pm_sched_list(s, list, max, &total);
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_puts(&sb, "{");
    pm_srv_queue_members(&sb, &st, 0);
    pm_sb_puts(&sb, ",\"running\":[");
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (list[i].state != PM_JOB_RUNNING || !pm_access_owns(&r->who, &list[i]))
            continue;
        pm_sb_puts(&sb, first ? "" : ",");
        first = 0;
        pm_srv_job_json(&sb, &list[i]);
    }
    pm_sb_puts(&sb, "],\"queued\":[");
    first = 1;
    for (int i = 0; i < n; i++) {
        if (list[i].state != PM_JOB_QUEUED || !pm_access_owns(&r->who, &list[i]))
            continue;
        pm_sb_puts(&sb, first ? "" : ",");
        first = 0;
        pm_srv_job_json(&sb, &list[i]);
    }
    pm_sb_printf(&sb, "],\"truncated\":%s}", n < total ? "true" : "false");
    pm_srv_send_json(r, 200, &sb, NULL);
    pm_sb_free(&sb);
    pm_free(list);
}

#define RECENT_JOBS 20

/* GET /api/v1/stats: the fields docs/ui.md lists (the dashboard's), plus a
 * ring of samples for charts. Big buffers are on the heap (small stacks). */
void pm_srv_route_stats(req *r)
{
    pm_server *srv = r->srv;
    pm_sched_stats *st = pm_malloc(sizeof *st);
    pm_sample *hist = pm_malloc(STATS_SAMPLES * sizeof *hist);
    pm_job_info *recent = pm_malloc(RECENT_JOBS * sizeof *recent);
    if (!st || !hist || !recent) {
        pm_srv_send_error(r, 503, "out_of_memory", "out of memory; retry later");
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
    pm_sb_puts(&sb, "{");
    pm_srv_server_members(&sb, srv);
    pm_sb_printf(&sb,
                 ",\"jobs\":{\"submitted\":%" PRIu64 ",\"done\":%" PRIu64 ",\"failed\":%" PRIu64
                 ",\"cancelled\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"timed_out\":%" PRIu64 ",\"recovered\":%" PRIu64
                 "},\"queue\":{",
                 st->submitted, st->done, st->failed, st->cancelled, pm_metrics_rejected_total(&srv->metrics),
                 st->timed_out, st->recovered);
    pm_srv_queue_members(&sb, st, 1);
    pm_sb_printf(&sb,
                 "},\"running\":%d,\"workers\":%d,\"threads\":%d,\"avg_run_seconds\":%.6f,\"results\":{\"files\":%" PRIu64
                 ",\"bytes\":%" PRIu64 "},",
                 st->running, st->workers, st->threads, st->avg_run_seconds, st->results_count, st->results_bytes);
    pm_sb_puts(&sb, "\"cpu\":{\"per_core\":[");
    for (int i = 0; x && i < x->ncpu; i++)
        pm_sb_printf(&sb, "%s%.1f", i ? "," : "", x->cpu_percent[i]);
    pm_sb_printf(&sb, "],\"total\":%.1f,\"process\":%.1f},\"memory\":{", x ? x->cpu_total_percent : 0.0,
                 x ? x->process_cpu_percent : 0.0);
    pm_srv_memory_members(&sb, st);
    pm_sb_puts(&sb, "},\"gpus\":[");
    for (int i = 0; x && i < x->ngpu; i++) {
        pm_sb_printf(&sb, "%s{\"index\":%d,\"name\":", i ? "," : "", i);
        pm_sb_json_str(&sb, x->gpu[i].name);
        pm_sb_printf(&sb, ",\"mem_used_bytes\":%" PRIu64 ",\"mem_total_bytes\":%" PRIu64 ",\"util_percent\":%u}",
                     x->gpu[i].mem_used, x->gpu[i].mem_total, x->gpu[i].util_percent);
    }
    pm_sb_puts(&sb, "],\"admission\":{");
    pm_srv_admission_members(&sb, st, 1);
    pm_sb_printf(&sb, "},\"latency_ms\":{\"p50\":%.1f,\"p90\":%.1f,\"p95\":%.1f,\"p99\":%.1f,\"count\":%" PRIu64 "},",
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
        if (!pm_access_owns(&r->who, &recent[i]))
            continue;
        pm_sb_puts(&sb, shown++ ? "," : "");
        pm_srv_job_json(&sb, &recent[i]);
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
    pm_sb_puts(&sb, "],\"websocket\":{");
    pm_srv_ws_members(&sb, &ws);
    pm_sb_puts(&sb, "}}");
    pm_srv_send_json(r, 200, &sb, NULL);
    pm_sb_free(&sb);
free_buffers:
    pm_free(recent);
    pm_free(hist);
    pm_free(st);
}

/* "limits" (the option table, sched/options.h) and "formats" (format.c):
 * what a submission's fields accept, for clients such as the web UI. */
static void limits_members(pm_sb *sb)
{
    pm_sb_puts(sb, "\"limits\":{");
    for (int i = 0; pm_option_at(i); i++) {
        const pm_option_range *o = pm_option_at(i);
        pm_sb_printf(sb, "%s\"%s\":{\"min\":%d,\"max\":%d,\"step\":%d,\"default\":%d,\"presets\":{", i ? "," : "",
                     o->name, o->min, o->max, o->step, o->dflt);
        for (const pm_option_preset *p = o->presets; p && p->name; p++)
            pm_sb_printf(sb, "%s\"%s\":%d", p == o->presets ? "" : ",", p->name, p->value);
        pm_sb_puts(sb, "}}");
    }
    pm_sb_puts(sb, "},\"formats\":[");
    for (int i = 0; pm_format_at(i) != PM_FMT_UNKNOWN; i++)
        pm_sb_printf(sb, "%s\"%s\"", i ? "," : "", pm_format_id(pm_format_at(i)));
    pm_sb_puts(sb, "]");
}

void pm_srv_route_models(req *r)
{
    pm_sched *s = r->srv->sched;
    const pm_model_desc *loaded[PM_SCHED_MAX_MODELS];
    int nl = pm_sched_models(s, loaded, PM_SCHED_MAX_MODELS);
    if (nl > PM_SCHED_MAX_MODELS)
        nl = PM_SCHED_MAX_MODELS;
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
    pm_sb_puts(&sb, "],");
    limits_members(&sb);
    const char *found = atomic_load(&r->srv->found);
    pm_sb_printf(&sb, "%s%s}", found ? ",\"found\":" : "", found ? found : "");
    pm_srv_send_json(r, 200, &sb, NULL);
    pm_sb_free(&sb);
}
