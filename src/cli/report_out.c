/* pixmend report: report.json, report.md and report.html (one self-contained
 * file with inline SVG plots). */
#include "cli/report.h"

#include <stdio.h>
#include <string.h>

static const double tier_gib[RP_NTIERS] = {2, 4, 8, 16, 32};

/* A figure, or null for the "unknown" sentinel (< 0). */
static void jnum(FILE *f, const char *key, double v, int last)
{
    if (v < 0)
        fprintf(f, "\"%s\":null%s", key, last ? "" : ",");
    else
        fprintf(f, "\"%s\":%.6g%s", key, v, last ? "" : ",");
}

static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static const char *drill_status(const rp_drill *d)
{
    return !d->ran ? "skipped" : d->pass ? "passed" : "failed";
}

static void json_machine(FILE *f)
{
    pm_sysinfo si;
    pm_sysinfo_read(&si);
    fprintf(f, "\"machine\":{\"cpu\":");
    jstr(f, si.cpu_model);
    fprintf(f, ",\"isa\":{\"avx2\":%s,\"avx512f\":%s,\"avx512_bf16\":%s},\"logical_cores\":%d,\"physical_cores\":%d,",
            si.has_avx2 ? "true" : "false", si.has_avx512f ? "true" : "false", si.has_avx512_bf16 ? "true" : "false",
            si.logical_cores, si.physical_cores);
    fprintf(f, "\"memory_bytes\":%llu,\"memory_available_bytes\":%llu,", (unsigned long long)si.mem_total,
            (unsigned long long)si.mem_available);
    if (si.has_cgroup_limit)
        fprintf(f, "\"cgroup_limit_bytes\":%llu,", (unsigned long long)si.cgroup_mem_max);
    else
        fprintf(f, "\"cgroup_limit_bytes\":null,");
    fprintf(f, "\"gpus\":[");
    for (int i = 0; i < si.gpu_count; i++) {
        fprintf(f, "%s{\"name\":", i ? "," : "");
        jstr(f, si.gpus[i].name);
        fprintf(f, ",\"memory_bytes\":%llu}", (unsigned long long)si.gpus[i].mem_total);
    }
    fprintf(f, "],\"gpu_status\":");
    jstr(f, si.gpu_count ? "ok" : si.nvml_status);
    fprintf(f, "},");
}

static void json_options(FILE *f, const rp_report *r)
{
    fprintf(f, "\"options\":{\"url\":");
    if (r->url)
        jstr(f, r->url);
    else
        fputs("null", f);
    fprintf(f, ",\"models\":[");
    for (int i = 0; i < r->nmodels; i++) {
        fprintf(f, "%s", i ? "," : "");
        jstr(f, r->models[i]);
    }
    fprintf(f, "],\"sizes\":[");
    for (int i = 0; i < r->nsizes; i++)
        fprintf(f, "%s\"%dx%d\"", i ? "," : "", r->sizes[i][0], r->sizes[i][1]);
    fprintf(f, "],\"repeat\":%d,\"concurrency\":%d,\"soak_s\":%g,\"faults\":", r->repeat, r->concurrency, r->soak_s);
    jstr(f, r->faults);
    fprintf(f, ",\"mem_budget\":");
    if (r->mem_budget[0])
        jstr(f, r->mem_budget);
    else
        fputs("null", f);
    fprintf(f, ",\"leak_jobs\":%d},", r->leak_jobs);
}

static void json_series(FILE *f, const char *key, const double *v, int n)
{
    fprintf(f, "\"%s\":[", key);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.10g", i ? "," : "", v[i]);
    fprintf(f, "]");
}

