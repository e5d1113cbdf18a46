/* The HTTP service: routes of API v1 (docs/api.md), WebSocket events at /ws,
 * health and readiness, Prometheus metrics, and the UI's static files. */
#ifndef PM_SERVER_H
#define PM_SERVER_H

#include "sched/sched.h"
#include "server/auth.h"

#include <stdint.h>

typedef enum pm_server_state {
    PM_SERVER_LOADING = 0,  /* models are loading: /readyz 503, submissions 503 */
    PM_SERVER_READY = 1,
    PM_SERVER_DRAINING = 2, /* shutting down: /readyz 503, submissions 503 */
} pm_server_state;

typedef struct pm_server_config {
    const char *listen;       /* "HOST:PORT" or "PORT"; port 0 picks a free one */
    const char *web_dir;      /* static files served at /; NULL = none */
    uint64_t max_upload;      /* request body bytes at most (413 beyond) */
    int request_timeout_ms;   /* a request must arrive within this (plus time
                                 for its body at a minimal rate) */
    int http_threads;         /* civetweb threads: concurrent requests and WebSockets */
    int ws_max_clients;
    int ws_outbox;            /* messages waiting per WebSocket client */
    double sample_interval;   /* seconds between resource samples (the admission gauge); 0 = no sampler */
    /* access (docs/operations.md, "Access control") */
    pm_auth *auth;            /* API keys, not owned (outlives the server); NULL = open to everyone */
    int key_max_queued;       /* jobs one key may have waiting (429 beyond); 0 = no bound */
    const char *cors_origin;  /* the one origin allowed cross-origin API calls; NULL = none */
    int metrics_auth;         /* 1: /metrics needs an admin key */
    const char *tls_cert, *tls_key; /* PEM files: serve HTTPS and WSS; NULL = plain HTTP */
} pm_server_config;

void pm_server_default_config(pm_server_config *cfg);

typedef struct pm_server pm_server;

/* Starts listening (state LOADING) and the resource sampler: each sample
 * feeds the scheduler's admission gate (pm_sched_admission_update); a pause
 * or resume is sent to WebSocket clients as a `paused` / `resumed` event. The scheduler stays the caller's and must
 * outlive the server. Caller owns *out (pm_server_stop). */
int pm_server_start(const pm_server_config *cfg, pm_sched *sched, pm_server **out);

/* The port actually listened on, and the host part of --listen. A server
 * with --tls-cert speaks only HTTPS and WSS on it. */
int pm_server_port(const pm_server *srv);
const char *pm_server_host(const pm_server *srv);

/* The weights found on this machine (a JSON object, copied), shown as
 * "found" on /api/v1/models; set once, before the server is ready. */
int pm_server_set_found(pm_server *srv, const char *json);

/* Changes the state and tells WebSocket clients (a status event). */
void pm_server_set_state(pm_server *srv, pm_server_state st);

/* After cfg->auth was read again (SIGHUP): closes the WebSockets whose key
 * is no longer in the file (or changed name or admin mark). */
void pm_server_keys_reloaded(pm_server *srv);

/* Stops listening, closes every connection, frees the server. */
void pm_server_stop(pm_server *srv);

#endif
