/* WebSocket fan-out (see ws.h).
 *
 * Lifetimes: a client is created in the ready handler and destroyed in the
 * close handler, both on the civetweb thread that owns the connection. The
 * close handler unlinks the client from the hub, tells its writer to stop and
 * joins it, so the writer never touches a connection civetweb has freed.
 * Lock order: hub->lock, then client->lock. */
#include "server/ws.h"
#include "pixmend.h"

#include <civetweb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct ws_msg {
    atomic_int refs;
    size_t len;
    char data[]; /* len bytes + NUL */
} ws_msg;

typedef struct ws_client {
    pm_ws_hub *hub;
    struct mg_connection *conn;   /* valid until the close handler returns */
    pthread_t writer;
    int writer_started;
    int linked;                   /* in hub->clients */
    pthread_mutex_t lock;
    pthread_cond_t cv;
    ws_msg **box;                 /* ring of hub->outbox_max entries, owned */
    int head, count;
    int closing;                  /* the close handler runs: writer must stop */
    int overflowed;               /* stop sending; a close frame goes out once */
    int revoked;                  /* its credential is no longer valid: close with that reason */
    uint8_t cred[32];             /* what the admission check identified it by; zeros = nothing */
    char job[64];                 /* "" = every job */
    char owner[64];               /* the key name whose jobs it sees */
    int all;                      /* 1: sees every owner's jobs */
    struct ws_client *next;       /* in hub->clients */
} ws_client;

struct pm_ws_hub {
    pthread_mutex_t lock;
    ws_client *clients;
    int nclients;
    int max_clients;
    int outbox_max;
    pm_ws_greeting_fn greet;
    void *greet_user;
    pm_ws_admit_fn admit;
    void *admit_user;
    atomic_ullong connected_total, messages_total, overflowed_total;
};

static ws_msg *msg_new(const char *json, size_t len)
{
    ws_msg *m = pm_malloc(sizeof *m + len + 1);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->len = len;
    memcpy(m->data, json, len);
    m->data[len] = '\0';
    return m;
}

static void msg_release(ws_msg *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        pm_free(m);
}

int pm_ws_hub_create(int max_clients, int outbox_max, pm_ws_greeting_fn greet, void *greet_user,
                     pm_ws_hub **out)
{
    pm_ws_hub *h = pm_calloc(1, sizeof *h);
    if (!h)
        return pm_errorf(PM_ENOMEM, "out of memory creating the WebSocket hub");
    pthread_mutex_init(&h->lock, NULL);
    h->max_clients = max_clients > 0 ? max_clients : 1;
    h->outbox_max = outbox_max > 1 ? outbox_max : 2;
    h->greet = greet;
    h->greet_user = greet_user;
    atomic_init(&h->connected_total, 0);
    atomic_init(&h->messages_total, 0);
    atomic_init(&h->overflowed_total, 0);
    *out = h;
    return 0;
}

void pm_ws_hub_destroy(pm_ws_hub *h)
{
    if (!h)
        return;
    /* mg_stop has run every close handler, so no client is left. */
    pthread_mutex_destroy(&h->lock);
    pm_free(h);
}

/* Queues m for c (taking a reference) or marks c overflowed. c->lock held. */
static void enqueue_locked(pm_ws_hub *h, ws_client *c, ws_msg *m)
{
    if (c->overflowed || c->closing)
        return;
    if (c->count >= h->outbox_max) {
        c->overflowed = 1;
        atomic_fetch_add(&h->overflowed_total, 1);
        pthread_cond_signal(&c->cv);
        return;
    }
    atomic_fetch_add(&m->refs, 1);
    c->box[(c->head + c->count) % h->outbox_max] = m;
    c->count++;
    pthread_cond_signal(&c->cv);
}

void pm_ws_hub_set_admit(pm_ws_hub *h, pm_ws_admit_fn fn, void *user)
{
    h->admit = fn;
    h->admit_user = user;
}

void pm_ws_broadcast(pm_ws_hub *h, const char *job, const char *owner, const char *json, size_t len)
{
    ws_msg *m = msg_new(json, len);
    if (!m)
        return;
    pthread_mutex_lock(&h->lock);
    for (ws_client *c = h->clients; c; c = c->next) {
        if (job && c->job[0] && strcmp(c->job, job) != 0)
            continue;
        if (owner && owner[0] && !c->all && strcmp(c->owner, owner) != 0)
            continue;
        pthread_mutex_lock(&c->lock);
        enqueue_locked(h, c, m);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&h->lock);
    msg_release(m);
}

