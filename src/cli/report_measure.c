/* pixmend report: the test image, the per-model/size runs, the leak check,
 * the soak and the memory tiers. */
#include "cli/report.h"
#include "monitor/monitor.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ small maths */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double rp_quantile(const double *v, int n, double q)
{
    if (n <= 0)
        return 0;
    double s[RP_MAX_POINTS];
    if (n > RP_MAX_POINTS)
        n = RP_MAX_POINTS;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1)
        return s[n - 1];
    return s[i] + (pos - i) * (s[i + 1] - s[i]);
}

void rp_fit_line(const double *x, const double *y, int n, double *slope, double *intercept)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        sx += x[i];
        sy += y[i];
        sxx += x[i] * x[i];
        sxy += x[i] * y[i];
    }
    double d = n * sxx - sx * sx;
    *slope = n > 1 && d != 0 ? (n * sxy - sx * sy) / d : 0;
    *intercept = n > 0 ? (sy - *slope * sx) / n : 0;
}

/* ------------------------------------------------------------ the test image */

static uint32_t hash2(int x, int y, uint32_t seed)
{
    uint32_t h = (uint32_t)x * 374761393u + (uint32_t)y * 668265263u + seed * 2246822519u;
    h = (h ^ (h >> 13)) * 1274126177u;
    return h ^ (h >> 16);
}

/* Value noise in [0, 1): bilinear between hashed lattice values `cell` px apart. */
static double value_noise(int x, int y, int cell, uint32_t seed)
{
    int gx = x / cell, gy = y / cell;
    double fx = (double)(x % cell) / cell, fy = (double)(y % cell) / cell;
    fx = fx * fx * (3 - 2 * fx);
    fy = fy * fy * (3 - 2 * fy);
    double v00 = (hash2(gx, gy, seed) & 0xffff) / 65536.0, v10 = (hash2(gx + 1, gy, seed) & 0xffff) / 65536.0;
    double v01 = (hash2(gx, gy + 1, seed) & 0xffff) / 65536.0, v11 = (hash2(gx + 1, gy + 1, seed) & 0xffff) / 65536.0;
    return (v00 * (1 - fx) + v10 * fx) * (1 - fy) + (v01 * (1 - fx) + v11 * fx) * fy;
}

static uint8_t clamp8(double v)
{
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)(v + 0.5);
}

/* A "landscape": a sky gradient, a horizon, ground of three octaves of value
 * noise, dark blocks with hard edges (buildings) and per-pixel grain. */
static void paint(pm_image *im)
{
    int w = im->width, h = im->height;
    double horizon = 0.45 * h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->data + ((size_t)y * w + x) * 3;
            double r, g, b;
            double n = 0.5 * value_noise(x, y, 1 + w / 8, 1) + 0.3 * value_noise(x, y, 1 + w / 32, 2) +
                       0.2 * value_noise(x, y, 1 + w / 128, 3);
            if (y < horizon) {
                double t = y / horizon;
                r = 90 + 100 * t + 30 * n;
                g = 140 + 80 * t + 30 * n;
                b = 230 - 20 * t + 20 * n;
            } else {
                double t = (y - horizon) / (h - horizon);
                r = 70 + 60 * n + 40 * t;
                g = 110 + 70 * n - 20 * t;
                b = 40 + 30 * n;
            }
            int bx = x * 12 / w;
            double top = horizon - (0.08 + 0.25 * ((hash2(bx, 7, 9) & 0xff) / 255.0)) * h;
            if ((bx % 3) != 1 && y >= top && y < horizon + 0.02 * h) {
                double shade = 0.35 + 0.3 * ((hash2(bx, 3, 5) & 0xff) / 255.0);
                r = 200 * shade + 20 * n;
                g = 190 * shade + 20 * n;
                b = 180 * shade + 20 * n;
            }
            double grain = ((hash2(x, y, 11) & 0xff) / 255.0 - 0.5) * 12;
            p[0] = clamp8(r + grain);
            p[1] = clamp8(g + grain);
            p[2] = clamp8(b + grain);
        }
}

