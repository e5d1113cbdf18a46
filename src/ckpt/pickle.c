/* A small pickle machine for the pickles torch.save and torch.jit.save
 * write (protocols 1-5; the text opcodes of protocol 0 too). It builds a
 * tree of pm_pv values: dicts, lists, tuples, scalars and strings as they
 * are; torch tensors and storages recognised from their rebuild functions
 * and persistent ids; every other class or function becomes an opaque
 * PV_OBJECT that swallows whatever REDUCE, NEWOBJ, SETITEMS or APPENDS give
 * it and keeps its first BUILD state (a TorchScript module's attributes).
 * Nothing is ever called. A pickle naming a global that no checkpoint needs
 * (pickle_globals.c) is refused.
 *
 * Safety: every read is checked against the pickle's length, stack pops
 * never cross a mark, memo indices are bounded by the pickle's length, and
 * the pool of values is capped in proportion to the pickle's size. */
#include "ckpt/ckpt_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_block {
    struct pool_block *next;
    size_t used, cap;
    max_align_t data[];
} pool_block;

struct pm_pickle {
    const uint8_t *buf;
    size_t len, pos, op_pos;
    const char *what, *part;  /* the file and the pickle in it, for messages */
    unsigned flags;           /* PM_PICKLE_* */
    const char *refused;      /* why a global it names is refused (static), or NULL */
    const pm_pv *refused_g;
    const pm_pv **storages;   /* every storage a persistent id named (pm_malloc) */
    pm_persid_fn persid;      /* resolves other persistent ids, or NULL */
    void *persid_user;
    size_t nstorages, storages_cap;
    pool_block *blocks;
    size_t pool_total, pool_limit;
    pm_pv **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    pm_pv **memo;
    size_t memo_cap, memo_count;
};

/* ------------------------------------------------------------- helpers */

static int damaged(pm_pickle *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int damaged(pm_pickle *p, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pm_errorf(PM_ECORRUPT, "%s: its pickle (%s) is damaged at byte %zu: %s; the file is corrupt",
                     p->what, p->part, p->op_pos, msg);
}

static int no_memory(pm_pickle *p)
{
    return pm_errorf(PM_ENOMEM, "%s: out of memory reading its pickle (%s, %zu bytes)", p->what, p->part, p->len);
}

/* Pool memory: 16-byte aligned, freed all at once with the pm_pickle. */
static void *pool_alloc(pm_pickle *p, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    pool_block *b = p->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (p->pool_total + cap > p->pool_limit)
            return NULL;
        b = pm_malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = p->blocks;
        b->used = 0;
        b->cap = cap;
        p->blocks = b;
        p->pool_total += cap;
    }
    void *r = (char *)b->data + b->used;
    b->used += n;
    return r;
}

static pm_pv *new_pv(pm_pickle *p, enum pm_pv_kind kind)
{
    pm_pv *v = pool_alloc(p, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->kind = kind;
    }
    return v;
}

