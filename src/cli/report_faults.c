/* pixmend report: the fault drills. Each says what should happen and what
 * did; a drill that cannot run against a server we did not start (--url) is
 * recorded as skipped, never as passed. */
#include "cli/report.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DRILL_LIST "oversize,bad-file,five-large,disconnect,slow-client,kill9"

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static rp_drill *new_drill(rp_report *r, const char *name, const char *expected)
{
    rp_drill *d = &r->drills[r->ndrills++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->expected, sizeof d->expected, "%s", expected);
    return d;
}

static void fig(rp_drill *d, const char *name, double v)
{
    if (d->nfig >= RP_MAX_FIGS)
        return;
    snprintf(d->fig_name[d->nfig], sizeof d->fig_name[0], "%s", name);
    d->fig_val[d->nfig++] = v;
}

static void skip(rp_drill *d, const char *why)
{
    d->ran = 0;
    d->pass = 0;
    snprintf(d->observed, sizeof d->observed, "skipped: %s", why);
}

static double submitted(const rp_server *s)
{
    rp_srv_stats st;
    return rp_stats_read(s, &st) == 0 ? st.submitted : -1;
}

static int healthy(const rp_server *s)
{
    rp_resp r;
    int ok = rp_http(s->host, s->port, "GET", "/healthz", NULL, NULL, 0, 5, &r) == 0 && r.status == 200;
    rp_resp_free(&r);
    return ok;
}

/* Sends a request head announcing `announced` body bytes, then `send_bytes`
 * of them; returns the status answered (0 = none) and closes. */
static int partial_upload(const rp_server *s, size_t announced, size_t send_bytes, int read_answer)
{
    int fd = rp_connect(s->host, s->port, 10);
    if (fd < 0)
        return -1;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /api/v1/jobs HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: multipart/form-data; "
                     "boundary=x\r\nContent-Length: %zu\r\n\r\n",
                     s->host, s->port, announced);
    int status = 0;
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) == n) {
        char *junk = calloc(1, 65536);
        for (size_t sent = 0; junk && sent < send_bytes;) {
            size_t k = send_bytes - sent < 65536 ? send_bytes - sent : 65536;
            ssize_t w = send(fd, junk, k, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            sent += (size_t)w;
        }
        free(junk);
        if (read_answer) {
            char buf[256] = {0};
            ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
            if (k > 12)
                sscanf(buf, "HTTP/1.%*d %d", &status);
        }
    }
    close(fd);
    return status;
}

static void drill_oversize(rp_report *r)
{
    rp_drill *d = new_drill(r, "oversize", "413 before the body is read; nothing stored (jobs.submitted unchanged)");
    double before = submitted(&r->srv);
    /* Our server runs with --max-upload 16M; with --url the limit is unknown, so 2 GiB is announced. */
    size_t announce = r->url ? ((size_t)2 << 30) : (size_t)17 << 20;
    int st = partial_upload(&r->srv, announce, 1 << 20, 1);
    double after = submitted(&r->srv);
    d->ran = 1;
    d->pass = st == 413 && before == after && healthy(&r->srv);
    fig(d, "status", st);
    fig(d, "submitted_before", before);
    fig(d, "submitted_after", after);
    snprintf(d->observed, sizeof d->observed, "%d for %zu announced bytes; jobs.submitted %.0f -> %.0f", st, announce,
             before, after);
}

static int post_job(const rp_report *r, const uint8_t *img, size_t len, const char *name, const char *type,
                    const rp_input *in)
{
    uint8_t *body;
    size_t blen;
    char ctype[128];
    if (rp_multipart(img, len, name, type, in->mask, in->mask_len, "patchmatch", &body, &blen, ctype, sizeof ctype))
        return -1;
    rp_resp resp;
    int st = rp_http(r->srv.host, r->srv.port, "POST", "/api/v1/jobs", ctype, body, blen, 30, &resp) ? 0 : resp.status;
    rp_resp_free(&resp);
    free(body);
    return st;
}