int rp_make_input(int w, int h, rp_input *in)
{
    memset(in, 0, sizeof *in);
    pm_image im = {0}, mk = {0};
    int rc;
    if ((rc = pm_image_alloc(&im, w, h, 3)))
        return rc;
    if ((rc = pm_image_alloc(&mk, w, h, 1)))
        goto free_image;
    paint(&im);
    /* The mask: a rectangle of 28 % x 28 % of the sides (7.8 % of the
     * pixels), centred a little right of and below the middle, across the
     * horizon and a building's edge. */
    int x0 = w * 40 / 100, x1 = w * 68 / 100, y0 = h * 36 / 100, y1 = h * 64 / 100;
    size_t sel = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++, sel++)
            mk.data[(size_t)y * w + x] = 255;
    in->mask_share = (double)sel / ((double)w * h);
    pm_encode_opts jo = pm_default_encode_opts(PM_FMT_JPEG);
    jo.quality = 90;
    pm_encode_opts po = pm_default_encode_opts(PM_FMT_PNG);
    if ((rc = pm_image_encode(&im, &jo, &in->image, &in->image_len)))
        goto free_mask;
    if ((rc = pm_image_encode(&mk, &po, &in->mask, &in->mask_len))) {
        pm_free(in->image);
        in->image = NULL;
        goto free_mask;
    }
    in->w = w;
    in->h = h;
free_mask:
    pm_image_free(&mk);
free_image:
    pm_image_free(&im);
    return rc;
}

void rp_input_free(rp_input *in)
{
    pm_free(in->image);
    pm_free(in->mask);
    memset(in, 0, sizeof *in);
}

/* ------------------------------------------------------------ progress */

void rp_progress_phase(rp_progress *p, const char *phase, double planned_s)
{
    double now = pm_now();
    if (p->phase[0])
        p->done_s += now - p->phase_start;
    snprintf(p->phase, sizeof p->phase, "%s", phase);
    p->phase_start = now;
    p->phase_s = planned_s;
    rp_progress_tick(p, 0);
}