static void json_runs(FILE *f, const rp_report *r)
{
    fprintf(f, "\"runs\":[");
    for (int i = 0; i < r->ncells; i++) {
        const rp_cell *c = &r->cells[i];
        fprintf(f, "%s{\"model\":", i ? "," : "");
        jstr(f, c->model);
        fprintf(f, ",\"width\":%d,\"height\":%d,\"pixels\":%lld,\"runs\":%d,\"errors\":%d,", c->w, c->h,
                (long long)c->w * c->h, c->runs, c->errors);
        fprintf(f, "\"e2e_s\":{");
        jnum(f, "p50", c->e2e_p50, 0);
        jnum(f, "p95", c->e2e_p95, 0);
        jnum(f, "max", c->e2e_max, 0);
        json_series(f, "all", c->e2e, c->runs);
        fprintf(f, "},\"engine_s\":{");
        jnum(f, "p50", c->eng_p50, 0);
        jnum(f, "p95", c->eng_p95, 0);
        jnum(f, "max", c->eng_max, 0);
        json_series(f, "all", c->engine, c->runs);
        fprintf(f, "},");
        jnum(f, "cpu_s", c->cpu_s, 0);
        jnum(f, "job_peak_bytes", c->job_peak, 0);
        jnum(f, "rss_above_baseline_bytes", c->rss_above_base, 0);
        jnum(f, "process_peak_bytes", c->process_peak, 0);
        jnum(f, "predicted_bytes", c->predicted, 0);
        jnum(f, "law_predicted_bytes", c->law_predicted, 0);
        jnum(f, "law_over_peak", c->law_predicted > 0 && c->job_peak > 0 ? c->law_predicted / c->job_peak : -1, 0);
        jnum(f, "disk_write_ms_mean", c->disk_write_ms, 0);
        jnum(f, "gpu_peak_bytes", c->gpu_peak, 0);
        fprintf(f, "\"outside_s\":{");
        jnum(f, "p50", c->outside_p50, 0);
        json_series(f, "all", c->outside, c->outside_n);
        fprintf(f, ",");
        jnum(f, "engine_p50", c->outside_engine_p50, 0);
        json_series(f, "engine_all", c->outside_engine, c->outside_n);
        fprintf(f, "},");
        jnum(f, "e2e_over_outside", c->pair_ratio_p50, 0);
        json_series(f, "e2e_over_outside_pairs", c->pair_ratio, c->npairs);
        fprintf(f, ",");
        jnum(f, "e2e_p50_over_outside_p50", c->outside_p50 > 0 ? c->e2e_p50 / c->outside_p50 : -1, 0);
        jnum(f, "load_average_1m", c->load1, 1);
        fprintf(f, "}");
    }
    fprintf(f, "],");
}

static void json_health(FILE *f, const rp_report *r)
{
    const rp_leak *L = &r->leak;
    fprintf(f, "\"leak\":{\"jobs\":%d,\"warmup_jobs\":%d,\"errors\":%d,\"slope_bytes_per_job\":%.1f,"
               "\"slope_all_bytes_per_job\":%.1f,\"intercept_bytes\":%.0f,\"threshold_bytes_per_job\":%.0f,\"pass\":%s,",
            L->jobs, L->warmup, L->errors, L->slope, L->slope_all, L->intercept, L->threshold,
            L->pass ? "true" : "false");
    json_series(f, "rss_bytes", L->rss.v, L->rss.n);
    const rp_soak *S = &r->soak;
    fprintf(f, "},\"soak\":{\"seconds\":%.1f,\"jobs\":%d,\"errors\":%d,\"rss_first_bytes\":%.0f,\"rss_last_bytes\":%.0f,"
               "\"drift_bytes\":%.0f,\"fds_first\":%.1f,\"fds_last\":%.1f,\"heap_first_bytes\":%.0f,"
               "\"heap_last_bytes\":%.0f,\"pass\":%s,\"verdict\":",
            S->seconds, S->jobs, S->errors, S->rss_first, S->rss_last, S->drift_bytes, S->fds_first, S->fds_last,
            S->heap_first, S->heap_last, S->pass ? "true" : "false");
    jstr(f, S->why);
    fprintf(f, ",\"samples\":[");
    for (int i = 0; i < S->samples.n; i++)
        fprintf(f, "%s{\"t\":%.2f,\"rss_bytes\":%.0f,\"heap_bytes\":%.0f,\"fds\":%.0f}", i ? "," : "",
                S->samples.t[i], S->samples.v[i], S->samples.heap[i], S->samples.fds[i]);
    fprintf(f, "]},");
}