static void drill_bad_files(rp_report *r, const rp_input *in)
{
    rp_drill *d = new_drill(r, "bad-file",
                            "a JPEG cut in half and a PNG sent as photo.jpg (image/jpeg): 422 or 415 each; "
                            "nothing stored");
    double before = submitted(&r->srv);
    int t = post_job(r, in->image, in->image_len / 2, "photo.jpg", "image/jpeg", in);
    pm_image m = {0};
    uint8_t *png = NULL;
    size_t png_len = 0;
    int mis = -1;
    if (pm_image_alloc(&m, in->w, in->h, 3) == 0) {
        pm_encode_opts po = pm_default_encode_opts(PM_FMT_PNG);
        if (pm_image_encode(&m, &po, &png, &png_len) == 0)
            mis = post_job(r, png, png_len, "photo.jpg", "image/jpeg", in);
        pm_image_free(&m);
        pm_free(png);
    }
    double after = submitted(&r->srv);
    d->ran = 1;
    d->pass = (t == 422 || t == 415) && (mis == 422 || mis == 415) && before == after;
    fig(d, "truncated_status", t);
    fig(d, "mislabelled_status", mis);
    fig(d, "submitted_before", before);
    fig(d, "submitted_after", after);
    snprintf(d->observed, sizeof d->observed, "truncated: %d; mislabelled: %d; jobs.submitted %.0f -> %.0f", t, mis,
             before, after);
}

static void drill_disconnect(rp_report *r)
{
    rp_drill *d = new_drill(r, "disconnect",
                            "a client that closes after 256 KiB of a 4 MiB upload: no job, server healthy, "
                            "descriptors back to where they were");
    double before = submitted(&r->srv);
    int fds0 = r->srv.pid > 0 ? rp_proc_fds(r->srv.pid) : -1;
    partial_upload(&r->srv, (size_t)4 << 20, 256 << 10, 0);
    int fds1 = fds0;
    for (int i = 0; i < 100; i++) {
        nap(0.05);
        fds1 = r->srv.pid > 0 ? rp_proc_fds(r->srv.pid) : -1;
        if (fds1 <= fds0)
            break;
    }
    double after = submitted(&r->srv);
    int ok = healthy(&r->srv);
    d->ran = 1;
    d->pass = ok && before == after && fds1 <= fds0;
    fig(d, "fds_before", fds0);
    fig(d, "fds_after", fds1);
    fig(d, "submitted_before", before);
    fig(d, "submitted_after", after);
    snprintf(d->observed, sizeof d->observed, "healthz %s; jobs.submitted %.0f -> %.0f; descriptors %d -> %d",
             ok ? "200" : "failed", before, after, fds0, fds1);
}

typedef struct slow_ctx {
    const rp_report *r;
    const uint8_t *body;
    size_t len;
    const char *ctype;
    int status;
    double seconds;
} slow_ctx;

/* Sends one valid job in 20 pieces 100 ms apart. */
static void *slow_thread(void *arg)
{
    slow_ctx *c = arg;
    double t0 = pm_now();
    int fd = rp_connect(c->r->srv.host, c->r->srv.port, 30);
    if (fd < 0)
        return NULL;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     c->ctype, c->len);
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) == n) {
        size_t piece = c->len / 20 + 1;
        for (size_t off = 0; off < c->len; off += piece) {
            size_t k = c->len - off < piece ? c->len - off : piece;
            if (send(fd, c->body + off, k, MSG_NOSIGNAL) != (ssize_t)k)
                break;
            nap(0.1);
        }
        char buf[256] = {0};
        if (recv(fd, buf, sizeof buf - 1, 0) > 12)
            sscanf(buf, "HTTP/1.%*d %d", &c->status);
    }
    close(fd);
    c->seconds = pm_now() - t0;
    return NULL;
}