void rp_progress_tick(rp_progress *p, double frac)
{
    if (!p->enabled)
        return;
    double now = pm_now(), in_phase = now - p->phase_start;
    double phase_left = frac > 0.02 ? in_phase * (1 - frac) / frac : p->phase_s - in_phase;
    if (phase_left < 0)
        phase_left = 0;
    double later = p->planned_s - p->done_s - p->phase_s;
    double left = phase_left + (later > 0 ? later : 0);
    char bar[25];
    int fill = (int)(frac * 24);
    for (int i = 0; i < 24; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[24] = '\0';
    fprintf(stderr, "\r\033[Kreport %-22s [%s] %3d%%  %4.0fs elapsed, ~%.0fs left", p->phase, bar, (int)(frac * 100),
            now - p->start, left);
    fflush(stderr);
}

void rp_progress_end(rp_progress *p)
{
    if (p->enabled)
        fprintf(stderr, "\r\033[Kreport finished in %.0f s\n", pm_now() - p->start);
}

/* ------------------------------------------------------------ per model and size */

typedef struct batch {
    const rp_server *srv;
    const uint8_t *body;
    size_t len;
    const char *ctype;
    rp_job job;
    int rc;
} batch;

static void *batch_thread(void *arg)
{
    batch *b = arg;
    b->rc = rp_job_run(b->srv, b->body, b->len, b->ctype, 3600, &b->job);
    return NULL;
}

void rp_read_loadavg(double load[3])
{
    load[0] = load[1] = load[2] = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
        load[0] = load[1] = load[2] = -1;
    fclose(f);
}

/* Adds one finished job of ours to the cell. */
static void record(rp_cell *c, const batch *b, double *cpu)
{
    if (b->rc) {
        c->errors++;
        return;
    }
    const rp_job *j = &b->job;
    c->e2e[c->runs] = j->e2e_s;
    c->engine[c->runs] = j->engine_s;
    cpu[c->runs] = j->cpu_s;
    if (j->peak_bytes > c->job_peak)
        c->job_peak = j->peak_bytes;
    c->predicted = j->predicted_bytes;
    c->runs++;
}

/* One job of the plain outside client; turns r->outside_client off for
 * good when there is no curl. */
static int outside_run(rp_report *r, rp_cell *c, const char *const paths[2])
{
    double t, eng;
    int rc = rp_outside_job(&r->srv, paths[0], paths[1], c->model, &t, &eng);
    if (rc == PM_ENOENT)
        snprintf(r->outside_client, sizeof r->outside_client, "none (no curl)");
    else if (rc == 0) {
        c->outside_engine[c->outside_n] = eng;
        c->outside[c->outside_n++] = t;
    }
    return rc;
}

/* The median of the values >= 0 in v[0..n), or -1 when there are none. */
static double known_median(const double *v, int n)
{
    double k[RP_MAX_REPEAT];
    int m = 0;
    for (int i = 0; i < n && m < RP_MAX_REPEAT; i++)
        if (v[i] >= 0)
            k[m++] = v[i];
    return m ? rp_quantile(k, m, 0.5) : -1;
}

/* The server's result-write seconds so far (sum and count, /metrics). */
static void disk_writes(const rp_server *s, double *sum, double *count)
{
    char *m = rp_metrics(s);
    *sum = rp_api_metric(m, "pixmend_disk_write_seconds_sum", -1);
    *count = rp_api_metric(m, "pixmend_disk_write_seconds_count", -1);
    free(m);
}

/* The cell's figures once its runs are in. */
static void summarise(rp_report *r, rp_cell *c, const double *cpu, double rss0, double t_before, double dsum0,
                      double dcount0)
{
    c->e2e_p50 = rp_quantile(c->e2e, c->runs, 0.5);
    c->e2e_p95 = rp_quantile(c->e2e, c->runs, 0.95);
    c->e2e_max = rp_quantile(c->e2e, c->runs, 1.0);
    c->eng_p50 = rp_quantile(c->engine, c->runs, 0.5);
    c->eng_p95 = rp_quantile(c->engine, c->runs, 0.95);
    c->eng_max = rp_quantile(c->engine, c->runs, 1.0);
    c->cpu_s = rp_quantile(cpu, c->runs, 0.5);
    c->outside_p50 = c->outside_n ? rp_quantile(c->outside, c->outside_n, 0.5) : -1;
    c->outside_engine_p50 = known_median(c->outside_engine, c->outside_n);
    c->pair_ratio_p50 = c->npairs ? rp_quantile(c->pair_ratio, c->npairs, 0.5) : -1;
    c->process_peak = r->srv.pid > 0 ? (double)rp_proc_hwm(r->srv.pid) : -1;
    c->rss_above_base = c->process_peak > 0 && c->process_peak > rss0 ? c->process_peak - rss0 : -1;
    double dsum, dcount;
    disk_writes(&r->srv, &dsum, &dcount);
    c->disk_write_ms = dsum >= 0 && dsum0 >= 0 && dcount > dcount0 ? 1000 * (dsum - dsum0) / (dcount - dcount0) : -1;
    char *body = rp_stats(&r->srv);
    rp_srv_stats st;
    c->gpu_peak = rp_api_gpu_peak_since(body, t_before);
    const rp_law *law = rp_api_stats(body, &st) == 0 ? rp_api_law(&st, c->model) : NULL;
    c->law_predicted = law ? law->a + law->b * (double)c->w * c->h : -1;
    free(body);
    double load[3];
    rp_read_loadavg(load);
    c->load1 = load[0];
}

/* Runs r->repeat jobs of one model at one size, `concurrency` at a time.
 * At concurrency 1 each of our jobs has a job of the plain outside client
 * next to it (alternately before and after), so that the machine's load
 * falls on both alike. `paths`: the input's files, or NULL. */
static int measure_cell(rp_report *r, rp_cell *c, const rp_input *in, const char *const paths[2], rp_progress *p,
                        double frac0, double frac1)
{
    uint8_t *body = NULL;
    size_t len = 0;
    char ctype[128];
    int rc = rp_multipart(in->image, in->image_len, "photo.jpg", "image/jpeg", in->mask, in->mask_len, c->model,
                          &body, &len, ctype, sizeof ctype);
    if (rc)
        return rc;
    batch b[16];
    int conc = r->concurrency < 1 ? 1 : r->concurrency > 16 ? 16 : r->concurrency;
    rp_srv_stats st0;
    double t_before = rp_stats_read(&r->srv, &st0) == 0 ? st0.last_sample_t : -1, dsum0, dcount0;
    disk_writes(&r->srv, &dsum0, &dcount0);
    /* The process peak is measured against the server's idle RSS (before
     * the first job), so that memory kept from earlier cells is not taken
     * off this cell's figure. */
    double rss0 = r->baseline_rss > 0 ? r->baseline_rss : (double)rp_server_rss(&r->srv);
    if (r->srv.pid > 0)
        rp_proc_reset_hwm(r->srv.pid);
    double cpu[RP_MAX_REPEAT];
    int done = 0;
    while (done < r->repeat) {
        int k = r->repeat - done < conc ? r->repeat - done : conc;
        int outside = k == 1 && paths && strcmp(r->outside_client, "curl") == 0, out_rc = -1, runs0 = c->runs;
        if (outside && (done & 1))
            out_rc = outside_run(r, c, paths);
        pthread_t th[16];
        for (int i = 0; i < k; i++) {
            b[i] = (batch){.srv = &r->srv, .body = body, .len = len, .ctype = ctype};
            if (k == 1)
                batch_thread(&b[i]);
            else
                pthread_create(&th[i], NULL, batch_thread, &b[i]);
        }
        for (int i = 0; i < k; i++) {
            if (k > 1)
                pthread_join(th[i], NULL);
            record(c, &b[i], cpu);
        }
        if (outside && !(done & 1))
            out_rc = outside_run(r, c, paths);
        if (out_rc == 0 && c->runs > runs0)
            c->pair_ratio[c->npairs++] = c->e2e[c->runs - 1] / c->outside[c->outside_n - 1];
        done += k;
        rp_progress_tick(p, frac0 + (frac1 - frac0) * done / r->repeat);
    }
    free(body);
    summarise(r, c, cpu, rss0, t_before, dsum0, dcount0);
    return c->runs > 0 ? 0 : PM_EIO;
}

/* Writes the input next to the report, so that anyone can time it again
 * (and the outside client sends these files); paths[] receive their names.
 * 0, or -1 when a file could not be written. */
static int save_input(const rp_report *r, const rp_input *in, char paths[2][1200])
{
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(paths[k], 1200, "%s/%s-%dx%d.%s", r->outdir, k ? "mask" : "input", in->w, in->h, k ? "png" : "jpg");
        FILE *f = fopen(paths[k], "wb");
        if (!f) {
            rc = -1;
            continue;
        }
        size_t len = k ? in->mask_len : in->image_len;
        if (fwrite(k ? in->mask : in->image, 1, len, f) != len)
            rc = -1;
        if (fclose(f))
            rc = -1;
    }
    return rc;
}