static void json_largest(FILE *f, const rp_report *r, const int *w, const int *h)
{
    fprintf(f, "[");
    for (int k = 0; k <= RP_NTIERS; k++)
        fprintf(f, "%s{\"memory_bytes\":%.0f,\"box\":%s,\"width\":%d,\"height\":%d}", k ? "," : "",
                k < RP_NTIERS ? tier_gib[k] * 1073741824.0 : r->box_bytes, k < RP_NTIERS ? "false" : "true", w[k], h[k]);
    fprintf(f, "]");
}

static void json_tiers(FILE *f, const rp_report *r)
{
    fprintf(f, "\"tiers\":{\"budget_share\":%.4f,\"server_budget_share\":", r->budget_share);
    if (r->server_budget_share > 0)
        fprintf(f, "%.4f", r->server_budget_share);
    else
        fputs("null", f);
    fprintf(f, ",\"box_memory_bytes\":%.0f,\"models\":[", r->box_bytes);
    for (int i = 0; i < r->ntiers; i++) {
        const rp_tier_row *t = &r->tiers[i];
        fprintf(f, "%s{\"model\":", i ? "," : "");
        jstr(f, t->model);
        fprintf(f, ",\"law\":");
        if (t->b > 0) {
            fprintf(f, "{\"a_bytes\":%.10g,\"b_bytes_per_pixel\":%.10g,\"source\":", t->a, t->b);
            jstr(f, t->source);
            fprintf(f, ",\"largest\":");
            json_largest(f, r, t->w, t->h);
            fprintf(f, "}");
        } else {
            fputs("null", f);
        }
        fprintf(f, ",\"process_fit\":");
        if (t->rss_fit_n >= 2) {
            fprintf(f, "{\"of\":\"rss_above_baseline_bytes\",\"sizes\":%d,\"a_bytes\":%.10g,"
                       "\"b_bytes_per_pixel\":%.10g,\"max_error\":%.6f,\"largest\":",
                    t->rss_fit_n, t->rss_fit_a, t->rss_fit_b, t->rss_fit_max_error);
            json_largest(f, r, t->rw, t->rh);
            fprintf(f, "}");
        } else {
            fputs("null", f);
        }
        fprintf(f, ",\"measured_fit\":");
        if (t->fit_n < 2) {
            fprintf(f, "null}");
            continue;
        }
        fprintf(f, "{\"of\":\"job_peak_bytes\",\"sizes\":%d,\"a_bytes\":%.10g,\"b_bytes_per_pixel\":%.10g,"
                   "\"max_error\":%.6f,\"points\":[",
                t->fit_n, t->fit_a, t->fit_b, t->fit_max_error);
        for (int k = 0; k < t->fit_n; k++) {
            fprintf(f, "%s{\"pixels\":%.0f,\"measured_bytes\":%.0f,\"fitted_bytes\":%.0f,\"error\":%.6f,", k ? "," : "",
                    t->fit_px[k], t->fit_peak[k], t->fit_a + t->fit_b * t->fit_px[k], t->fit_err[k]);
            jnum(f, "admission_bytes", t->fit_pred[k], 0);
            jnum(f, "law_bytes", t->b > 0 ? t->a + t->b * t->fit_px[k] : -1, 0);
            jnum(f, "rss_above_baseline_bytes", t->fit_rss[k], 1);
            fprintf(f, "}");
        }
        fprintf(f, "],\"largest\":");
        json_largest(f, r, t->fw, t->fh);
        fprintf(f, "}}");
    }
    fprintf(f, "]},");
}

