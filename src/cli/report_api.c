/* pixmend report: every field the report reads from a server's answers, in
 * one place (the submission's id, a job's state and resources, /api/v1/stats
 * and /metrics). When the server's JSON changes, only this file follows it.
 * The answers may come from anyone's server (--url): nothing here trusts a
 * length or an index found in them. */
#include "cli/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rp_api_job_id(const char *body, char *id, size_t len)
{
    rp_json_str(body, "id", id, len);
}

int rp_api_job(const char *body, rp_job *j)
{
    if (!body)
        return PM_EIO;
    rp_json_str(body, "state", j->state, sizeof j->state);
    if (!j->state[0])
        return PM_EIO;
    j->started_at = rp_json_num(body, "started_at", -1);
    j->finished_at = rp_json_num(body, "finished_at", -1);
    const char *res = strstr(body, "\"resources\":");
    j->engine_s = rp_json_num(res, "wall_s", -1);
    j->cpu_s = rp_json_num(res, "cpu_s", -1);
    j->peak_bytes = rp_json_num(res, "peak_bytes", -1);
    j->predicted_bytes = rp_json_num(res, "predicted_bytes", -1);
    return 0;
}

int rp_api_job_final(const rp_job *j)
{
    return strcmp(j->state, "done") == 0 || strcmp(j->state, "failed") == 0 || strcmp(j->state, "cancelled") == 0;
}

/* The models[] entries: name and memory_law. */
static void parse_laws(const char *body, rp_srv_stats *st)
{
    const char *m = strstr(body, "\"models\":[");
    const char *end = m ? strstr(m, "],\"recent_jobs\"") : NULL;
    for (const char *p = m ? strstr(m, "{\"name\":") : NULL; p && st->nlaws < RP_MAX_LAWS;
         p = strstr(p + 1, "{\"name\":")) {
        if (end && p > end)
            break;
        rp_law *l = &st->laws[st->nlaws];
        rp_json_str(p, "name", l->name, sizeof l->name);
        const char *law = strstr(p, "\"memory_law\":");
        if (!l->name[0] || !law)
            continue;
        l->a = rp_json_num(law, "a_bytes", 0);
        l->b = rp_json_num(law, "b_bytes_per_pixel", 0);
        rp_json_str(law, "source", l->source, sizeof l->source);
        st->nlaws++;
    }
}

int rp_api_stats(const char *body, rp_srv_stats *st)
{
    memset(st, 0, sizeof *st);
    const char *jobs = body ? strstr(body, "\"jobs\":{") : NULL;
    const char *mem = body ? strstr(body, "\"memory\":{") : NULL;
    if (!jobs || !mem)
        return PM_EIO;
    st->submitted = rp_json_num(jobs, "submitted", -1);
    st->done = rp_json_num(jobs, "done", -1);
    st->recovered = rp_json_num(jobs, "recovered", -1);
    st->running = rp_json_num(body, "running", -1);
    st->rss = rp_json_num(mem, "rss_bytes", 0);
    st->heap_in_use = rp_json_num(mem, "pm_mem_in_use", -1);
    st->heap_peak = rp_json_num(mem, "pm_mem_peak", -1);
    st->budget = rp_json_num(mem, "budget_bytes", 0);
    st->host_total = rp_json_num(mem, "host_total_bytes", 0);
    st->cgroup_max = rp_json_num(mem, "cgroup_max_bytes", 0);
    const char *dw = strstr(body, "\"disk_write_ms\":");
    st->disk_p50_ms = rp_json_num(dw, "p50", -1);
    st->disk_p95_ms = rp_json_num(dw, "p95", -1);
    st->gpus = strstr(body, "\"gpus\":[{") != NULL;
    st->last_sample_t = -1;
    const char *s = strstr(body, "\"samples\":[");
    for (const char *p = s ? strstr(s, "{\"t\":") : NULL; p; p = strstr(p + 1, "{\"t\":"))
        st->last_sample_t = strtod(p + 5, NULL);
    parse_laws(body, st);
    return 0;
}

const rp_law *rp_api_law(const rp_srv_stats *st, const char *model)
{
    for (int i = 0; i < st->nlaws; i++)
        if (strcmp(st->laws[i].name, model) == 0)
            return &st->laws[i];
    return NULL;
}

double rp_api_gpu_peak_since(const char *body, double t0)
{
    if (!body || !strstr(body, "\"gpus\":[{"))
        return -1;
    const char *s = strstr(body, "\"samples\":[");
    double m = 0;
    for (const char *p = s ? strstr(s, "{\"t\":") : NULL; p; p = strstr(p + 1, "{\"t\":")) {
        const char *next = strstr(p + 1, "{\"t\":");
        const char *g = strstr(p, "\"gpu_mem_used_bytes\":");
        if (strtod(p + 5, NULL) <= t0 || !g || (next && g > next))
            continue;
        double v = strtod(g + 21, NULL);
        if (v > m)
            m = v;
    }
    return m;
}

double rp_api_metric(const char *text, const char *name, double dflt)
{
    if (!text)
        return dflt;
    size_t n = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
        /* A sample line: at the start of a line, the name, then a space. */
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            char *end;
            double v = strtod(p + n + 1, &end);
            return end == p + n + 1 ? dflt : v;
        }
    }
    return dflt;
}
