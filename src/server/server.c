/* The HTTP service on civetweb (see server.h and docs/api.md).
 *
 * Debian's civetweb runs handlers on threads with 100 KiB stacks: handlers
 * keep big buffers on the heap. pm_sched_submit runs here: it reads the
 * image's header and decodes the mask, which peaks at about 39 KiB of the
 * 100 (tests/unit/test_submit_stack.c, docs/benchmarks.md).
 *
 * Every civetweb thread runs one request at a time; a handler reads the body
 * into memory (bounded by --max-upload and a minimum transfer rate), parses
 * the multipart form, and hands the job to the scheduler. Errors are JSON
 * {"error": {"code", "message"}} where the message is the sentence of the
 * layer that found the problem (pm_error_detail). */
#include "server/server_internal.h"

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

int pm_srv_is(const req *r, const char *m)
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
    pm_srv_send_error_ex(r, st, st == 401 ? "unauthorized" : "rate_limited", msg, retry, NULL);
    return -1;
}

static int api_handler(struct mg_connection *conn, void *cbdata)
{
    req r;
    req_init(&r, cbdata, conn);
    size_t plen = strlen(API_PREFIX);
    const char *p = strncmp(r.path, API_PREFIX, plen) == 0 ? r.path + plen : r.path;
    int get = pm_srv_is(&r, "GET") || pm_srv_is(&r, "HEAD");
    if (pm_srv_is(&r, "OPTIONS") && r.srv->cfg.cors_origin)
        r.status = pm_hdr_preflight(conn, r.srv->cfg.cors_origin);
    else if (authorize(&r))
        ;
    else if (strcmp(p, "/jobs") == 0) {
        if (pm_srv_is(&r, "POST"))
            pm_srv_route_submit(&r);
        else
            pm_srv_send_method_not_allowed(&r, "POST");
    } else if (strncmp(p, "/jobs/", 6) == 0) {
        const char *id = p + 6;
        const char *slash = strchr(id, '/');
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        char idbuf[PM_JOB_ID_LEN + 1];
        if (!pm_srv_valid_id(id, idlen)) {
            char shown[48];
            snprintf(shown, sizeof shown, "%.*s", (int)(idlen < 40 ? idlen : 40), id);
            pm_srv_send_unknown_job(&r, shown);
        } else {
            memcpy(idbuf, id, idlen);
            idbuf[idlen] = '\0';
            if (!slash) {
                if (get || pm_srv_is(&r, "DELETE"))
                    pm_srv_route_job(&r, idbuf);
                else
                    pm_srv_send_method_not_allowed(&r, "GET, DELETE");
            } else if (strcmp(slash, "/result") == 0) {
                if (get)
                    pm_srv_route_result(&r, idbuf);
                else
                    pm_srv_send_method_not_allowed(&r, "GET");
            } else {
                pm_srv_send_error(&r, 404, "not_found", "no such route; see docs/api.md");
            }
        }
    } else if (strcmp(p, "/inpaint") == 0 || strcmp(p, "/colorize") == 0) {
        if (pm_srv_is(&r, "POST"))
            pm_srv_route_sync(&r, p[1] == 'i' ? PM_TASK_INPAINT : PM_TASK_COLORIZE);
        else
            pm_srv_send_method_not_allowed(&r, "POST");
    } else if (strcmp(p, "/queue") == 0 || strcmp(p, "/stats") == 0 || strcmp(p, "/models") == 0) {
        if (!get)
            pm_srv_send_method_not_allowed(&r, "GET");
        else if (p[1] == 'q')
            pm_srv_route_queue(&r);
        else if (p[1] == 's')
            pm_srv_route_stats(&r);
        else
            pm_srv_route_models(&r);
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "no route %s %.120s; see docs/api.md for the API", r.method, r.path);
        pm_srv_send_error(&r, 404, "not_found", msg);
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
    pm_sched_stats *ss = pm_malloc(sizeof *ss); /* large: not on a civetweb stack */
    if (!ss) {
        pm_srv_send_error(&r, 503, "out_of_memory", "out of memory; retry later");
        return req_done(&r, PM_LOG_DEBUG);
    }
    pm_sched_get_stats(srv->sched, ss);
    pm_sb_puts(&sb, "{\"status\":\"ok\",");
    pm_srv_server_members(&sb, srv);
    pm_sb_puts(&sb, ",\"memory\":{");
    pm_srv_memory_members(&sb, ss);
    pm_sb_puts(&sb, "},\"admission\":{");
    pm_srv_admission_members(&sb, ss, 0);
    pm_sb_puts(&sb, "}}");
    pm_free(ss);
    pm_srv_send_json(&r, 200, &sb, NULL);
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
    int down = st == PM_SERVER_READY && ss.fleet && ss.fleet_down[0];
    int ready = st == PM_SERVER_READY && !ss.paused && !down;
    char msg[256] = "";
    if (down)
        snprintf(msg, sizeof msg, "%.200s; submissions answer 503 until it is back", ss.fleet_down);
    else if (st == PM_SERVER_READY && ss.paused)
        snprintf(msg, sizeof msg,
                 "intake is paused: memory in use (%.0f %% by %s) reached the pause mark (%.0f %%); it resumes below "
                 "%.0f %%",
                 ss.gauge * 100, ss.gauge_source, ss.high_mark * 100, ss.low_mark * 100);
    else if (!ready)
        snprintf(msg, sizeof msg, "%s",
                 st == PM_SERVER_LOADING ? "the server is loading its models" : "the server is shutting down");
    const char *state = down ? "unavailable" : st == PM_SERVER_READY && ss.paused ? "paused" : pm_srv_state_name(st);
    pm_sb_printf(&sb, "{\"ready\":%s,\"state\":\"%s\",\"admission\":{", ready ? "true" : "false", state);
    pm_srv_admission_members(&sb, &ss, 0);
    pm_sb_puts(&sb, "}");
    if (!ready) {
        pm_sb_puts(&sb, ",\"error\":");
        pm_srv_error_obj(&sb, state, msg);
    }
    pm_sb_puts(&sb, "}");
    const char *extra[] = {"Retry-After", st == PM_SERVER_LOADING ? "5" : st == PM_SERVER_READY ? "10" : "30", NULL};
    pm_srv_send_json(&r, ready ? 200 : 503, &sb, ready ? NULL : extra);
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
            pm_srv_send_error(&r, 403, "forbidden", "/metrics needs an admin key on this server (--metrics-auth)");
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
        pm_srv_send_error(&r, 503, "out_of_memory", "out of memory");
    else
        pm_srv_send_response(&r, 200, "text/plain; version=0.0.4; charset=utf-8", sb.buf, sb.len, NULL);
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
            pm_srv_broadcast_status(srv);
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
    if ((rc = pm_ws_hub_create(cfg->ws_max_clients, cfg->ws_outbox, pm_srv_status_event, srv, &srv->hub)))
        goto free_server;

    /* The sampler and the event sink exist before the first request can be
     * answered: request threads read srv->sampler without a lock. */
    if (cfg->sample_interval > 0 &&
        (rc = pm_sampler_start(&srv->sampler, cfg->sample_interval, SAMPLE_RING, pm_srv_on_sample, srv)))
        goto free_hub;
    pm_sched_set_event_fn(sched, pm_srv_on_job_event, srv);

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
        pm_info("server_state", "server is %s", pm_srv_state_name(st));
        pm_srv_broadcast_status(srv);
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
