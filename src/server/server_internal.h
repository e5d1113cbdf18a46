/* Internals of the HTTP layer shared by server.c (handlers, lifecycle),
 * server_json.c (responses, the JSON of jobs), server_body.c (request bodies,
 * forms) and server_routes.c (the v1 routes). */
#ifndef PM_SERVER_INTERNAL_H
#define PM_SERVER_INTERNAL_H

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
#include "sched/options.h"

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

/* A submission's multipart form: its parts and the job spec read from them. */
typedef struct form {
    pm_mp_part parts[MAX_PARTS];
    int n;
    const pm_mp_part *image, *mask;
    pm_job_spec spec;
} form;

/* The parts of a job object pm_srv_job_fields writes (server_json.c). */
enum {
    PM_JF_STATE = 1u << 0,     /* state */
    PM_JF_TASK = 1u << 1,      /* task, model, priority */
    PM_JF_OPTIONS = 1u << 2,   /* format, sync, mask_dilate | input_size, strip_metadata, strip_gps, jpeg_reencode */
    PM_JF_QUEUE = 1u << 3,     /* queue_position (null unless queued), lane */
    PM_JF_PROGRESS = 1u << 4,  /* progress {value, max} */
    PM_JF_ATTEMPTS = 1u << 5,  /* attempts */
    PM_JF_SIZE = 1u << 6,      /* width, height */
    PM_JF_TIMES = 1u << 7,     /* created_at, started_at, finished_at */
    PM_JF_RESULT = 1u << 8,    /* result_url (null for sync jobs), result_bytes (null until done) */
    PM_JF_ERROR = 1u << 9,     /* error {code, message}, only when failed or cancelled */
    PM_JF_RESOURCES = 1u << 10, /* resources {predicted_bytes, wall_s, cpu_s, peak_bytes} */
    PM_JF_ALL = (1u << 11) - 1,
};

/* Shared between the server's files (pm_srv_: private to src/server/).
 * The JSON writers append to sb: pm_srv_job_fields writes ,"key":value
 * pairs (a comma before each); the *_members writers write the members of
 * one object without its braces (no leading comma). */
int pm_srv_is(const req *r, const char *m);
void pm_srv_broadcast_status(pm_server *srv);
void pm_srv_job_json(pm_sb *sb, const pm_job_info *j);
void pm_srv_job_open(pm_sb *sb, const pm_job_info *j); /* the job object without its closing brace */
void pm_srv_job_fields(pm_sb *sb, const pm_job_info *j, unsigned fields);
void pm_srv_error_obj(pm_sb *sb, const char *code, const char *message);
void pm_srv_server_members(pm_sb *sb, pm_server *srv);
void pm_srv_queue_members(pm_sb *sb, const pm_sched_stats *st, int detail);
void pm_srv_memory_members(pm_sb *sb, const pm_sched_stats *st);
void pm_srv_admission_members(pm_sb *sb, const pm_sched_stats *st, int transitions);
void pm_srv_ws_members(pm_sb *sb, const pm_ws_stats *ws);
void pm_srv_json_time(pm_sb *sb, const char *key, double t);
void pm_srv_on_job_event(void *user, pm_job_event_type type, uint64_t seq, const pm_job_info *j);
void pm_srv_on_sample(void *user, const pm_sample *x);
void pm_srv_send_error(req *r, int status, const char *code, const char *msg);
void pm_srv_send_error_ex(req *r, int status, const char *code, const char *msg, int retry_after,
                          const char *allow);
void pm_srv_send_json(req *r, int status, pm_sb *sb, const char *const *extra);
void pm_srv_send_method_not_allowed(req *r, const char *allow);
void pm_srv_send_response(req *r, int status, const char *ctype, const void *body, size_t len,
                          const char *const *extra);
void pm_srv_send_submit_error(req *r, int rc, const char *msg);
const char *pm_srv_state_name(int st);
char *pm_srv_status_event(void *user);
int pm_srv_receive_submission(req *r, int task, form *f, uint8_t **body);
void pm_srv_route_job(req *r, const char *id);
void pm_srv_route_models(req *r);
void pm_srv_route_queue(req *r);
void pm_srv_route_result(req *r, const char *id);
void pm_srv_route_stats(req *r);
void pm_srv_route_submit(req *r);
void pm_srv_route_sync(req *r, enum pm_task task);
void pm_srv_send_unknown_job(req *r, const char *id);
int pm_srv_valid_id(const char *s, size_t n);

#endif