int rp_write_json(const rp_report *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return pm_errorf(PM_EIO, "cannot write %s", path);
    fprintf(f, "{\"pixmend_version\":\"%s\",\"started_at\":\"%s\",\"duration_s\":%.1f,\"pass\":%s,",
            PM_VERSION_STRING, r->started_at, r->total_s, r->pass ? "true" : "false");
    json_machine(f);
    json_options(f, r);
    fprintf(f, "\"load_average\":{\"start\":[%.2f,%.2f,%.2f],\"end\":[%.2f,%.2f,%.2f]},\"outside_client\":",
            r->load_start[0], r->load_start[1], r->load_start[2], r->load_end[0], r->load_end[1], r->load_end[2]);
    jstr(f, r->outside_client);
    fprintf(f, ",\"server\":{\"mode\":\"%s\",\"baseline_rss_bytes\":%.0f,\"disk_write_ms\":{", r->url ? "url" : "own",
            r->baseline_rss);
    jnum(f, "p50", r->disk_write_p50_ms, 0);
    jnum(f, "p95", r->disk_write_p95_ms, 1);
    fprintf(f, "}},\"input\":{\"image\":\"generated: sky gradient, horizon, three octaves of value noise, hard-edged "
               "blocks, grain; JPEG quality 90\",\"mask\":\"rectangle 28%% x 28%% of the sides at (40%%, 36%%)\","
               "\"mask_share\":0.0784},");
    json_runs(f, r);
    json_health(f, r);
    json_tiers(f, r);
    fprintf(f, "\"drills\":[");
    for (int i = 0; i < r->ndrills; i++) {
        const rp_drill *d = &r->drills[i];
        fprintf(f, "%s{\"name\":", i ? "," : "");
        jstr(f, d->name);
        fprintf(f, ",\"expected\":");
        jstr(f, d->expected);
        fprintf(f, ",\"observed\":");
        jstr(f, d->observed);
        fprintf(f, ",\"status\":\"%s\",\"figures\":{", drill_status(d));
        for (int k = 0; k < d->nfig; k++)
            fprintf(f, "%s\"%s\":%.10g", k ? "," : "", d->fig_name[k], d->fig_val[k]);
        fprintf(f, "}}");
    }
    fprintf(f, "]}\n");
    int bad = ferror(f);
    if (fclose(f) || bad)
        return pm_errorf(PM_EIO, "cannot write %s", path);
    return 0;
}

/* ------------------------------------------------------------ tables (report.md, and inside report.html) */

static double mib(double b)
{
    return b < 0 ? -1 : b / 1048576.0;
}

/* One table cell: the value with `fmt`, or n/a for the unknown sentinel. */
static void md_val(FILE *f, const char *fmt, double v)
{
    fputc(' ', f);
    if (v < 0)
        fputs("n/a", f);
    else
        fprintf(f, fmt, v);
    fputs(" |", f);
}