static void drop_queued_locked(pm_ws_hub *h, ws_client *c)
{
    while (c->count > 0) {
        msg_release(c->box[c->head]);
        c->head = (c->head + 1) % h->outbox_max;
        c->count--;
    }
}

static void *writer_main(void *arg)
{
    ws_client *c = arg;
    pm_ws_hub *h = c->hub;
    int close_sent = 0;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->closing && c->count == 0 && !(c->overflowed && !close_sent))
            pthread_cond_wait(&c->cv, &c->lock);
        if (c->closing)
            break;
        if (c->overflowed) {
            drop_queued_locked(h, c);
            if (!close_sent) {
                close_sent = 1;
                pthread_mutex_unlock(&c->lock);
                /* Status 1008 (policy violation): the client does not keep up, or its key was revoked. */
                static const char slow[] = "\x03\xf0too slow: events dropped";
                static const char revoked[] = "\x03\xf0the API key was revoked";
                if (c->revoked)
                    mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, revoked, sizeof revoked - 1);
                else
                    mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, slow, sizeof slow - 1);
                pthread_mutex_lock(&c->lock);
            }
            continue;
        }
        ws_msg *m = c->box[c->head];
        c->head = (c->head + 1) % h->outbox_max;
        c->count--;
        pthread_mutex_unlock(&c->lock);
        int r = mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_TEXT, m->data, m->len);
        msg_release(m);
        pthread_mutex_lock(&c->lock);
        if (r <= 0) {
            /* The peer is gone: stop writing; the close handler cleans up. */
            c->overflowed = 1;
            close_sent = 1;
        } else {
            atomic_fetch_add(&h->messages_total, 1);
        }
    }
    drop_queued_locked(h, c);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static void client_free(ws_client *c);

/* Before the handshake: the client bound and the admission check. The
 * client is allocated here (the close handler frees it) so that what the
 * check decided reaches the ready handler. */
static int on_connect(const struct mg_connection *cconn, void *cbdata)
{
    pm_ws_hub *h = cbdata;
    struct mg_connection *conn = (struct mg_connection *)cconn; /* civetweb passes its own, writable, connection */
    pthread_mutex_lock(&h->lock);
    int full = h->nclients >= h->max_clients;
    pthread_mutex_unlock(&h->lock);
    if (full) {
        pm_warn("ws_refused", "WebSocket connection refused: %d clients already", h->max_clients);
        return 1;
    }
    ws_client *c = pm_calloc(1, sizeof *c);
    if (!c)
        return 1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->all = 1;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (ri->query_string) {
        char job[64];
        if (mg_get_var(ri->query_string, strlen(ri->query_string), "job", job, sizeof job) > 0)
            snprintf(c->job, sizeof c->job, "%s", job);
    }
    if (h->admit && h->admit(h->admit_user, conn, c->job, c->owner, sizeof c->owner, &c->all, c->cred) != 0) {
        client_free(c);
        return 1;
    }
    mg_set_user_connection_data(conn, c);
    return 0;
}

static void client_free(ws_client *c)
{
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cv);
    pm_free(c->box);
    pm_free(c);
}

/* Takes c out of the hub's list if it is in it. */
static void unlink_client(pm_ws_hub *h, ws_client *c)
{
    pthread_mutex_lock(&h->lock);
    for (ws_client **pp = &h->clients; c->linked && *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            h->nclients--;
            break;
        }
    c->linked = 0;
    pthread_mutex_unlock(&h->lock);
}

