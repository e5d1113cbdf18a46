/* Memory laws per model (see memlaw.h). */
#include "sched/memlaw.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pm_memlaw_seed(pm_memlaw *l, const pm_model_desc *d, const void *state)
{
    memset(l, 0, sizeof *l);
    snprintf(l->model, sizeof l->model, "%s", d->name);
    double p1 = 512.0 * 512.0, p2 = 1024.0 * 1024.0;
    double e1 = d->mem_estimate ? (double)d->mem_estimate(state, 512, 512, 0) : 0;
    double e2 = d->mem_estimate ? (double)d->mem_estimate(state, 1024, 1024, 0) : 0;
    double b = (e2 - e1) / (p2 - p1);
    if (!(b > 0))
        b = e2 > 0 ? e2 / p2 : 16.0; /* an engine without an estimate: 16 bytes a pixel */
    double a = e1 - b * p1;
    if (a < 0)
        a = 0;
    l->a = l->seed_a = a;
    l->b = l->seed_b = b;
    l->max_ratio = 1;
    snprintf(l->source, sizeof l->source, "seed");
}

uint64_t pm_memlaw_predict(const pm_memlaw *l, uint64_t pixels)
{
    double v = l->a + l->b * (double)pixels;
    return v > 0 ? (uint64_t)ceil(v) : 0;
}

int pm_memlaw_clamp(pm_memlaw *l)
{
    int raised = 0;
    double m = 1 - PM_MEMLAW_MARGIN, ref = PM_MEMLAW_REF_PIXELS;
    if (l->b < m * l->seed_b) {
        l->b = m * l->seed_b;
        raised = 1;
    }
    /* With b above its floor, predictions at or above ref pixels are too. */
    double min_a = m * (l->seed_a + l->seed_b * ref) - l->b * ref;
    if (min_a < 0)
        min_a = 0;
    if (l->a < min_a) {
        l->a = min_a;
        raised = 1;
    }
    return raised;
}

/* Candidate law (a, b) made valid: within the seed's margin, then raised
 * so that no measurement is above it. Returns its largest relative error
 * over the measurements; *held = 1 when the margin raised it. */
static double settle(const pm_memlaw *seed, double a, double b, const double *px, const double *peak, int n,
                     pm_memlaw *out, int *held)
{
    *out = *seed;
    out->a = a;
    out->b = b;
    *held = pm_memlaw_clamp(out);
    double over = 0;
    for (int i = 0; i < n; i++) {
        double d = peak[i] - (out->a + out->b * px[i]);
        if (d > over)
            over = d;
    }
    out->a = ceil(out->a + over) + 1; /* whole bytes, strictly above every measurement */
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = (out->a + out->b * px[i] - peak[i]) / peak[i];
        if (e > worst)
            worst = e;
    }
    return worst;
}

int pm_memlaw_fit(pm_memlaw *l, const double *px, const double *peak, int n)
{
    if (n < 1)
        return pm_errorf(PM_EINVAL, "a memory law needs at least one measurement");
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        if (!(px[i] > 0) || !(peak[i] > 0))
            return pm_errorf(PM_EINVAL, "measurement %d (%g pixels, %g bytes) is not positive", i, px[i], peak[i]);
        sx += px[i];
        sy += peak[i];
        sxx += px[i] * px[i];
        sxy += px[i] * peak[i];
    }
    /* Candidates: the least-squares line (one measurement: the seed's slope
     * through it) and the line through each pair of measurements; each is
     * settled (margin, then no measurement above it) and the one with the
     * smallest largest error wins. */
    double den = (double)n * sxx - sx * sx;
    double b = l->seed_b;
    if (n >= 2 && fabs(den) > 1e-9 * sxx * (double)n)
        b = ((double)n * sxy - sx * sy) / den;
    pm_memlaw best, cand;
    int held, best_held;
    double best_err = settle(l, (sy - b * sx) / (double)n, b, px, peak, n, &best, &best_held);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (px[j] == px[i])
                continue;
            double bj = (peak[j] - peak[i]) / (px[j] - px[i]);
            double err = settle(l, peak[i] - bj * px[i], bj, px, peak, n, &cand, &held);
            if (err < best_err) {
                best_err = err;
                best = cand;
                best_held = held;
            }
        }
    *l = best;
    l->held_by_seed = best_held;
    l->npairs = n < PM_MEMLAW_MAX_PAIRS ? n : PM_MEMLAW_MAX_PAIRS;
    for (int i = 0; i < l->npairs; i++) {
        l->px[i] = px[i];
        l->peak[i] = peak[i];
    }
    l->max_ratio = 1;
    snprintf(l->source, sizeof l->source, "calibrate");
    return 0;
}

int pm_memlaw_observe(pm_memlaw *l, uint64_t pixels, uint64_t peak)
{
    double pred = l->a + l->b * (double)pixels;
    if (!(pred > 0) || (double)peak <= pred)
        return 0;
    double r = (double)peak / pred;
    l->a *= r;
    l->b *= r;
    if (r > l->max_ratio)
        l->max_ratio = r;
    snprintf(l->source, sizeof l->source, "measured");
    return 1;
}