static void md_cells(FILE *f, const rp_report *r)
{
    fprintf(f, "## Latency and memory per model and size\n\n"
               "| model | size | runs | end to end p50 / p95 / max (s) | outside client p50 (s) | ours / outside | "
               "engine p50 / p95 / max (s) | CPU s | job peak (MiB) | RSS above idle (MiB) | process peak (MiB) | "
               "admission predicted (MiB) | law now (MiB) | result write (ms) | GPU peak (MiB) | load 1 min | "
               "errors |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->ncells; i++) {
        const rp_cell *c = &r->cells[i];
        fprintf(f, "| %s | %dx%d | %d | %.3f / %.3f / %.3f |", c->model, c->w, c->h, c->runs, c->e2e_p50, c->e2e_p95,
                c->e2e_max);
        md_val(f, "%.3f", c->outside_p50);
        md_val(f, "%.3f", c->pair_ratio_p50);
        fprintf(f, " %.3f / %.3f / %.3f | %.2f |", c->eng_p50, c->eng_p95, c->eng_max, c->cpu_s);
        md_val(f, "%.1f", mib(c->job_peak));
        md_val(f, "%.1f", mib(c->rss_above_base));
        md_val(f, "%.1f", mib(c->process_peak));
        md_val(f, "%.1f", mib(c->predicted));
        md_val(f, "%.1f", mib(c->law_predicted));
        md_val(f, "%.2f", c->disk_write_ms);
        md_val(f, "%.1f", mib(c->gpu_peak));
        md_val(f, "%.2f", c->load1);
        fprintf(f, " %d |\n", c->errors);
    }
    fprintf(f, "\nThe outside client is %s: the same input files sent to `POST /api/v1/inpaint`, one job next to "
               "each of ours (alternately before and after), timed by the client itself; the ratio is the median "
               "of each pair's ratio (a pair ran back to back, under the same load). Load average (1, 5, 15 min) "
               "%.2f %.2f %.2f before the runs, %.2f %.2f %.2f after. "
               "Result writes (write, fsync, rename): p50 %.2f ms, p95 %.2f ms over the whole run. GPU: %s.\n\n",
            r->outside_client, r->load_start[0], r->load_start[1], r->load_start[2], r->load_end[0], r->load_end[1],
            r->load_end[2], r->disk_write_p50_ms, r->disk_write_p95_ms,
            r->ncells && r->cells[0].gpu_peak >= 0
                ? "the largest memory in use in the server's samples during each cell"
                : "n/a (the server sees no GPU)");
}

static void md_tier_cells(FILE *f, const int *w, const int *h)
{
    for (int k = 0; k <= RP_NTIERS; k++)
        if (w[k] > 0)
            fprintf(f, " %dx%d |", w[k], h[k]);
        else
            fprintf(f, " none |");
    fputc('\n', f);
}

static void md_tiers(FILE *f, const rp_report *r)
{
    fprintf(f, "## Memory tiers\n\nLargest 4:3 image per model with %.0f %% of the memory as the budget (serve's "
               "default share), from a law fitted to this run's measured job peaks, and from the law admission uses "
               "(the server's, `/api/v1/stats`):\n\n"
               "| model | law | 2 GiB | 4 GiB | 8 GiB | 16 GiB | 32 GiB | this box (%.1f GiB) |\n"
               "|---|---|---|---|---|---|---|---|\n",
            r->budget_share * 100, r->box_bytes / 1073741824.0);
    for (int i = 0; i < r->ntiers; i++) {
        const rp_tier_row *t = &r->tiers[i];
        if (t->fit_n >= 2) {
            fprintf(f, "| %s | fitted here: %.2f MiB + %.2f B/px (%d sizes, worst error %.1f %%%s) |", t->model,
                    t->fit_a / 1048576, t->fit_b, t->fit_n, t->fit_max_error * 100,
                    t->fit_max_error > 0.15 ? ", above 15 %: a line does not fit" : "");
            md_tier_cells(f, t->fw, t->fh);
        }
        if (t->rss_fit_n >= 2) {
            fprintf(f, "| %s | the process (RSS above idle) fitted here: %.2f MiB + %.2f B/px (worst error %.1f %%) |",
                    t->model, t->rss_fit_a / 1048576, t->rss_fit_b, t->rss_fit_max_error * 100);
            md_tier_cells(f, t->rw, t->rh);
        }
        if (t->b > 0) {
            fprintf(f, "| %s | admission: %.1f MiB + %.2f B/px (%s) |", t->model, t->a / 1048576, t->b, t->source);
            md_tier_cells(f, t->w, t->h);
        }
    }
    fprintf(f, "\nEach measured point against the fitted law and admission's:\n\n"
               "| model | size (pixels) | measured job peak (MiB) | fitted (MiB) | error | admission predicted (MiB) "
               "| admission / measured | RSS above idle (MiB) |\n|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->ntiers; i++) {
        const rp_tier_row *t = &r->tiers[i];
        for (int k = 0; k < t->fit_n; k++) {
            fprintf(f, "| %s | %.0f | %.2f | %.2f | %+.1f %% |", t->model, t->fit_px[k], mib(t->fit_peak[k]),
                    mib(t->fit_a + t->fit_b * t->fit_px[k]), t->fit_err[k] * 100);
            md_val(f, "%.2f", mib(t->fit_pred[k]));
            md_val(f, "%.2f", t->fit_pred[k] > 0 ? t->fit_pred[k] / t->fit_peak[k] : -1);
            md_val(f, "%.2f", mib(t->fit_rss[k]));
            fputc('\n', f);
        }
    }
    fprintf(f, "\nThe fit is a + b x pixels by least squares on the relative error (each size counts alike), "
               "with a held at 0 if it would be negative. The job peak is what the job allocated through pixmend's "
               "allocator (`resources.peak_bytes`), the quantity admission's law predicts; the server's RSS above "
               "idle is shown next to it.\n");
}