/* One job per model at the first size, not counted: a fresh server pays
 * one-time costs (threads, page faults, the engine's first plan) on it. */
static void warm_up(rp_report *r)
{
    rp_input in;
    if (rp_make_input(r->sizes[0][0], r->sizes[0][1], &in))
        return;
    for (int m = 0; m < r->nmodels; m++) {
        uint8_t *body = NULL;
        size_t len = 0;
        char ctype[128];
        rp_job j;
        if (rp_multipart(in.image, in.image_len, "photo.jpg", "image/jpeg", in.mask, in.mask_len, r->models[m],
                         &body, &len, ctype, sizeof ctype) == 0)
            rp_job_run(&r->srv, body, len, ctype, 3600, &j);
        free(body);
    }
    rp_input_free(&in);
}

int rp_measure_cells(rp_report *r, rp_progress *p)
{
    int ncell = r->nmodels * r->nsizes, k = 0;
    r->baseline_rss = (double)rp_server_rss(&r->srv);
    snprintf(r->outside_client, sizeof r->outside_client, "%s",
             r->concurrency > 1 ? "none (concurrency > 1)" : "curl");
    warm_up(r);
    rp_read_loadavg(r->load_start);
    for (int s = 0; s < r->nsizes; s++) {
        rp_input in;
        char paths[2][1200];
        if (rp_make_input(r->sizes[s][0], r->sizes[s][1], &in))
            return pm_errorf(PM_ENOMEM, "cannot make the %dx%d test image", r->sizes[s][0], r->sizes[s][1]);
        const char *files[2] = {paths[0], paths[1]};
        int saved = save_input(r, &in, paths) == 0;
        for (int m = 0; m < r->nmodels; m++) {
            rp_cell *c = &r->cells[r->ncells++];
            memset(c, 0, sizeof *c);
            snprintf(c->model, sizeof c->model, "%s", r->models[m]);
            c->w = in.w;
            c->h = in.h;
            measure_cell(r, c, &in, saved ? files : NULL, p, (double)k / ncell, (double)(k + 1) / ncell);
            k++;
        }
        rp_input_free(&in);
    }
    rp_read_loadavg(r->load_end);
    rp_srv_stats st;
    rp_stats_read(&r->srv, &st);
    r->disk_write_p50_ms = st.disk_p50_ms;
    r->disk_write_p95_ms = st.disk_p95_ms;
    return 0;
}