static void drill_slow(rp_report *r, const rp_input *in)
{
    rp_drill *d = new_drill(r, "slow-client",
                            "an upload trickled over 2 s is accepted (202) or timed out (408), while other "
                            "clients are answered within 1 s");
    slow_ctx c = {.r = r};
    char ctype[128];
    uint8_t *body;
    if (rp_multipart(in->image, in->image_len, "photo.jpg", "image/jpeg", in->mask, in->mask_len, "patchmatch",
                     &body, &c.len, ctype, sizeof ctype)) {
        skip(d, "out of memory");
        return;
    }
    c.body = body;
    c.ctype = ctype;
    pthread_t th;
    pthread_create(&th, NULL, slow_thread, &c);
    nap(0.5);
    double worst = 0;
    for (int i = 0; i < 10; i++) {
        rp_resp resp;
        int e = rp_http(r->srv.host, r->srv.port, "GET", "/healthz", NULL, NULL, 0, 5, &resp);
        double t = e || resp.status != 200 ? 99 : resp.seconds;
        if (t > worst)
            worst = t;
        rp_resp_free(&resp);
        nap(0.1);
    }
    pthread_join(th, NULL);
    free(body);
    d->ran = 1;
    d->pass = (c.status == 202 || c.status == 408) && worst < 1.0;
    fig(d, "status", c.status);
    fig(d, "upload_seconds", c.seconds);
    fig(d, "slowest_other_seconds", worst);
    snprintf(d->observed, sizeof d->observed, "slow upload answered %d after %.1f s; slowest other answer %.3f s",
             c.status, c.seconds, worst);
}

/* Starts a drill server of our own in a fresh directory under r->outdir's temp. */
static int drill_server(rp_report *r, rp_server *s, const char *tag, const char *const *extra)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s.%s", r->srv.data_dir, tag);
    return rp_server_start(s, r->exe, dir, extra);
}

typedef struct big_ctx {
    const rp_server *s;
    const uint8_t *body;
    size_t len;
    const char *ctype;
    rp_job job;
    int rc;
    int *finished; /* shared: threads that have ended */
} big_ctx;

static void *big_thread(void *arg)
{
    big_ctx *b = arg;
    b->rc = rp_job_run(b->s, b->body, b->len, b->ctype, 600, &b->job);
    __atomic_add_fetch(b->finished, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* The most jobs whose [started_at, finished_at) overlap, from the server's
 * own records of the jobs that ran. */
static int max_overlap(const big_ctx *b, int n)
{
    int best = 0;
    for (int i = 0; i < n; i++) {
        const rp_job *x = &b[i].job;
        if (x->started_at <= 0 || x->finished_at <= 0)
            continue;
        int k = 0;
        for (int j = 0; j < n; j++) {
            const rp_job *y = &b[j].job;
            if (y->started_at > 0 && y->finished_at > 0 && y->started_at <= x->started_at &&
                x->started_at < y->finished_at)
                k++;
        }
        if (k > best)
            best = k;
    }
    return best;
}

/* Five jobs of `in` at once on s; *max_running: the most the server's
 * stats showed running. 0, or PM_ENOMEM. */
static int five_at_once(rp_server *s, const rp_input *in, big_ctx b[5], int *max_running)
{
    char ctype[128];
    uint8_t *body;
    size_t len;
    if (rp_multipart(in->image, in->image_len, "photo.jpg", "image/jpeg", in->mask, in->mask_len, "patchmatch",
                     &body, &len, ctype, sizeof ctype))
        return PM_ENOMEM;
    int finished = 0;
    pthread_t th[5];
    for (int i = 0; i < 5; i++) {
        b[i] = (big_ctx){.s = s, .body = body, .len = len, .ctype = ctype, .finished = &finished};
        pthread_create(&th[i], NULL, big_thread, &b[i]);
    }
    /* The server's own count of running jobs, sampled while they run. */
    *max_running = 0;
    while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) < 5) {
        rp_srv_stats st;
        if (rp_stats_read(s, &st) == 0 && st.running > *max_running)
            *max_running = (int)st.running;
        nap(0.02);
    }
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    free(body);
    return 0;
}

/* Warms the server up with five small jobs at once (so that its worker
 * threads and their allocator arenas exist), then runs the five large ones;
 * *idle and *warm: RSS before anything and after the warm-up, *hwm: VmHWM
 * over the large ones. 0, or PM_ENOMEM. */