/* The tables as Markdown (report.md, and as text inside report.html). */
static void md_tables(FILE *f, const rp_report *r)
{
    md_cells(f, r);
    const rp_leak *L = &r->leak;
    fprintf(f, "## Leak check\n\n%d identical 320x240 jobs after %d warm-up jobs: RSS slope over the second half "
               "**%.0f bytes/job** (bound %.0f; over all %d jobs %.0f), %d errors: **%s**.\n\n",
            L->jobs, L->warmup, L->slope, L->threshold, L->jobs, L->slope_all, L->errors, L->pass ? "clean" : "LEAK");
    const rp_soak *S = &r->soak;
    fprintf(f, "## Soak\n\n%.0f s, %d jobs, %d errors; RSS %.1f -> %.1f MiB (drift %+.1f MiB); heap %.1f -> %.1f MiB; "
               "descriptors %.0f -> %.0f: **%s** (%s).\n\n",
            S->seconds, S->jobs, S->errors, mib(S->rss_first), mib(S->rss_last), S->drift_bytes / 1048576.0,
            mib(S->heap_first), mib(S->heap_last), S->fds_first, S->fds_last, S->pass ? "clean" : "FAILED", S->why);
    md_tiers(f, r);
    fprintf(f, "\n## Fault drills\n\n| drill | expected | observed | result |\n|---|---|---|---|\n");
    for (int i = 0; i < r->ndrills; i++) {
        const rp_drill *d = &r->drills[i];
        fprintf(f, "| %s | %s | %s | %s |\n", d->name, d->expected, d->observed, drill_status(d));
    }
}

static void md_header(FILE *f, const rp_report *r)
{
    pm_sysinfo si;
    pm_sysinfo_read(&si);
    fprintf(f, "# pixmend capacity report\n\npixmend %s, %s, %s server. **%s**.\n\n"
               "Machine: %s, %d logical / %d physical cores, AVX2 %s, AVX-512 %s, %.1f GiB memory%s, %d GPU(s).\n\n"
               "Options: sizes",
            PM_VERSION_STRING, r->started_at, r->url ? r->url : "own", r->pass ? "all checks passed" : "SOME CHECKS FAILED",
            si.cpu_model, si.logical_cores, si.physical_cores, si.has_avx2 ? "yes" : "no",
            si.has_avx512f ? "yes" : "no", si.mem_total / 1073741824.0, si.has_cgroup_limit ? " (cgroup-limited)" : "",
            si.gpu_count);
    for (int i = 0; i < r->nsizes; i++)
        fprintf(f, "%s%dx%d", i ? "," : " ", r->sizes[i][0], r->sizes[i][1]);
    fprintf(f, ", repeat %d, concurrency %d, soak %.0f s, faults %s. The input is a generated photograph-like "
               "JPEG with a 7.8 %% rectangular mask.\n\n",
            r->repeat, r->concurrency, r->soak_s, r->faults);
}