/* ------------------------------------------------------------ leak check */

int rp_measure_leak(rp_report *r, rp_progress *p)
{
    rp_leak *L = &r->leak;
    rp_input in;
    if (rp_make_input(320, 240, &in))
        return PM_ENOMEM;
    uint8_t *body = NULL;
    size_t len = 0;
    char ctype[128];
    int rc = rp_multipart(in.image, in.image_len, "photo.jpg", "image/jpeg", in.mask, in.mask_len, "patchmatch",
                          &body, &len, ctype, sizeof ctype);
    if (rc)
        goto free_input;
    /* Warm-up: at least RP_LEAK_WINDOW jobs, then until RSS rose by less
     * than the bound per job over the last RP_LEAK_WINDOW (each new HTTP thread and allocator arena shows as a
     * step at first: with the mask decoded on the HTTP threads, a server's
     * RSS climbs for about 230 jobs here and then stays level), at most
     * RP_LEAK_MAX_WARMUP jobs or RP_LEAK_MAX_WARMUP_BYTES of growth (a leak
     * of the bound or more never levels off; it is measured from there). */
    int n = r->leak_jobs;
    double x[RP_MAX_POINTS], recent[RP_LEAK_WINDOW] = {0}, rss_start = (double)rp_server_rss(&r->srv);
    L->jobs = 0;
    L->threshold = 65536;
    for (int i = 0; L->rss.n < n && L->rss.n < RP_MAX_POINTS; i++) {
        rp_resp resp;
        int e = rp_http(r->srv.host, r->srv.port, "POST", "/api/v1/inpaint", ctype, body, len, 120, &resp);
        if (e || resp.status != 200)
            L->errors++;
        rp_resp_free(&resp);
        double rss = (double)rp_server_rss(&r->srv);
        if (L->warmup == i) {
            double rise = rss - recent[i % RP_LEAK_WINDOW];
            recent[i % RP_LEAK_WINDOW] = rss;
            if (i < RP_LEAK_WINDOW || (i < RP_LEAK_MAX_WARMUP && rise > RP_LEAK_WINDOW * L->threshold &&
                                       rss - rss_start < RP_LEAK_MAX_WARMUP_BYTES)) {
                L->warmup++;
                rp_progress_tick(p, 0.3 * L->warmup / RP_LEAK_MAX_WARMUP);
                continue;
            }
        }
        x[L->rss.n] = L->jobs;
        L->rss.t[L->rss.n] = L->jobs;
        L->rss.v[L->rss.n] = rss;
        L->rss.n++;
        L->jobs++;
        rp_progress_tick(p, 0.3 + 0.7 * L->rss.n / n);
    }
    rp_fit_line(x, L->rss.v, L->rss.n, &L->slope_all, &L->intercept);
    /* The verdict is on the second half: a server's RSS climbs for a while
     * as threads, arenas and tables warm up and then levels off, while a
     * leak keeps its slope to the end. */
    int h = L->rss.n / 2;
    double unused;
    rp_fit_line(x + h, L->rss.v + h, L->rss.n - h, &L->slope, &unused);
    L->pass = L->errors == 0 && L->rss.n >= 10 && L->slope < L->threshold;
    free(body);
free_input:
    rp_input_free(&in);
    return rc;
}