static void on_ready(struct mg_connection *conn, void *cbdata)
{
    pm_ws_hub *h = cbdata;
    ws_client *c = mg_get_user_connection_data(conn);
    if (!c)
        return;
    c->box = pm_calloc((size_t)h->outbox_max, sizeof *c->box);
    if (!c->box)
        return; /* unlinked and without a writer: the close handler frees it */
    c->hub = h;
    c->conn = conn;
    /* The greeting is queued and the client linked under the hub's lock, and
     * only then does the writer start: a client that has read its greeting
     * receives every broadcast made after it (a greeting sent before the link
     * let a broadcast in between, e.g. the "draining" status, miss it). */
    ws_msg *greeting = NULL;
    if (h->greet) {
        char *g = h->greet(h->greet_user); /* outside h->lock: it takes the scheduler's lock */
        if (g) {
            greeting = msg_new(g, strlen(g));
            pm_free(g);
        }
    }
    pthread_mutex_lock(&h->lock);
    if (greeting) {
        pthread_mutex_lock(&c->lock);
        enqueue_locked(h, c, greeting);
        pthread_mutex_unlock(&c->lock);
    }
    c->linked = 1;
    c->next = h->clients;
    h->clients = c;
    h->nclients++;
    pthread_mutex_unlock(&h->lock);
    msg_release(greeting);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int started = pthread_create(&c->writer, &attr, writer_main, c) == 0;
    pthread_attr_destroy(&attr);
    if (!started) {
        unlink_client(h, c);
        pthread_mutex_lock(&c->lock);
        drop_queued_locked(h, c);
        pthread_mutex_unlock(&c->lock);
        pm_error("ws_failed", "cannot start a WebSocket writer thread");
        return; /* the close handler frees it */
    }
    c->writer_started = 1;
    atomic_fetch_add(&h->connected_total, 1);
    pm_debug("ws_connected", "WebSocket client connected%s%s", c->job[0] ? " for job " : "", c->job);
}

static int on_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    (void)conn;
    (void)data;
    (void)len;
    (void)cbdata;
    /* Clients have nothing to say yet; a close frame ends the connection. */
    return (bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE ? 0 : 1;
}

static void on_close(const struct mg_connection *conn, void *cbdata)
{
    pm_ws_hub *h = cbdata;
    ws_client *c = mg_get_user_connection_data(conn);
    if (!c)
        return;
    mg_set_user_connection_data(conn, NULL);
    unlink_client(h, c);
    pthread_mutex_lock(&c->lock);
    c->closing = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->lock);
    if (c->writer_started)
        pthread_join(c->writer, NULL);
    client_free(c);
    pm_debug("ws_closed", "WebSocket client disconnected");
}

void pm_ws_hub_attach(pm_ws_hub *h, struct mg_context *ctx, const char *uri)
{
    static const char *protocols[] = {PM_WS_SUBPROTOCOL};
    static struct mg_websocket_subprotocols sub = {1, protocols};
    mg_set_websocket_handler_with_subprotocols(ctx, uri, &sub, on_connect, on_ready, on_data, on_close, h);
}

int pm_ws_revalidate(pm_ws_hub *h, pm_ws_still_valid_fn fn, void *user)
{
    static const uint8_t none[32];
    int closed = 0;
    pthread_mutex_lock(&h->lock);
    for (ws_client *c = h->clients; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        if (memcmp(c->cred, none, sizeof none) != 0 && !c->overflowed && !c->closing &&
            !fn(user, c->cred, c->owner, c->all)) {
            c->revoked = 1;
            c->overflowed = 1; /* the writer drops what waits and sends the close frame */
            pthread_cond_signal(&c->cv);
            closed++;
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return closed;
}

int pm_ws_flush(pm_ws_hub *h, double seconds)
{
    int waits = (int)(seconds * 100);
    for (int i = 0;; i++) {
        int pending = 0;
        pthread_mutex_lock(&h->lock);
        for (ws_client *c = h->clients; c; c = c->next) {
            pthread_mutex_lock(&c->lock);
            if (!c->overflowed && !c->closing)
                pending += c->count;
            pthread_mutex_unlock(&c->lock);
        }
        pthread_mutex_unlock(&h->lock);
        if (!pending)
            return 0;
        if (i >= waits)
            return 1;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void pm_ws_get_stats(pm_ws_hub *h, pm_ws_stats *st)
{
    pthread_mutex_lock(&h->lock);
    st->clients = h->nclients;
    pthread_mutex_unlock(&h->lock);
    st->connected_total = atomic_load(&h->connected_total);
    st->messages_total = atomic_load(&h->messages_total);
    st->overflowed_total = atomic_load(&h->overflowed_total);
}