static int push(pm_pickle *p, pm_pv *v)
{
    if (!v)
        return pm_errorf(PM_ENOMEM, "%s: its pickle (%s, %zu bytes) needs more memory than a pickle of its size may (limit %zu bytes); the file is corrupt or hostile",
                         p->what, p->part, p->len, p->pool_limit);
    if (p->sp == p->stack_cap) {
        size_t cap = p->stack_cap ? p->stack_cap * 2 : 256;
        pm_pv **s = pm_realloc(p->stack, cap * sizeof *s);
        if (!s)
            return no_memory(p);
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[p->sp++] = v;
    return 0;
}

static size_t floor_sp(const pm_pickle *p)
{
    return p->nmarks ? p->marks[p->nmarks - 1] : 0;
}

static int pop(pm_pickle *p, pm_pv **out)
{
    if (p->sp <= floor_sp(p))
        return damaged(p, "opcode 0x%02x needs a value but the stack is empty", p->buf[p->op_pos]);
    *out = p->stack[--p->sp];
    return 0;
}

static int top(pm_pickle *p, pm_pv **out)
{
    if (p->sp <= floor_sp(p))
        return damaged(p, "opcode 0x%02x needs a value but the stack is empty", p->buf[p->op_pos]);
    *out = p->stack[p->sp - 1];
    return 0;
}

/* Pops the topmost mark: the values above it are stack[*first, sp). */
static int pop_mark(pm_pickle *p, size_t *first)
{
    if (!p->nmarks)
        return damaged(p, "opcode 0x%02x needs a MARK but there is none", p->buf[p->op_pos]);
    *first = p->marks[--p->nmarks];
    return 0;
}

static int need(pm_pickle *p, size_t n)
{
    if (n > p->len - p->pos)
        return pm_errorf(PM_ETRUNCATED, "%s: its pickle (%s) ends inside an opcode at byte %zu; the file is truncated or corrupt",
                         p->what, p->part, p->op_pos);
    return 0;
}

static uint64_t rd_le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* Reads `n` little-endian length bytes at pos and returns the length. */
static int read_len(pm_pickle *p, int n, uint64_t *len)
{
    int rc = need(p, (size_t)n);
    if (rc)
        return rc;
    *len = rd_le(p->buf + p->pos, n);
    p->pos += (size_t)n;
    return 0;
}

/* Reads a '\n'-terminated line (protocol 0 argument); *s excludes the newline. */
static int read_line(pm_pickle *p, const char **s, size_t *n)
{
    const uint8_t *start = p->buf + p->pos;
    const uint8_t *nl = memchr(start, '\n', p->len - p->pos);
    if (!nl)
        return pm_errorf(PM_ETRUNCATED, "%s: its pickle (%s) ends inside a text argument at byte %zu; the file is truncated or corrupt",
                         p->what, p->part, p->op_pos);
    *s = (const char *)start;
    *n = (size_t)(nl - start);
    p->pos += *n + 1;
    return 0;
}

static pm_pv *new_str(pm_pickle *p, enum pm_pv_kind kind, const char *s, size_t n)
{
    pm_pv *v = new_pv(p, kind);
    if (v) {
        v->u.s.p = s;
        v->u.s.n = n;
    }
    return v;
}

static pm_pv *new_int(pm_pickle *p, int64_t i)
{
    pm_pv *v = new_pv(p, PV_INT);
    if (v)
        v->u.i = i;
    return v;
}

static pm_pv *new_object(pm_pickle *p, const pm_pv *cls, const char *why)
{
    pm_pv *v = new_pv(p, PV_OBJECT);
    if (v) {
        v->u.obj.cls = cls && cls->kind == PV_GLOBAL ? cls : NULL;
        v->u.obj.why = why;
    }
    return v;
}

/* A sequence (tuple/list/set) or dict holding copies of items[0, n). */
static pm_pv *new_seq(pm_pickle *p, enum pm_pv_kind kind, pm_pv *const *items, size_t n)
{
    pm_pv *v = new_pv(p, kind);
    if (!v)
        return NULL;
    if (n) {
        v->u.seq.v = pool_alloc(p, n * sizeof(pm_pv *));
        if (!v->u.seq.v)
            return NULL;
        memcpy(v->u.seq.v, items, n * sizeof(pm_pv *));
    }
    v->u.seq.n = v->u.seq.cap = n;
    return v;
}

static int seq_append(pm_pickle *p, pm_pv *seq, pm_pv *item)
{
    if (seq->u.seq.n == seq->u.seq.cap) {
        size_t cap = seq->u.seq.cap ? seq->u.seq.cap * 2 : 8;
        pm_pv **v = pool_alloc(p, cap * sizeof *v);
        if (!v)
            return push(p, NULL); /* reports the pool limit */
        if (seq->u.seq.n)
            memcpy(v, seq->u.seq.v, seq->u.seq.n * sizeof *v);
        seq->u.seq.v = v;
        seq->u.seq.cap = cap;
    }
    seq->u.seq.v[seq->u.seq.n++] = item;
    return 0;
}

static int dict_set(pm_pickle *p, pm_pv *d, pm_pv *k, pm_pv *v)
{
    if (d->u.dict.n == d->u.dict.cap) {
        size_t cap = d->u.dict.cap ? d->u.dict.cap * 2 : 8;
        pm_pv **nk = pool_alloc(p, cap * sizeof *nk), **nv = pool_alloc(p, cap * sizeof *nv);
        if (!nk || !nv)
            return push(p, NULL);
        if (d->u.dict.n) {
            memcpy(nk, d->u.dict.k, d->u.dict.n * sizeof *nk);
            memcpy(nv, d->u.dict.v, d->u.dict.n * sizeof *nv);
        }
        d->u.dict.k = nk;
        d->u.dict.v = nv;
        d->u.dict.cap = cap;
    }
    d->u.dict.k[d->u.dict.n] = k;
    d->u.dict.v[d->u.dict.n] = v;
    d->u.dict.n++;
    return 0;
}

static int str_is(const pm_pv *v, const char *s)
{
    size_t n = strlen(s);
    return v && v->kind == PV_STR && v->u.s.n == n && memcmp(v->u.s.p, s, n) == 0;
}

static int eq(const char *a, size_t an, const char *b)
{
    return strlen(b) == an && memcmp(a, b, an) == 0;
}

static pm_pv *new_global(pm_pickle *p, const char *m, size_t mn, const char *n, size_t nn)
{
    pm_pv *g = new_pv(p, PV_GLOBAL);
    if (g) {
        g->u.glob.mod = m;
        g->u.glob.mod_n = mn;
        g->u.glob.name = n;
        g->u.glob.name_n = nn;
        pm_pickle_classify(g);
        const char *why = pm_pickle_refused(g, (p->flags & PM_PICKLE_STRICT) != 0);
        if (why && !p->refused) {
            p->refused = why;
            p->refused_g = g;
        }
    }
    return g;
}

/* ------------------------------------------------------ torch objects */

static int int_items(const pm_pv *t, int64_t *out)
{
    for (size_t i = 0; i < t->u.seq.n; i++) {
        const pm_pv *v = t->u.seq.v[i];
        if (v->kind != PV_INT && v->kind != PV_BOOL)
            return -1;
        out[i] = v->u.i;
    }
    return 0;
}

/* _rebuild_tensor(storage, offset, size, stride), _v2(... requires_grad,
 * hooks[, metadata]), _v3(... hooks, dtype, metadata). */
static int make_tensor(pm_pickle *p, enum pm_pv_fn fn, const pm_pv *args, pm_pv **out)
{
    if (args->kind != PV_TUPLE || args->u.seq.n < 4 || (fn == FN_REBUILD_TENSOR_V3 && args->u.seq.n < 7))
        return damaged(p, "a torch tensor is rebuilt with %zu arguments", args->kind == PV_TUPLE ? args->u.seq.n : 0);
    pm_pv *const *a = args->u.seq.v;
    if (a[0]->kind != PV_STORAGE) {
        *out = new_object(p, NULL, "its storage is not a plain torch storage");
        return 0;
    }
    if (a[1]->kind != PV_INT || a[1]->u.i < 0 || a[2]->kind != PV_TUPLE || a[3]->kind != PV_TUPLE ||
        a[2]->u.seq.n != a[3]->u.seq.n)
        return damaged(p, "a torch tensor has a malformed offset, size or stride");
    int dtype = a[0]->u.storage.dtype;
    if (fn == FN_REBUILD_TENSOR_V3) {
        const pm_pv *d = a[6];
        dtype = d->kind == PV_GLOBAL && d->u.glob.fn == FN_TORCH_DTYPE ? d->u.glob.dtype : -1;
    }
    if (dtype < 0) {
        *out = new_object(p, a[0]->u.storage.type, "its dtype is not one pixmend reads");
        return 0;
    }
    if (a[2]->u.seq.n > PM_MAX_DIMS) {
        *out = new_object(p, NULL, "it has more than 8 dimensions");
        return 0;
    }
    pm_pv_tensor *t = pool_alloc(p, sizeof *t);
    pm_pv *v = new_pv(p, PV_TENSOR);
    if (!t || !v)
        return push(p, NULL);
    memset(t, 0, sizeof *t);
    t->storage = a[0];
    t->offset = a[1]->u.i;
    t->ndim = (int)a[2]->u.seq.n;
    t->dtype = (enum pm_dtype)dtype;
    if (int_items(a[2], t->shape) || int_items(a[3], t->stride))
        return damaged(p, "a torch tensor's size or stride holds a non-integer");
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0 || t->stride[d] < 0)
            return damaged(p, "a torch tensor has a negative size or stride");
    v->u.t = t;
    *out = v;
    return 0;
}