/* ------------------------------------------------------------ soak */

typedef struct soak_ctx {
    rp_report *r;
    double end;
    const uint8_t *body[2];
    size_t len[2];
    const char *ctype;
    pthread_mutex_t lock;
    int jobs, errors;
} soak_ctx;

static void *soak_client(void *arg)
{
    soak_ctx *c = arg;
    for (int i = 0; pm_now() < c->end; i++) {
        rp_resp resp;
        int k = i & 1;
        int e = rp_http(c->r->srv.host, c->r->srv.port, "POST", "/api/v1/inpaint", c->ctype, c->body[k], c->len[k],
                        120, &resp);
        int ok = e == 0 && resp.status == 200;
        rp_resp_free(&resp);
        pthread_mutex_lock(&c->lock);
        c->jobs++;
        c->errors += !ok;
        pthread_mutex_unlock(&c->lock);
    }
    return NULL;
}

/* Mean of v over samples whose t is in [t0, t1). */
static double mean_in(const rp_series *s, const double *v, double t0, double t1)
{
    double sum = 0;
    int n = 0;
    for (int i = 0; i < s->n; i++)
        if (s->t[i] >= t0 && s->t[i] < t1) {
            sum += v[i];
            n++;
        }
    return n ? sum / n : 0;
}

int rp_measure_soak(rp_report *r, rp_progress *p)
{
    rp_soak *S = &r->soak;
    rp_input in[2];
    uint8_t *body[2] = {0};
    size_t len[2];
    char ctype[128];
    int rc = 0, nclients = r->concurrency > 1 ? r->concurrency : 2;
    if (nclients > 8)
        nclients = 8;
    if (rp_make_input(320, 240, &in[0]))
        return PM_ENOMEM;
    if (rp_make_input(640, 480, &in[1])) {
        rp_input_free(&in[0]);
        return PM_ENOMEM;
    }
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = rp_multipart(in[i].image, in[i].image_len, "photo.jpg", "image/jpeg", in[i].mask, in[i].mask_len,
                          i == 0 && r->nmodels > 1 ? r->models[1] : "patchmatch", &body[i], &len[i], ctype,
                          sizeof ctype);
    if (rc)
        goto free_bodies;
    soak_ctx c = {.r = r, .body = {body[0], body[1]}, .len = {len[0], len[1]}, .ctype = ctype};
    pthread_mutex_init(&c.lock, NULL);
    double t0 = pm_now();
    c.end = t0 + r->soak_s;
    pthread_t th[8];
    for (int i = 0; i < nclients; i++)
        pthread_create(&th[i], NULL, soak_client, &c);
    double step = r->soak_s / 400 > 0.25 ? r->soak_s / 400 : 0.25;
    while (pm_now() < c.end && S->samples.n < RP_MAX_POINTS) {
        int i = S->samples.n;
        S->samples.t[i] = pm_now() - t0;
        S->samples.v[i] = (double)rp_server_rss(&r->srv);
        S->samples.fds[i] = r->srv.pid > 0 ? rp_proc_fds(r->srv.pid) : -1;
        rp_srv_stats st;
        S->samples.heap[i] = rp_stats_read(&r->srv, &st) == 0 ? st.heap_in_use : -1;
        S->samples.n++;
        rp_progress_tick(p, (pm_now() - t0) / r->soak_s);
        struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < nclients; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&c.lock);
    S->seconds = pm_now() - t0;
    S->jobs = c.jobs;
    S->errors = c.errors;
    /* First and last portion: the first and last minute, or a fifth of a shorter soak. */
    double part = S->seconds >= 300 ? 60 : S->seconds / 5;
    S->rss_first = mean_in(&S->samples, S->samples.v, 0, part);
    S->rss_last = mean_in(&S->samples, S->samples.v, S->seconds - part, S->seconds + 1);
    S->fds_first = mean_in(&S->samples, S->samples.fds, 0, part);
    S->fds_last = mean_in(&S->samples, S->samples.fds, S->seconds - part, S->seconds + 1);
    S->heap_first = mean_in(&S->samples, S->samples.heap, 0, part);
    S->heap_last = mean_in(&S->samples, S->samples.heap, S->seconds - part, S->seconds + 1);
    S->drift_bytes = S->rss_last - S->rss_first;
    double bound = S->rss_first * 0.10 > 32.0 * 1048576 ? S->rss_first * 0.10 : 32.0 * 1048576;
    S->pass = 1;
    if (S->errors) {
        S->pass = 0;
        snprintf(S->why, sizeof S->why, "%d of %d jobs failed", S->errors, S->jobs);
    } else if (S->drift_bytes > bound) {
        S->pass = 0;
        snprintf(S->why, sizeof S->why, "RSS grew by %.1f MiB from the first to the last portion (bound %.1f MiB)",
                 S->drift_bytes / 1048576, bound / 1048576);
    } else if (S->fds_last > S->fds_first + 4) {
        S->pass = 0;
        snprintf(S->why, sizeof S->why, "open descriptors grew from %.0f to %.0f", S->fds_first, S->fds_last);
    } else {
        snprintf(S->why, sizeof S->why, "no errors; RSS drift %.1f MiB within %.1f MiB; descriptors steady",
                 S->drift_bytes / 1048576, bound / 1048576);
    }
free_bodies:
    free(body[0]);
    free(body[1]);
    rp_input_free(&in[0]);
    rp_input_free(&in[1]);
    return rc;
}