static int five_jobs(rp_server *s, const rp_input *small, const rp_input *in, big_ctx b[5], int *max_running,
                     double *idle, double *warm, double *hwm)
{
    *idle = (double)rp_proc_rss(s->pid);
    int unused, rc = five_at_once(s, small, b, &unused);
    if (rc)
        return rc;
    *warm = (double)rp_proc_rss(s->pid);
    rp_proc_reset_hwm(s->pid);
    rc = five_at_once(s, in, b, max_running);
    *hwm = (double)rp_proc_hwm(s->pid);
    return rc;
}

static void drill_five_large(rp_report *r, const rp_input *small, const rp_input *in, double predicted)
{
    rp_drill *d = new_drill(r, "five-large",
                            "five large jobs at once under a budget that fits two: each done or refused with "
                            "429, none lost; no more running at once than fit; the server's memory (VmHWM above "
                            "its RSS once warmed up by five small jobs) under the budget");
    if (r->url) {
        skip(d, "needs a server started with its own --mem-budget (not possible with --url)");
        return;
    }
    if (predicted <= 0) {
        skip(d, "no prediction for the largest size was measured");
        return;
    }
    char budget[32];
    double bud = 2.5 * predicted;
    snprintf(budget, sizeof budget, "%.0f", bud);
    const char *extra[] = {"--mem-budget", budget, "--workers", "5", NULL};
    rp_server s;
    if (drill_server(r, &s, "five", extra)) {
        skip(d, "the drill's server did not start");
        return;
    }
    big_ctx b[5];
    int sampled = 0;
    double idle = 0, warm = 0, hwm = 0;
    if (five_jobs(&s, small, in, b, &sampled, &idle, &warm, &hwm)) {
        rp_server_stop(&s);
        skip(d, "out of memory");
        return;
    }
    rp_server_stop(&s);
    int done = 0, refused = 0, lost = 0;
    double pred = 0;
    for (int i = 0; i < 5; i++) {
        if (b[i].rc == 0)
            done++;
        else if (b[i].job.http_status == 429)
            refused++;
        else
            lost++;
        if (b[i].job.predicted_bytes > pred)
            pred = b[i].job.predicted_bytes;
    }
    /* How many fit: the budget over this server's own prediction per job. */
    int fit = pred > 0 ? (int)(bud / pred) : 2;
    int overlap = max_overlap(b, 5);
    d->ran = 1;
    double above = hwm - warm;
    fig(d, "done", done);
    fig(d, "refused_429", refused);
    fig(d, "lost", lost);
    fig(d, "max_running_job_times", overlap);
    fig(d, "max_running_sampled", sampled);
    fig(d, "fit", fit);
    fig(d, "predicted_bytes_per_job", pred);
    fig(d, "budget_bytes", bud);
    fig(d, "memory_above_warm_bytes", above);
    fig(d, "memory_above_idle_bytes", hwm - idle);
    d->pass = lost == 0 && done >= 1 && above > 0 && above <= bud && overlap <= fit && sampled <= fit;
    snprintf(d->observed, sizeof d->observed,
             "%d done, %d refused (429), %d lost; at most %d running at once (job times; %d in /api/v1/stats "
             "samples), %d fit; server VmHWM %.1f MiB above its warm RSS (%.1f above idle), budget %.1f MiB",
             done, refused, lost, overlap, sampled, fit, above / 1048576, (hwm - idle) / 1048576, bud / 1048576);
}