/* callable(*args) for REDUCE. depth bounds _rebuild_from_type_v2 nesting. */
static int apply(pm_pickle *p, const pm_pv *fn, const pm_pv *args, int depth, pm_pv **out)
{
    if (fn->kind != PV_GLOBAL || args->kind != PV_TUPLE) {
        *out = new_object(p, NULL, NULL);
        return 0;
    }
    pm_pv *const *a = args->u.seq.v;
    size_t n = args->u.seq.n;
    switch (fn->u.glob.fn) {
    case FN_ORDERED_DICT: {
        pm_pv *d = new_pv(p, PV_DICT);
        if (!d)
            return push(p, NULL);
        /* OrderedDict([(k, v), ...]): rare in pickles, but cheap to honour */
        if (n == 1 && (a[0]->kind == PV_LIST || a[0]->kind == PV_TUPLE)) {
            for (size_t i = 0; i < a[0]->u.seq.n; i++) {
                const pm_pv *kv = a[0]->u.seq.v[i];
                if ((kv->kind == PV_TUPLE || kv->kind == PV_LIST) && kv->u.seq.n == 2) {
                    int rc = dict_set(p, d, kv->u.seq.v[0], kv->u.seq.v[1]);
                    if (rc)
                        return rc;
                }
            }
        }
        *out = d;
        return 0;
    }
    case FN_REBUILD_TENSOR:
    case FN_REBUILD_TENSOR_V2:
    case FN_REBUILD_TENSOR_V3:
        return make_tensor(p, fn->u.glob.fn, args, out);
    case FN_REBUILD_PARAMETER:
        /* (data, requires_grad, hooks[, state]): the parameter is its data */
        if (n >= 1 && (a[0]->kind == PV_TENSOR || (a[0]->kind == PV_OBJECT && a[0]->u.obj.why)))
            *out = a[0];
        else
            *out = new_object(p, fn, NULL);
        return 0;
    case FN_REBUILD_FROM_TYPE:
        /* (func, new_type, args, state): a Tensor subclass or a tensor with
         * Python attributes; the data is func(*args). */
        if (n >= 3 && depth < 4)
            return apply(p, a[0], a[2], depth + 1, out);
        *out = new_object(p, fn, NULL);
        return 0;
    default:
        *out = new_object(p, fn, NULL);
        return 0;
    }
}