/* ------------------------------------------------------------ memory tiers */

static const double tier_gib[RP_NTIERS] = {2, 4, 8, 16, 32};

void rp_tier_size(double bytes, double share, double a, double b, int *w, int *h)
{
    double px = b > 0 ? (bytes * share - a) / b : 0;
    *w = *h = 0;
    if (px < 1)
        return;
    double fw = floor(sqrt(px * 4.0 / 3.0));
    while (fw > 1 && fw * floor(fw * 3.0 / 4.0) > px)
        fw -= 1;
    *w = (int)fw;
    *h = (int)floor(fw * 3.0 / 4.0);
}

void rp_fit_relative(const double *x, const double *y, int n, double *a, double *b)
{
    /* Weighted least squares with weights 1 / y^2: minimises the relative
     * error, so that a small size counts as much as a large one. */
    double sw = 0, swx = 0, swy = 0, swxx = 0, swxy = 0;
    for (int i = 0; i < n; i++) {
        double w = 1.0 / (y[i] * y[i]);
        sw += w;
        swx += w * x[i];
        swy += w * y[i];
        swxx += w * x[i] * x[i];
        swxy += w * x[i] * y[i];
    }
    double d = sw * swxx - swx * swx;
    *a = *b = 0;
    if (n < 2 || d <= 0)
        return;
    *b = (sw * swxy - swx * swy) / d;
    *a = (swy - *b * swx) / sw;
    if (*a < 0) { /* a line through 0: b = sum(w x y) / sum(w x^2) */
        *a = 0;
        *b = swxy / swxx;
    }
}