static void drill_kill9(rp_report *r, const rp_input *in)
{
    rp_drill *d = new_drill(r, "kill9",
                            "kill -9 with four jobs queued, then a restart on the same data: each job done "
                            "exactly once, its result readable");
    if (r->url) {
        skip(d, "needs a server this report started (not possible with --url)");
        return;
    }
    const char *extra[] = {"--job-delay-ms", "400", "--workers", "1", NULL};
    rp_server s;
    if (drill_server(r, &s, "kill9", extra)) {
        skip(d, "the drill's server did not start");
        return;
    }
    char ctype[128], ids[4][64] = {{0}};
    uint8_t *body;
    size_t len;
    int submitted_ok = 0;
    if (rp_multipart(in->image, in->image_len, "photo.jpg", "image/jpeg", in->mask, in->mask_len, "patchmatch",
                     &body, &len, ctype, sizeof ctype) == 0) {
        for (int i = 0; i < 4; i++) {
            rp_resp resp;
            if (rp_http(s.host, s.port, "POST", "/api/v1/jobs", ctype, body, len, 30, &resp) == 0 &&
                resp.status == 202) {
                rp_api_job_id(resp.body, ids[i], sizeof ids[i]);
                submitted_ok++;
            }
            rp_resp_free(&resp);
        }
        free(body);
    }
    nap(0.2);
    rp_server_kill9(&s);
    const char *again[] = {NULL};
    int done = 0, unique = 1;
    if (drill_server(r, &s, "kill9", again) == 0) {
        for (int i = 0; i < 4; i++) {
            rp_job j = {0};
            char path[400];
            rp_resp resp;
            if (!ids[i][0] || rp_job_wait(&s, ids[i], 120, &j))
                continue;
            snprintf(path, sizeof path, "/api/v1/jobs/%s/result", ids[i]);
            if (rp_http(s.host, s.port, "GET", path, NULL, NULL, 0, 30, &resp) == 0 && resp.status == 200 &&
                resp.len > 0)
                done++;
            rp_resp_free(&resp);
            for (int k = 0; k < i; k++)
                unique &= strcmp(ids[k], ids[i]) != 0;
        }
        rp_srv_stats st;
        int have = rp_stats_read(&s, &st) == 0;
        double sdone = have ? st.done : -1, recovered = have ? st.recovered : -1;
        rp_server_stop(&s);
        d->ran = 1;
        /* After the restart the server's done counter counts each recovered job once. */
        d->pass = submitted_ok == 4 && done == 4 && unique && sdone <= 4 && recovered >= 1;
        fig(d, "accepted", submitted_ok);
        fig(d, "done_after_restart", done);
        fig(d, "server_done", sdone);
        fig(d, "recovered", recovered);
        snprintf(d->observed, sizeof d->observed,
                 "%d of 4 accepted; after the restart %d done with a result; server counted done %.0f, "
                 "recovered %.0f",
                 submitted_ok, done, sdone, recovered);
    } else {
        d->ran = 1;
        d->pass = 0;
        snprintf(d->observed, sizeof d->observed, "the server did not start again on the same data directory");
    }
}

static int wanted(const rp_report *r, const char *name)
{
    if (strcmp(r->faults, "all") == 0)
        return 1;
    if (strcmp(r->faults, "none") == 0)
        return 0;
    char list[300];
    snprintf(list, sizeof list, ",%s,", r->faults);
    char pat[40];
    snprintf(pat, sizeof pat, ",%s,", name);
    return strstr(list, pat) != NULL;
}

int rp_run_drills(rp_report *r, rp_progress *p)
{
    rp_input small, large;
    int ls = r->nsizes - 1;
    if (rp_make_input(320, 240, &small))
        return PM_ENOMEM;
    if (rp_make_input(r->sizes[ls][0], r->sizes[ls][1], &large)) {
        rp_input_free(&small);
        return PM_ENOMEM;
    }
    double predicted = 0;
    for (int i = 0; i < r->ncells; i++)
        if (strcmp(r->cells[i].model, "patchmatch") == 0 && r->cells[i].w == large.w && r->cells[i].h == large.h)
            predicted = r->cells[i].predicted;
    const char *names[] = {"oversize", "bad-file", "disconnect", "slow-client", "five-large", "kill9"};
    for (int i = 0; i < 6; i++) {
        if (!wanted(r, names[i]))
            continue;
        switch (i) {
        case 0: drill_oversize(r); break;
        case 1: drill_bad_files(r, &small); break;
        case 2: drill_disconnect(r); break;
        case 3: drill_slow(r, &small); break;
        case 4: drill_five_large(r, &small, &large, predicted); break;
        default: drill_kill9(r, &small); break;
        }
        rp_progress_tick(p, (i + 1) / 6.0);
    }
    rp_input_free(&small);
    rp_input_free(&large);
    return 0;
}

const char *rp_drill_names(void)
{
    return DRILL_LIST;
}