int rp_write_md(const rp_report *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return pm_errorf(PM_EIO, "cannot write %s", path);
    md_header(f, r);
    md_tables(f, r);
    int bad = ferror(f);
    if (fclose(f) || bad)
        return pm_errorf(PM_EIO, "cannot write %s", path);
    return 0;
}

/* ------------------------------------------------------------ report.html */

typedef struct plot_line {
    const char *name;
    int n;
    const double *x, *y;
} plot_line;

static const char *const colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};

/* A line plot with axes from 0 to the largest value; y scaled by yscale. */
static void svg_plot(FILE *f, const char *title, const char *xlabel, const char *ylabel, const plot_line *lines,
                     int nlines, double xscale, double yscale)
{
    const double W = 560, H = 300, L = 70, B = 40, T = 30, R = 20;
    double xmax = 0, ymax = 0;
    for (int k = 0; k < nlines; k++)
        for (int i = 0; i < lines[k].n; i++) {
            if (lines[k].x[i] * xscale > xmax)
                xmax = lines[k].x[i] * xscale;
            if (lines[k].y[i] * yscale > ymax)
                ymax = lines[k].y[i] * yscale;
        }
    if (xmax <= 0)
        xmax = 1;
    if (ymax <= 0)
        ymax = 1;
    ymax *= 1.1;
    fprintf(f, "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" role=\"img\">"
               "<title>%s</title><text x=\"%.0f\" y=\"18\" font-weight=\"bold\">%s</text>",
            W, H, title, L, title);
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#444\"/>", L, H - B, W - R, H - B);
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#444\"/>", L, T, L, H - B);
    for (int t = 0; t <= 4; t++) {
        double yv = ymax * t / 4, yp = H - B - (H - B - T) * t / 4;
        double xv = xmax * t / 4, xp = L + (W - L - R) * t / 4;
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>", L - 4, yp + 4, yv);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">%.3g</text>", xp, H - B + 14,
                xv);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\">%s</text>", (W + L) / 2, H - 6,
            xlabel);
    fprintf(f, "<text x=\"14\" y=\"%.0f\" font-size=\"12\" transform=\"rotate(-90 14 %.0f)\" "
               "text-anchor=\"middle\">%s</text>",
            (H - B + T) / 2, (H - B + T) / 2, ylabel);
    for (int k = 0; k < nlines; k++) {
        const char *col = colours[k % 4];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int i = 0; i < lines[k].n; i++)
            fprintf(f, "%.1f,%.1f ", L + (W - L - R) * lines[k].x[i] * xscale / xmax,
                    H - B - (H - B - T) * lines[k].y[i] * yscale / ymax);
        fprintf(f, "\"/>");
        for (int i = 0; i < lines[k].n && lines[k].n <= 32; i++)
            fprintf(f, "<circle r=\"3\" fill=\"%s\" cx=\"%.1f\" cy=\"%.1f\"/>", col,
                    L + (W - L - R) * lines[k].x[i] * xscale / xmax, H - B - (H - B - T) * lines[k].y[i] * yscale / ymax);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" fill=\"%s\">%s</text>", W - R - 150, T + 14.0 * (k + 1),
                col, lines[k].name);
    }
    fprintf(f, "</svg></figure>\n");
}

/* Per-model lines of (pixels, value) from the cells. */
static void cell_plot(FILE *f, const rp_report *r, const char *title, const char *ylabel, int what, double yscale)
{
    static double xs[RP_MAX_MODELS][RP_MAX_SIZES], ys[RP_MAX_MODELS][RP_MAX_SIZES];
    plot_line lines[RP_MAX_MODELS];
    for (int m = 0; m < r->nmodels; m++) {
        lines[m] = (plot_line){r->models[m], 0, xs[m], ys[m]};
        for (int i = 0; i < r->ncells; i++) {
            const rp_cell *c = &r->cells[i];
            if (strcmp(c->model, r->models[m]) != 0 || c->runs == 0)
                continue;
            xs[m][lines[m].n] = (double)c->w * c->h;
            ys[m][lines[m].n] = what == 0 ? c->e2e_p50 : what == 1 ? c->eng_p50 : c->job_peak;
            lines[m].n++;
        }
    }
    svg_plot(f, title, "megapixels", ylabel, lines, r->nmodels, 1e-6, yscale);
}