uint64_t pm_memlaw_max_pixels(const pm_memlaw *l, uint64_t budget)
{
    if ((double)budget <= l->a || !(l->b > 0))
        return 0;
    return (uint64_t)floor(((double)budget - l->a) / l->b);
}

void pm_memlaw_fit_size(const pm_memlaw *l, uint64_t budget, int w, int h, int *fw, int *fh)
{
    *fw = *fh = 0;
    uint64_t maxpx = pm_memlaw_max_pixels(l, budget);
    if (maxpx == 0 || w <= 0 || h <= 0)
        return;
    double k = sqrt((double)maxpx / ((double)w * (double)h));
    int W = (int)floor(w * k), H = (int)floor(h * k);
    /* floor can still leave the product above by rounding: step down. */
    while (W > 0 && H > 0 && (uint64_t)W * (uint64_t)H > maxpx) {
        if (W >= H)
            W--;
        else
            H--;
    }
    *fw = W > 0 ? W : 0;
    *fh = H > 0 ? H : 0;
}

int pm_memlaw_save(const char *path, const pm_memlaw *laws, int n)
{
    size_t cap = 512 + (size_t)n * (512 + PM_MEMLAW_MAX_PAIRS * 48);
    char *buf = pm_malloc(cap);
    if (!buf)
        return pm_errorf(PM_ENOMEM, "out of memory saving the memory laws");
    size_t used = (size_t)snprintf(buf, cap,
                                   "{\"version\": 1, \"law\": \"peak_bytes = a + b * working_pixels\", "
                                   "\"models\": [\n");
    for (int i = 0; i < n && used < cap; i++) {
        const pm_memlaw *l = &laws[i];
        used += (size_t)snprintf(buf + used, cap - used,
                                 "  {\"model\": \"%s\", \"a\": %.17g, \"b\": %.17g, \"source\": \"%s\", "
                                 "\"max_ratio\": %.4f, \"seed_a\": %.17g, \"seed_b\": %.17g, \"pairs\": [",
                                 l->model, l->a, l->b, l->source, l->max_ratio, l->seed_a, l->seed_b);
        for (int k = 0; k < l->npairs && used < cap; k++)
            used += (size_t)snprintf(buf + used, cap - used, "%s[%.0f, %.0f]", k ? ", " : "", l->px[k], l->peak[k]);
        if (used < cap)
            used += (size_t)snprintf(buf + used, cap - used, "]}%s\n", i + 1 < n ? "," : "");
    }
    if (used < cap)
        used += (size_t)snprintf(buf + used, cap - used, "]}\n");
    int rc = 0;
    if (used >= cap)
        rc = pm_errorf(PM_EINTERNAL, "the memory laws do not fit their buffer");
    else if ((rc = pm_write_file_atomic(path, buf, used)))
        rc = pm_errorf(rc, "cannot write %s: %s; check that the data directory is writable", path,
                       pm_error_detail());
    pm_free(buf);
    return rc;
}

/* The number after "key": on the line; 0 if absent. */
static int json_number(const char *line, const char *key, double *out)
{
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(p + strlen(pat), &end);
    if (errno || end == p + strlen(pat) || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static int json_string(const char *line, const char *key, char *out, size_t len)
{
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != '"')
        return 0;
    const char *e = strchr(++p, '"');
    if (!e || (size_t)(e - p) >= len)
        return 0;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return 1;
}

int pm_memlaw_load(const char *path, pm_memlaw *laws, int max, int *n)
{
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? PM_ENOENT : pm_errorf(PM_EIO, "cannot read %s: %s", path, strerror(errno));
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strstr(line, "\"model\":"))
            continue;
        pm_memlaw l;
        memset(&l, 0, sizeof l);
        l.max_ratio = 1;
        if (!json_string(line, "model", l.model, sizeof l.model) || !json_number(line, "a", &l.a) ||
            !json_number(line, "b", &l.b) || l.a < 0 || !(l.b > 0)) {
            rc = pm_errorf(PM_ECORRUPT,
                           "%s line %d: expected {\"model\": NAME, \"a\": BYTES, \"b\": BYTES_PER_PIXEL, ...} with "
                           "a >= 0 and b > 0; fix or delete the file (pixmend calibrate writes it)",
                           path, lineno);
            break;
        }
        if (!json_string(line, "source", l.source, sizeof l.source))
            snprintf(l.source, sizeof l.source, "file");
        json_number(line, "max_ratio", &l.max_ratio);
        const char *p = strstr(line, "\"pairs\":");
        if (p && (p = strchr(p, '['))) {
            p++;
            double x, y;
            int used;
            while (l.npairs < PM_MEMLAW_MAX_PAIRS && sscanf(p, " [%lf , %lf ]%n", &x, &y, &used) == 2) {
                l.px[l.npairs] = x;
                l.peak[l.npairs] = y;
                l.npairs++;
                p += used;
                while (*p == ',' || *p == ' ')
                    p++;
            }
        }
        if (*n < max)
            laws[(*n)++] = l;
    }
    fclose(f);
    return rc;
}