/* persistent_load: ('storage', storage_type, key, location, numel[,
 * view_metadata]); legacy files add view_metadata (view_key, offset, size). */
static pm_pv *persistent_load(pm_pickle *p, const pm_pv *pid)
{
    if (pid->kind != PV_TUPLE || pid->u.seq.n < 3 || !str_is(pid->u.seq.v[0], "storage") ||
        pid->u.seq.v[2]->kind != PV_STR) {
        pm_pv *v = p->persid ? p->persid(p->persid_user, pid) : NULL;
        return v ? v : new_object(p, NULL, NULL);
    }
    const pm_pv *type = pid->u.seq.v[1];
    pm_pv *s = new_pv(p, PV_STORAGE);
    if (!s)
        return NULL;
    int typed = type->kind == PV_GLOBAL && type->u.glob.fn == FN_STORAGE_TYPE;
    s->u.storage.dtype = typed ? type->u.glob.dtype : -1;
    s->u.storage.elsize = typed ? type->u.glob.size : 0;
    s->u.storage.type = type->kind == PV_GLOBAL ? type : NULL;
    s->u.storage.key = pid->u.seq.v[2]->u.s.p;
    s->u.storage.key_n = pid->u.seq.v[2]->u.s.n;
    s->u.storage.numel = pid->u.seq.n >= 5 && pid->u.seq.v[4]->kind == PV_INT ? pid->u.seq.v[4]->u.i : -1;
    if (pid->u.seq.n >= 6 && pid->u.seq.v[5]->kind == PV_TUPLE && pid->u.seq.v[5]->u.seq.n == 3 &&
        pid->u.seq.v[5]->u.seq.v[1]->kind == PV_INT && pid->u.seq.v[5]->u.seq.v[1]->u.i >= 0)
        s->u.storage.view_off = pid->u.seq.v[5]->u.seq.v[1]->u.i;
    if (p->nstorages == p->storages_cap) {
        size_t cap = p->storages_cap ? p->storages_cap * 2 : 64;
        const pm_pv **a = pm_realloc(p->storages, cap * sizeof *a);
        if (!a)
            return NULL;
        p->storages = a;
        p->storages_cap = cap;
    }
    p->storages[p->nstorages++] = s;
    return s;
}

/* --------------------------------------------------------------- memo */

static int memo_put(pm_pickle *p, uint64_t idx)
{
    pm_pv *v = NULL;
    int rc = top(p, &v);
    if (rc)
        return rc;
    /* A pickler numbers memo entries from 0, one per PUT (at least 2 bytes),
     * so an index beyond the pickle's length is damage. */
    if (idx > p->len)
        return damaged(p, "memo index %llu is out of range", (unsigned long long)idx);
    if (idx >= p->memo_cap) {
        size_t cap = p->memo_cap ? p->memo_cap : 256;
        while (cap <= idx)
            cap *= 2;
        pm_pv **m = pm_realloc(p->memo, cap * sizeof *m);
        if (!m)
            return no_memory(p);
        memset(m + p->memo_cap, 0, (cap - p->memo_cap) * sizeof *m);
        p->memo = m;
        p->memo_cap = cap;
    }
    if (!p->memo[idx])
        p->memo_count++;
    p->memo[idx] = v;
    return 0;
}

static int memo_get(pm_pickle *p, uint64_t idx)
{
    if (idx >= p->memo_cap || !p->memo[idx])
        return damaged(p, "memo entry %llu is read before it is written", (unsigned long long)idx);
    return push(p, p->memo[idx]);
}

/* Parses a decimal line (INT, LONG, GET, PUT). Returns 0, or -1 when it is
 * not an integer that fits in int64. */
