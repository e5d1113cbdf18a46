/* Job records and events as field lists: the hash pixmend:job:<id> and the
 * Pub/Sub messages carry the same fields, named, with enums by name. */
#include "fleet/fleet_internal.h"
#include "base/base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const format_names[] = {"unknown", "png", "jpeg", "webp"};
static const char *const event_names[] = {"queued", "started", "progress", "done", "failed", "cancelled"};

void pm_fleet_add(pm_fleet_fields *f, const char *k, const char *fmt, ...)
{
    if (f->n >= PM_FLEET_MAX_FIELDS || f->used >= sizeof f->buf)
        return;
    va_list ap;
    va_start(ap, fmt);
    size_t room = sizeof f->buf - f->used;
    int n = vsnprintf(f->buf + f->used, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < room ? (size_t)n : room - 1;
    f->k[f->n] = k;
    f->v[f->n] = f->buf + f->used;
    f->vlen[f->n] = len;
    f->n++;
    f->used += len + 1;
}

void pm_fleet_encode(const pm_job_info *j, pm_fleet_fields *f)
{
    f->n = 0;
    f->used = 0;
    const pm_job_spec *s = &j->spec;
    pm_fleet_add(f, "id", "%s", j->id);
    pm_fleet_add(f, "state", "%s", pm_job_state_name(j->state));
    pm_fleet_add(f, "task", "%s", pm_task_name(s->task));
    pm_fleet_add(f, "model", "%s", s->model);
    pm_fleet_add(f, "priority", "%d", s->priority);
    pm_fleet_add(f, "format", "%s", format_names[(unsigned)s->format < 4 ? s->format : 0]);
    pm_fleet_add(f, "quality", "%d", s->quality);
    pm_fleet_add(f, "hd_strategy", "%d", s->hd_strategy);
    pm_fleet_add(f, "mask_resize", "%d", s->mask_resize);
    pm_fleet_add(f, "input_size", "%d", s->input_size);
    pm_fleet_add(f, "owner", "%s", s->owner);
    pm_fleet_add(f, "mask_dilate", "%d", s->mask_dilate);
    pm_fleet_add(f, "strip_metadata", "%d", s->strip_metadata);
    pm_fleet_add(f, "strip_gps", "%d", s->strip_gps);
    pm_fleet_add(f, "jpeg_reencode", "%d", s->jpeg_reencode);
    pm_fleet_add(f, "sync", "%d", j->sync);
    pm_fleet_add(f, "has_mask", "%d", j->has_mask);
    pm_fleet_add(f, "width", "%d", j->width);
    pm_fleet_add(f, "height", "%d", j->height);
    pm_fleet_add(f, "created", "%.6f", j->created);
    pm_fleet_add(f, "started", "%.6f", j->started);
    pm_fleet_add(f, "finished", "%.6f", j->finished);
    pm_fleet_add(f, "error_code", "%d", j->error_code);
    pm_fleet_add(f, "error", "%s", j->error);
    pm_fleet_add(f, "attempts", "%d", j->attempts);
    pm_fleet_add(f, "lane", "%d", j->lane);
    pm_fleet_add(f, "predicted_bytes", "%llu", (unsigned long long)j->predicted_bytes);
    pm_fleet_add(f, "work_pixels", "%llu", (unsigned long long)j->work_pixels);
    pm_fleet_add(f, "progress_value", "%d", j->progress_value);
    pm_fleet_add(f, "progress_max", "%d", j->progress_max);
    pm_fleet_add(f, "result_bytes", "%llu", (unsigned long long)j->result_bytes);
    pm_fleet_add(f, "peak_bytes", "%llu", (unsigned long long)j->peak_bytes);
    pm_fleet_add(f, "cpu_seconds", "%.6f", j->cpu_seconds);
}

/* Copies a field's n bytes into b (size len) as a string: 0, or -1 when it
 * is empty or too long to be a number. */
static int field_text(const char *v, size_t n, char *b, size_t len)
{
    if (n == 0 || n >= len)
        return -1;
    memcpy(b, v, n);
    b[n] = '\0';
    errno = 0;
    return 0;
}

/* Field parsers: 0, or -1 when malformed. */
static int parse_ll(const char *v, size_t n, long long lo, long long hi, long long *out)
{
    char b[32], *end;
    if (field_text(v, n, b, sizeof b))
        return -1;
    long long x = strtoll(b, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int parse_u64(const char *v, size_t n, uint64_t *out)
{
    char b[32], *end;
    if (field_text(v, n, b, sizeof b) || b[0] == '-')
        return -1;
    unsigned long long x = strtoull(b, &end, 10);
    if (errno || *end)
        return -1;
    *out = x;
    return 0;
}

static int parse_time(const char *v, size_t n, double *out)
{
    char b[48], *end;
    if (field_text(v, n, b, sizeof b))
        return -1;
    double x = strtod(b, &end);
    if (errno || *end || !isfinite(x) || x < 0)
        return -1;
    *out = x;
    return 0;
}

static int name_index(const char *v, size_t n, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (strlen(names[i]) == n && memcmp(names[i], v, n) == 0)
            return i;
    return -1;
}

static int copy_str(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return memchr(dst, '\0', n) ? -1 : 0;
}

typedef enum { F_INT, F_U64, F_TIME, F_STR } ftype;

typedef struct fdef {
    const char *name;
    ftype type;
    size_t off, size;
    long long lo, hi;
} fdef;

#define INFO_OFF(f) offsetof(pm_job_info, f), sizeof(((pm_job_info *)0)->f)
static const fdef fdefs[] = {
    {"model", F_STR, INFO_OFF(spec.model), 0, 0},
    {"priority", F_INT, INFO_OFF(spec.priority), 0, PM_PRIORITY_MAX},
    {"quality", F_INT, INFO_OFF(spec.quality), 0, 100},
    {"hd_strategy", F_INT, INFO_OFF(spec.hd_strategy), 0, 16},
    {"mask_resize", F_INT, INFO_OFF(spec.mask_resize), 0, 1},
    {"input_size", F_INT, INFO_OFF(spec.input_size), 0, 1 << 16},
    {"owner", F_STR, INFO_OFF(spec.owner), 0, 0},
    {"mask_dilate", F_INT, INFO_OFF(spec.mask_dilate), -(1 << 16), 1 << 16},
    {"strip_metadata", F_INT, INFO_OFF(spec.strip_metadata), 0, 1},
    {"strip_gps", F_INT, INFO_OFF(spec.strip_gps), 0, 1},
    {"jpeg_reencode", F_INT, INFO_OFF(spec.jpeg_reencode), 0, 1},
    {"sync", F_INT, INFO_OFF(sync), 0, 1},
    {"has_mask", F_INT, INFO_OFF(has_mask), 0, 1},
    {"width", F_INT, INFO_OFF(width), 0, 1 << 24},
    {"height", F_INT, INFO_OFF(height), 0, 1 << 24},
    {"created", F_TIME, INFO_OFF(created), 0, 0},
    {"started", F_TIME, INFO_OFF(started), 0, 0},
    {"finished", F_TIME, INFO_OFF(finished), 0, 0},
    {"error_code", F_INT, INFO_OFF(error_code), -1000, 0},
    {"error", F_STR, INFO_OFF(error), 0, 0},
    {"attempts", F_INT, INFO_OFF(attempts), 0, 1 << 20},
    {"lane", F_INT, INFO_OFF(lane), 0, 1},
    {"predicted_bytes", F_U64, INFO_OFF(predicted_bytes), 0, 0},
    {"work_pixels", F_U64, INFO_OFF(work_pixels), 0, 0},
    {"progress_value", F_INT, INFO_OFF(progress_value), 0, 1 << 30},
    {"progress_max", F_INT, INFO_OFF(progress_max), 0, 1 << 30},
    {"result_bytes", F_U64, INFO_OFF(result_bytes), 0, 0},
    {"peak_bytes", F_U64, INFO_OFF(peak_bytes), 0, 0},
    {"cpu_seconds", F_TIME, INFO_OFF(cpu_seconds), 0, 0},
};

/* One pair into *out; -1 when its value is malformed. */
static int decode_one(const char *k, size_t kl, const char *v, size_t vl, pm_job_info *out, int *seen)
{
    char key[32];
    if (kl == 0 || kl >= sizeof key)
        return 0; /* not ours */
    memcpy(key, k, kl);
    key[kl] = '\0';
    char *base = (char *)out;
    if (strcmp(key, "id") == 0) {
        if (!pm_fleet_valid_id(v, vl))
            return -1;
        *seen |= 1;
        return copy_str(out->id, sizeof out->id, v, vl);
    }
    if (strcmp(key, "state") == 0) {
        int i = -1;
        for (int s = PM_JOB_QUEUED; s <= PM_JOB_REJECTED; s++)
            if (strlen(pm_job_state_name((pm_job_state)s)) == vl &&
                memcmp(pm_job_state_name((pm_job_state)s), v, vl) == 0)
                i = s;
        if (i < 0)
            return -1;
        out->state = (pm_job_state)i;
        *seen |= 2;
        return 0;
    }
    if (strcmp(key, "task") == 0) {
        char t[16];
        if (copy_str(t, sizeof t, v, vl) || pm_task_parse(t) < 0)
            return -1;
        out->spec.task = (enum pm_task)pm_task_parse(t);
        *seen |= 4;
        return 0;
    }
    if (strcmp(key, "format") == 0) {
        int i = name_index(v, vl, format_names, 4);
        if (i < 0)
            return -1;
        out->spec.format = (enum pm_format)i;
        return 0;
    }
    for (size_t i = 0; i < sizeof fdefs / sizeof fdefs[0]; i++) {
        const fdef *d = &fdefs[i];
        if (strcmp(d->name, key) != 0)
            continue;
        void *p = base + d->off;
        long long x;
        switch (d->type) {
        case F_INT:
            if (parse_ll(v, vl, d->lo, d->hi, &x))
                return -1;
            *(int *)p = (int)x;
            return 0;
        case F_U64:
            return parse_u64(v, vl, (uint64_t *)p);
        case F_TIME:
            return parse_time(v, vl, (double *)p);
        case F_STR:
            return copy_str((char *)p, d->size, v, vl);
        }
    }
    return 0;
}

int pm_fleet_decode(const char *const *k, const size_t *klen, const char *const *v, const size_t *vlen, int n,
                    pm_job_info *out)
{
    memset(out, 0, sizeof *out);
    out->queue_position = -1;
    int seen = 0;
    for (int i = 0; i < n; i++)
        if (decode_one(k[i], klen[i], v[i], vlen[i], out, &seen))
            return pm_errorf(PM_ECORRUPT, "malformed job record: field '%.*s' has the value '%.*s'",
                             (int)(klen[i] < 32 ? klen[i] : 32), k[i], (int)(vlen[i] < 64 ? vlen[i] : 64), v[i]);
    if (seen != 7)
        return pm_errorf(PM_ECORRUPT, "malformed job record: it lacks its %s",
                         !(seen & 1) ? "id" : !(seen & 2) ? "state" : "task");
    return 0;
}

int pm_fleet_decode_reply(const redisReply *r, pm_job_info *out)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return pm_errorf(PM_ECORRUPT, "malformed job record: not a list of fields");
    int n = (int)(r->elements / 2);
    if (n > 64)
        n = 64;
    const char *k[64], *v[64];
    size_t kl[64], vl[64];
    for (int i = 0; i < n; i++) {
        const redisReply *a = r->element[2 * i], *b = r->element[2 * i + 1];
        if (a->type != REDIS_REPLY_STRING || b->type != REDIS_REPLY_STRING)
            return pm_errorf(PM_ECORRUPT, "malformed job record: a field is not a string");
        k[i] = a->str;
        kl[i] = a->len;
        v[i] = b->str;
        vl[i] = b->len;
    }
    return pm_fleet_decode(k, kl, v, vl, n, out);
}

const redisReply *pm_fleet_reply_field(const redisReply *r, const char *key)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *a = r->element[i];
        if (a->type == REDIS_REPLY_STRING && a->len == kl && memcmp(a->str, key, kl) == 0)
            return r->element[i + 1];
    }
    return NULL;
}