/* Fits t->fit_* to the job peaks of t->model and sizes the tiers with it. */
static void fit_measured(const rp_report *r, rp_tier_row *t, double box)
{
    int n = 0;
    for (int i = 0; i < r->ncells && n < RP_MAX_SIZES; i++) {
        const rp_cell *c = &r->cells[i];
        if (strcmp(c->model, t->model) != 0 || c->runs == 0 || c->job_peak <= 0)
            continue;
        t->fit_px[n] = (double)c->w * c->h;
        t->fit_peak[n] = c->job_peak;
        t->fit_rss[n] = c->rss_above_base;
        t->fit_pred[n] = c->predicted;
        n++;
    }
    if (n < 2)
        return;
    rp_fit_relative(t->fit_px, t->fit_peak, n, &t->fit_a, &t->fit_b);
    if (t->fit_b <= 0)
        return;
    t->fit_n = n;
    t->fit_max_error = 0;
    for (int i = 0; i < n; i++) {
        t->fit_err[i] = (t->fit_a + t->fit_b * t->fit_px[i] - t->fit_peak[i]) / t->fit_peak[i];
        if (fabs(t->fit_err[i]) > t->fit_max_error)
            t->fit_max_error = fabs(t->fit_err[i]);
    }
    for (int i = 0; i <= RP_NTIERS; i++)
        rp_tier_size(i < RP_NTIERS ? tier_gib[i] * 1073741824.0 : box, r->budget_share, t->fit_a, t->fit_b, &t->fw[i],
                     &t->fh[i]);
    for (int i = 0; i < n; i++)
        if (t->fit_rss[i] <= 0)
            return;
    rp_fit_relative(t->fit_px, t->fit_rss, n, &t->rss_fit_a, &t->rss_fit_b);
    if (t->rss_fit_b <= 0)
        return;
    t->rss_fit_n = n;
    for (int i = 0; i < n; i++) {
        double e = fabs(t->rss_fit_a + t->rss_fit_b * t->fit_px[i] - t->fit_rss[i]) / t->fit_rss[i];
        if (e > t->rss_fit_max_error)
            t->rss_fit_max_error = e;
    }
    for (int i = 0; i <= RP_NTIERS; i++)
        rp_tier_size(i < RP_NTIERS ? tier_gib[i] * 1073741824.0 : box, r->budget_share, t->rss_fit_a, t->rss_fit_b,
                     &t->rw[i], &t->rh[i]);
}

void rp_measure_tiers(rp_report *r)
{
    rp_srv_stats st;
    int have = rp_stats_read(&r->srv, &st) == 0;
    uint64_t host = 0, avail = 0;
    pm_read_meminfo(&host, &avail);
    double box = have && st.host_total > 0 ? st.host_total : (double)host;
    if (have && st.cgroup_max > 0 && st.cgroup_max < box)
        box = st.cgroup_max;
    r->box_bytes = box;
    r->budget_share = PM_DEFAULT_BUDGET_SHARE;
    r->server_budget_share = have && st.budget > 0 && box > 0 ? st.budget / box : 0;
    r->ntiers = 0;
    for (int m = 0; m < r->nmodels; m++) {
        rp_tier_row *t = &r->tiers[r->ntiers];
        memset(t, 0, sizeof *t);
        snprintf(t->model, sizeof t->model, "%s", r->models[m]);
        const rp_law *law = have ? rp_api_law(&st, t->model) : NULL;
        if (law && law->b > 0) {
            t->a = law->a;
            t->b = law->b;
            snprintf(t->source, sizeof t->source, "%s", law->source);
            for (int i = 0; i <= RP_NTIERS; i++)
                rp_tier_size(i < RP_NTIERS ? tier_gib[i] * 1073741824.0 : box, r->budget_share, t->a, t->b, &t->w[i],
                             &t->h[i]);
        } else {
            snprintf(t->source, sizeof t->source, "unknown");
        }
        fit_measured(r, t, box);
        if (t->b > 0 || t->fit_n > 0)
            r->ntiers++;
    }
}