static int parse_int_line(const char *s, size_t n, int64_t *out)
{
    char tmp[32];
    while (n && (s[n - 1] == 'L' || s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ the loop */

static int collection_from_mark(pm_pickle *p, enum pm_pv_kind kind)
{
    size_t first = 0;
    int rc = pop_mark(p, &first);
    if (rc)
        return rc;
    size_t n = p->sp - first;
    pm_pv *v = NULL;
    if (kind == PV_DICT) {
        if (n % 2)
            return damaged(p, "DICT has an odd number of items");
        v = new_pv(p, PV_DICT);
        for (size_t i = 0; v && i < n; i += 2)
            if ((rc = dict_set(p, v, p->stack[first + i], p->stack[first + i + 1])))
                return rc;
    } else {
        v = new_seq(p, kind, n ? p->stack + first : NULL, n); /* the stack may not exist yet */
    }
    p->sp = first;
    return push(p, v);
}

static int tuple_of_top(pm_pickle *p, size_t n)
{
    if (p->sp - floor_sp(p) < n)
        return damaged(p, "TUPLE%zu needs %zu values", n, n);
    pm_pv *v = new_seq(p, PV_TUPLE, n ? p->stack + p->sp - n : NULL, n);
    p->sp -= n;
    return push(p, v);
}

/* APPENDS / SETITEMS / ADDITEMS: items above the mark go into the object just below it. */
static int add_from_mark(pm_pickle *p, int pairs)
{
    size_t first = 0;
    int rc = pop_mark(p, &first);
    if (rc)
        return rc;
    if (first <= floor_sp(p))
        return damaged(p, "opcode 0x%02x has no object to add to", p->buf[p->op_pos]);
    pm_pv *target = p->stack[first - 1];
    size_t n = p->sp - first;
    if (pairs && n % 2)
        return damaged(p, "SETITEMS has an odd number of items");
    if (pairs && target->kind == PV_DICT) {
        for (size_t i = 0; i < n; i += 2)
            if ((rc = dict_set(p, target, p->stack[first + i], p->stack[first + i + 1])))
                return rc;
    } else if (!pairs && target->kind == PV_LIST) {
        for (size_t i = 0; i < n; i++)
            if ((rc = seq_append(p, target, p->stack[first + i])))
                return rc;
    }
    /* anything else (opaque dict/list subclasses, sets) swallows the items */
    p->sp = first;
    return 0;
}

/* A pickle that names a refused global: nothing was called (the machine
 * never calls), but the file is hostile or no model checkpoint. */
static int refuse(pm_pickle *p)
{
    const pm_pv *g = p->refused_g;
    int mn = (int)(g->u.glob.mod_n > 80 ? 80 : g->u.glob.mod_n), nn = (int)(g->u.glob.name_n > 80 ? 80 : g->u.glob.name_n);
    return pm_errorf(PM_ECORRUPT, "%s: its pickle (%s) names %.*s.%.*s at byte %zu, which pixmend refuses: %s; nothing in the file was run, and it is not loaded",
                     p->what, p->part, mn, g->u.glob.mod, nn, g->u.glob.name, p->op_pos, p->refused);
}

/* The opcodes come in groups, one function each; a group function returns
 * NOT_MINE for an opcode of another group, else 0 or an error. */
#define NOT_MINE 1

/* PROTO, FRAME, MARK and the stack's own opcodes (POP, POP_MARK, DUP). */
static int op_stack(pm_pickle *p, uint8_t op)
{
    int rc = 0;
    uint64_t n = 0;
    size_t first = 0;
    pm_pv *a = NULL;
    switch (op) {
    case 0x80: /* PROTO */
        if ((rc = need(p, 1)))
            return rc;
        if (p->buf[p->pos] > 5)
            return pm_errorf(PM_EUNSUPPORTED, "%s: its pickle uses protocol %u; pixmend reads protocols up to 5",
                             p->what, p->buf[p->pos]);
        p->pos++;
        return 0;
    case 0x95: /* FRAME: a length hint only */
        return read_len(p, 8, &n);
    case '(': /* MARK */
        if (p->nmarks == p->marks_cap) {
            size_t cap = p->marks_cap ? p->marks_cap * 2 : 64;
            size_t *m = pm_realloc(p->marks, cap * sizeof *m);
            if (!m)
                return no_memory(p);
            p->marks = m;
            p->marks_cap = cap;
        }
        p->marks[p->nmarks++] = p->sp;
        return 0;
    case '0': /* POP: a value, or the mark when none is above it */
        if (p->sp > floor_sp(p)) {
            p->sp--;
            return 0;
        }
        return pop_mark(p, &first);
    case '1': /* POP_MARK */
        if ((rc = pop_mark(p, &first)))
            return rc;
        p->sp = first;
        return 0;
    case '2': /* DUP */
        if ((rc = top(p, &a)))
            return rc;
        return push(p, a);
    case 0x98: /* READONLY_BUFFER */
        return top(p, &a);
    default:
        return NOT_MINE;
    }
}

/* LONG1, LONG4: little-endian two's complement; wider than 8 bytes = PV_BIGINT. */
static int op_long(pm_pickle *p, uint8_t op)
{
    uint64_t n = 0;
    int rc;
    if ((rc = read_len(p, op == 0x8a ? 1 : 4, &n)))
        return rc;
    if (op == 0x8b && n > INT32_MAX)
        return damaged(p, "LONG4 has a negative length");
    if ((rc = need(p, n)))
        return rc;
    if (n > 8) {
        rc = push(p, new_pv(p, PV_BIGINT));
    } else {
        uint64_t u = n ? rd_le(p->buf + p->pos, (int)n) : 0;
        if (n && n < 8 && (p->buf[p->pos + n - 1] & 0x80))
            u |= ~(uint64_t)0 << (8 * n);
        rc = push(p, new_int(p, (int64_t)u));
    }
    p->pos += (size_t)n;
    return rc;
}

/* The binary scalars: strings and bytes, integers, floats, None, booleans. */
static int op_binary_value(pm_pickle *p, uint8_t op)
{
    int rc;
    uint64_t n = 0;
    switch (op) {
    case 'X': case 0x8c: case 0x8d: /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 */
    case 'T': case 'U':             /* BINSTRING, SHORT_BINSTRING */
    case 'B': case 'C': case 0x8e: case 0x96: { /* BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8 */
        int w = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e || op == 0x96) ? 8 : 4;
        if ((rc = read_len(p, w, &n)))
            return rc;
        if (op == 'T' && n > INT32_MAX)
            return damaged(p, "BINSTRING has a negative length");
        if ((rc = need(p, n)))
            return rc;
        enum pm_pv_kind k = (op == 'B' || op == 'C' || op == 0x8e || op == 0x96) ? PV_BYTES : PV_STR;
        rc = push(p, new_str(p, k, (const char *)p->buf + p->pos, (size_t)n));
        p->pos += (size_t)n;
        return rc;
    }
    case 'J': /* BININT */
        if ((rc = read_len(p, 4, &n)))
            return rc;
        return push(p, new_int(p, (int32_t)(uint32_t)n));
    case 'K': /* BININT1 */
    case 'M': /* BININT2 */
        if ((rc = read_len(p, op == 'K' ? 1 : 2, &n)))
            return rc;
        return push(p, new_int(p, (int64_t)n));
    case 0x8a: case 0x8b: /* LONG1, LONG4 */
        return op_long(p, op);
    case 'G': { /* BINFLOAT: big-endian double */
        if ((rc = need(p, 8)))
            return rc;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | p->buf[p->pos + i];
        p->pos += 8;
        pm_pv *v = new_pv(p, PV_FLOAT);
        if (v)
            memcpy(&v->u.f, &u, 8);
        return push(p, v);
    }
    case 'N': return push(p, new_pv(p, PV_NONE));
    case 0x88: case 0x89: { /* NEWTRUE, NEWFALSE */
        pm_pv *v = new_pv(p, PV_BOOL);
        if (v)
            v->u.i = op == 0x88;
        return push(p, v);
    }
    default:
        return NOT_MINE;
    }
}

/* The text scalars of protocol 0: INT, LONG, FLOAT, STRING, UNICODE. */
static int op_text_value(pm_pickle *p, uint8_t op)
{
    const char *s1 = NULL;
    size_t n1 = 0;
    int64_t iv = 0;
    int rc;
    if (op != 'I' && op != 'L' && op != 'F' && op != 'S' && op != 'V')
        return NOT_MINE;
    if ((rc = read_line(p, &s1, &n1)))
        return rc;
    switch (op) {
    case 'I': case 'L': /* INT, LONG (text) */
        if (op == 'I' && (eq(s1, n1, "00") || eq(s1, n1, "01"))) {
            pm_pv *v = new_pv(p, PV_BOOL);
            if (v)
                v->u.i = s1[1] == '1';
            return push(p, v);
        }
        if (parse_int_line(s1, n1, &iv) == 0)
            return push(p, new_int(p, iv));
        return push(p, new_pv(p, PV_BIGINT));
    case 'F': { /* FLOAT (text) */
        char tmp[64];
        size_t k = n1 < sizeof tmp - 1 ? n1 : sizeof tmp - 1;
        memcpy(tmp, s1, k);
        tmp[k] = '\0';
        pm_pv *v = new_pv(p, PV_FLOAT);
        if (v)
            v->u.f = strtod(tmp, NULL);
        return push(p, v);
    }
    default: /* STRING (quoted repr), UNICODE (raw-unicode-escape) */
        if (op == 'S' && n1 >= 2 && (s1[0] == '\'' || s1[0] == '"') && s1[n1 - 1] == s1[0]) {
            s1++;
            n1 -= 2;
        }
        return push(p, new_str(p, PV_STR, s1, n1));
    }
}

/* Building collections: empty ones, from the mark, from the top items, and
 * adding to them (APPEND(S), SETITEM(S), ADDITEMS). */
static int op_collection(pm_pickle *p, uint8_t op)
{
    int rc;
    pm_pv *a = NULL, *b = NULL, *c = NULL;
    switch (op) {
    case '}': return push(p, new_pv(p, PV_DICT));
    case ']': return push(p, new_pv(p, PV_LIST));
    case ')': return push(p, new_pv(p, PV_TUPLE));
    case 0x8f: return push(p, new_pv(p, PV_SET)); /* EMPTY_SET */
    case 't': return collection_from_mark(p, PV_TUPLE);
    case 'l': return collection_from_mark(p, PV_LIST);
    case 'd': return collection_from_mark(p, PV_DICT);
    case 0x91: return collection_from_mark(p, PV_SET); /* FROZENSET */
    case 0x85: return tuple_of_top(p, 1);
    case 0x86: return tuple_of_top(p, 2);
    case 0x87: return tuple_of_top(p, 3);
    case 'a': /* APPEND */
        if ((rc = pop(p, &a)) || (rc = top(p, &b)))
            return rc;
        return b->kind == PV_LIST ? seq_append(p, b, a) : 0;
    case 'e': return add_from_mark(p, 0);  /* APPENDS */
    case 0x90: return add_from_mark(p, 0); /* ADDITEMS (sets: items dropped) */
    case 's': /* SETITEM */
        if ((rc = pop(p, &a)) || (rc = pop(p, &b)) || (rc = top(p, &c)))
            return rc;
        return c->kind == PV_DICT ? dict_set(p, c, b, a) : 0;
    case 'u': return add_from_mark(p, 1); /* SETITEMS */
    default:
        return NOT_MINE;
    }
}

/* The memo: BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET, GET, PUT. */
static int op_memo(pm_pickle *p, uint8_t op)
{
    int rc;
    uint64_t n = 0;
    const char *s1 = NULL;
    size_t n1 = 0;
    int64_t iv = 0;
    switch (op) {
    case 'q': case 'h': /* BINPUT, BINGET */
    case 'r': case 'j': /* LONG_BINPUT, LONG_BINGET */
        if ((rc = read_len(p, op == 'q' || op == 'h' ? 1 : 4, &n)))
            return rc;
        return op == 'q' || op == 'r' ? memo_put(p, n) : memo_get(p, n);
    case 0x94: return memo_put(p, p->memo_count); /* MEMOIZE */
    case 'g': case 'p': /* GET, PUT (text) */
        if ((rc = read_line(p, &s1, &n1)))
            return rc;
        if (parse_int_line(s1, n1, &iv) || iv < 0)
            return damaged(p, "a memo index is not a number");
        return op == 'g' ? memo_get(p, (uint64_t)iv) : memo_put(p, (uint64_t)iv);
    default:
        return NOT_MINE;
    }
}

/* Globals and objects: GLOBAL, STACK_GLOBAL, REDUCE, NEWOBJ(_EX), BUILD,
 * INST, OBJ, the persistent ids and the extension codes. Nothing is called:
 * apply() knows the few functions a checkpoint needs, the rest are objects. */
static int op_object(pm_pickle *p, uint8_t op)
{
    int rc;
    uint64_t n = 0;
    pm_pv *a = NULL, *b = NULL, *c = NULL;
    const char *s1 = NULL, *s2 = NULL;
    size_t n1 = 0, n2 = 0, first = 0;
    switch (op) {
    case 'c': /* GLOBAL module\nname\n */
        if ((rc = read_line(p, &s1, &n1)) || (rc = read_line(p, &s2, &n2)))
            return rc;
        return push(p, new_global(p, s1, n1, s2, n2));
    case 0x93: /* STACK_GLOBAL */
        if ((rc = pop(p, &a)) || (rc = pop(p, &b)))
            return rc;
        if (a->kind != PV_STR || b->kind != PV_STR)
            return damaged(p, "STACK_GLOBAL needs two strings");
        return push(p, new_global(p, b->u.s.p, b->u.s.n, a->u.s.p, a->u.s.n));
    case 'R': /* REDUCE */
        if ((rc = pop(p, &a)) || (rc = pop(p, &b)))
            return rc;
        if ((rc = apply(p, b, a, 0, &c)))
            return rc;
        return push(p, c);
    case 0x81: /* NEWOBJ: cls.__new__(cls, *args) */
    case 0x92: /* NEWOBJ_EX: cls, args, kwargs */
        if ((rc = pop(p, &a)) || (op == 0x92 && (rc = pop(p, &a))) || (rc = pop(p, &b)))
            return rc;
        if (b->kind == PV_GLOBAL && b->u.glob.fn == FN_ORDERED_DICT)
            return push(p, new_pv(p, PV_DICT));
        return push(p, new_object(p, b, NULL));
    case 'b': /* BUILD: obj.__setstate__(state); an object keeps its first state */
        if ((rc = pop(p, &a)) || (rc = top(p, &b)))
            return rc;
        if (b->kind == PV_OBJECT && !b->u.obj.state)
            b->u.obj.state = a;
        return 0;
    case 'Q': /* BINPERSID */
        if ((rc = pop(p, &a)))
            return rc;
        return push(p, persistent_load(p, a));
    case 'P': /* PERSID (text): not what torch writes */
        if ((rc = read_line(p, &s1, &n1)))
            return rc;
        return push(p, new_object(p, NULL, NULL));
    case 'i': /* INST module\nname\n, args from mark */
        if ((rc = read_line(p, &s1, &n1)) || (rc = read_line(p, &s2, &n2)) || (rc = pop_mark(p, &first)))
            return rc;
        p->sp = first;
        a = new_global(p, s1, n1, s2, n2);
        return push(p, a ? new_object(p, a, NULL) : NULL);
    case 'o': /* OBJ: cls and args from mark */
        if ((rc = pop_mark(p, &first)))
            return rc;
        if (first == p->sp)
            return damaged(p, "OBJ has no class");
        a = p->stack[first];
        p->sp = first;
        return push(p, new_object(p, a, NULL));
    case 0x82: case 0x83: case 0x84: /* EXT1/2/4: extension registry codes */
        if ((rc = read_len(p, op == 0x82 ? 1 : op == 0x83 ? 2 : 4, &n)))
            return rc;
        return push(p, new_object(p, NULL, NULL));
    default:
        return NOT_MINE;
    }
}

/* The interpreter loop: one opcode per iteration until STOP. */
static int run(pm_pickle *p, pm_pv **root)
{
    static int (*const groups[])(pm_pickle *, uint8_t) = {op_binary_value, op_collection, op_memo,
                                                          op_object,       op_stack,      op_text_value};
    for (;;) {
        if (p->pos >= p->len)
            return pm_errorf(PM_ETRUNCATED, "%s: its pickle (%s) ends at byte %zu without a STOP; the file is truncated or corrupt",
                             p->what, p->part, p->len);
        p->op_pos = p->pos;
        uint8_t op = p->buf[p->pos++];
        if (op == '.') { /* STOP */
            int rc = pop(p, root);
            if (rc)
                return rc;
            return p->refused ? refuse(p) : 0;
        }
        int rc = NOT_MINE;
        for (size_t i = 0; rc == NOT_MINE && i < sizeof groups / sizeof groups[0]; i++)
            rc = groups[i](p, op);
        if (rc == NOT_MINE && op == 0x97) /* NEXT_BUFFER */
            return pm_errorf(PM_EUNSUPPORTED, "%s: its pickle refers to out-of-band buffers (protocol 5 NEXT_BUFFER), which torch.save never writes",
                             p->what);
        if (rc == NOT_MINE)
            return damaged(p, "unknown opcode 0x%02x", op);
        if (rc)
            return rc;
        if (p->refused)
            return refuse(p);
    }
}

/* Values live in the pm_pickle's pool (caller owns *out, pm_pickle_free);
 * strings point into buf, which the caller keeps. */
int pm_pickle_run(const uint8_t *buf, size_t len, const char *what, pm_pickle **out, pm_pv **root)
{
    return pm_pickle_run_ex(buf, len, what, "data.pkl", 0, out, root, NULL);
}

int pm_pickle_run_ex(const uint8_t *buf, size_t len, const char *what, const char *part, unsigned flags,
                     pm_pickle **out, pm_pv **root, size_t *used)
{
    return pm_pickle_run_persid(buf, len, what, part, flags, NULL, NULL, out, root, used);
}

int pm_pickle_run_persid(const uint8_t *buf, size_t len, const char *what, const char *part, unsigned flags,
                         pm_persid_fn persid, void *user, pm_pickle **out, pm_pv **root, size_t *used)
{
    *out = NULL;
    *root = NULL;
    pm_pickle *p = pm_calloc(1, sizeof *p);
    if (!p)
        return pm_errorf(PM_ENOMEM, "%s: out of memory", what);
    p->buf = buf;
    p->len = len;
    p->what = what;
    p->part = part ? part : "data.pkl";
    p->flags = flags;
    p->persid = persid;
    p->persid_user = user;
    /* Every opcode makes at most a few values; a pickle that needs far more
     * memory than its size is hostile. */
    p->pool_limit = (len > SIZE_MAX / 256 ? SIZE_MAX / 2 : len * 256) + ((size_t)4 << 20);
    int rc = run(p, root);
    if (rc) {
        pm_pickle_free(p);
        *root = NULL;
        return rc;
    }
    if (used)
        *used = p->pos;
    /* The value stack and memo are not needed once STOP has given the root. */
    pm_free(p->stack);
    pm_free(p->marks);
    pm_free(p->memo);
    p->stack = NULL;
    p->marks = NULL;
    p->memo = NULL;
    *out = p;
    return 0;
}

size_t pm_pickle_storages(const pm_pickle *p, const pm_pv *const **out)
{
    *out = p->storages;
    return p->nstorages;
}

void pm_pickle_free(pm_pickle *p)
{
    if (!p)
        return;
    pool_block *b = p->blocks;
    while (b) {
        pool_block *next = b->next;
        pm_free(b);
        b = next;
    }
    pm_free(p->stack);
    pm_free(p->marks);
    pm_free(p->memo);
    pm_free(p->storages);
    pm_free(p);
}