char *pm_fleet_event_message(pm_job_event_type type, const pm_job_info *job, size_t *len)
{
    pm_fleet_fields *f = pm_malloc(sizeof *f);
    if (!f)
        return NULL;
    pm_fleet_encode(job, f);
    size_t cap = 32 + f->used + 32 * (size_t)f->n;
    char *m = pm_malloc(cap);
    if (!m) {
        pm_free(f);
        return NULL;
    }
    size_t o = (size_t)snprintf(m, cap, "event=%s\n", event_names[(unsigned)type < 6 ? type : 0]);
    for (int i = 0; i < f->n && o < cap; i++) {
        o += (size_t)snprintf(m + o, cap - o, "%s=", f->k[i]);
        for (size_t c = 0; c < f->vlen[i] && o + 2 < cap; c++)
            m[o++] = f->v[i][c] == '\n' ? ' ' : f->v[i][c]; /* one line per field */
        if (o + 1 < cap)
            m[o++] = '\n';
        m[o] = '\0';
    }
    *len = o < cap ? o : cap - 1;
    pm_free(f);
    return m;
}

int pm_fleet_event_parse(const char *msg, size_t len, pm_job_event_type *type, pm_job_info *job)
{
    const char *k[64], *v[64];
    size_t kl[64], vl[64];
    int n = 0, ev = -1;
    size_t i = 0;
    while (i < len && n < 64) {
        const char *line = msg + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - line) : len - i;
        i += ll + (nl ? 1 : 0);
        const char *eq = memchr(line, '=', ll);
        if (!eq)
            return pm_errorf(PM_ECORRUPT, "malformed event: a line without '='");
        size_t keyl = (size_t)(eq - line);
        if (keyl == 5 && memcmp(line, "event", 5) == 0) {
            ev = name_index(eq + 1, ll - keyl - 1, event_names, 6);
            continue;
        }
        k[n] = line;
        kl[n] = keyl;
        v[n] = eq + 1;
        vl[n] = ll - keyl - 1;
        n++;
    }
    if (ev < 0)
        return pm_errorf(PM_ECORRUPT, "malformed event: no known event name");
    *type = (pm_job_event_type)ev;
    return pm_fleet_decode(k, kl, v, vl, n, job);
}