int rp_write_html(const rp_report *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return pm_errorf(PM_EIO, "cannot write %s", path);
    fprintf(f, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pixmend capacity report</title>"
               "<style>body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em}"
               "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
               "figure{display:inline-block;margin:0.5em}.pass{color:#2a2}.fail{color:#c22}pre{white-space:pre-wrap}"
               "</style></head><body>\n<h1>pixmend capacity report</h1>\n<p class=\"%s\"><b>%s</b></p>\n",
            r->pass ? "pass" : "fail", r->pass ? "All checks passed." : "Some checks failed.");
    cell_plot(f, r, "End-to-end latency p50", "seconds", 0, 1);
    cell_plot(f, r, "Engine latency p50", "seconds", 1, 1);
    cell_plot(f, r, "Job peak memory", "MiB", 2, 1.0 / 1048576);
    plot_line soak[2] = {{"RSS", r->soak.samples.n, r->soak.samples.t, r->soak.samples.v},
                         {"heap (pm_mem_in_use)", r->soak.samples.n, r->soak.samples.t, r->soak.samples.heap}};
    svg_plot(f, "Server RSS and heap over the soak", "seconds", "MiB", soak, 2, 1, 1.0 / 1048576);
    plot_line leak = {"RSS", r->leak.rss.n, r->leak.rss.t, r->leak.rss.v};
    svg_plot(f, "Server RSS over the leak check", "job", "MiB", &leak, 1, 1, 1.0 / 1048576);
    fprintf(f, "<h2>Fault drills</h2><table><tr><th>drill</th><th>expected</th><th>observed</th><th>result</th></tr>\n");
    for (int i = 0; i < r->ndrills; i++) {
        const rp_drill *d = &r->drills[i];
        fprintf(f, "<tr><td>%s</td><td>%s</td><td>%s</td><td class=\"%s\">%s</td></tr>\n", d->name, d->expected,
                d->observed, d->ran && d->pass ? "pass" : "fail", drill_status(d));
    }
    /* The Markdown tables, as text: exact figures without a second renderer. */
    fprintf(f, "</table>\n<h2>Tables</h2><pre>");
    md_header(f, r);
    md_tables(f, r);
    fprintf(f, "</pre></body></html>\n");
    int bad = ferror(f);
    if (fclose(f) || bad)
        return pm_errorf(PM_EIO, "cannot write %s", path);
    return 0;
}

void rp_print_summary(const rp_report *r, FILE *f)
{
    for (int i = 0; i < r->ncells; i++) {
        const rp_cell *c = &r->cells[i];
        fprintf(f, "%-10s %5dx%-5d end to end p50 %.3f s", c->model, c->w, c->h, c->e2e_p50);
        if (c->pair_ratio_p50 > 0)
            fprintf(f, ", outside client %.3f s (ratio %.2f)", c->outside_p50, c->pair_ratio_p50);
        fprintf(f, ", job peak %.1f MiB, admission predicted %.1f MiB\n", mib(c->job_peak), mib(c->predicted));
    }
    for (int i = 0; i < r->ntiers; i++) {
        const rp_tier_row *t = &r->tiers[i];
        if (t->fit_n >= 2)
            fprintf(f, "%-10s memory fitted here: %.2f MiB + %.2f B/px, worst error %.1f %% over %d sizes\n", t->model,
                    t->fit_a / 1048576, t->fit_b, t->fit_max_error * 100, t->fit_n);
    }
    fprintf(f, "load average %.2f before the runs, %.2f after\n", r->load_start[0], r->load_end[0]);
}
