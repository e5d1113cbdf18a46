/* PyTorch's legacy serialization (torch.save before 1.6, or with
 * _use_new_zipfile_serialization=False): one stream of pickles -- the magic
 * number, the protocol version (1001), a sys_info dict, the object itself
 * (storages named by persistent ids ('storage', type, key, location, numel,
 * view)), the sorted list of storage keys -- followed, for each key in that
 * order, by the storage: its element count (int64, little-endian) and its
 * bytes. The object's tensors point into those bytes in place. */
#include "ckpt/ckpt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct legacy_storage {
    const char *key;
    size_t key_n;
    const uint8_t *bytes;
    size_t len;
    int elsize;
} legacy_storage;

typedef struct legacy_table {
    legacy_storage *s; /* pm_malloc; sorted by key */
    size_t n;
} legacy_table;

static int cmp_key(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an < bn ? -1 : an > bn);
}

static int cmp_storage(const void *x, const void *y)
{
    const legacy_storage *a = x, *b = y;
    return cmp_key(a->key, a->key_n, b->key, b->key_n);
}

/* pm_storage_fn: the appended bytes of the storage's key, from its view offset. */
static int legacy_bytes(pm_ckpt *ck, void *user, const char *name, const pm_pv *st, const uint8_t **bytes, size_t *len)
{
    const legacy_table *t = user;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(t->s[mid].key, t->s[mid].key_n, st->u.storage.key, st->u.storage.key_n);
        if (c == 0) {
            const legacy_storage *s = &t->s[mid];
            uint64_t off = (uint64_t)st->u.storage.view_off * (uint64_t)s->elsize;
            if (st->u.storage.view_off > 0 && off / (uint64_t)s->elsize != (uint64_t)st->u.storage.view_off)
                off = UINT64_MAX;
            if (off > s->len)
                return pm_errorf(PM_ECORRUPT, "%s: tensor %s views its storage from element %lld, past its end; the file is corrupt",
                                 ck->what, name, (long long)st->u.storage.view_off);
            *bytes = s->bytes + off;
            *len = s->len - (size_t)off;
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return pm_errorf(PM_ECORRUPT, "%s: tensor %s is stored in storage '%.*s', which the file lacks; the file is damaged or incomplete",
                     ck->what, name, (int)(st->u.storage.key_n > 60 ? 60 : st->u.storage.key_n), st->u.storage.key);
}

/* The header pickles: magic number, protocol version, sys_info. */
static int read_header(pm_ckpt *ck, size_t *pos)
{
    static const char *const part[] = {"magic number", "protocol version", "sys_info"};
    for (int i = 0; i < 3; i++) {
        pm_pickle *pk;
        pm_pv *v;
        size_t used = 0;
        int rc = pm_pickle_run_ex(ck->base + *pos, ck->size - *pos, ck->what, part[i], 0, &pk, &v, &used);
        if (rc)
            return rc;
        *pos += used;
        if (i == 1 && (v->kind != PV_INT || v->u.i != 1001))
            rc = pm_errorf(PM_EUNSUPPORTED, "%s uses legacy serialization protocol %lld; pixmend reads protocol 1001 (PyTorch 0.4 to 1.5 and later torch.save(..., _use_new_zipfile_serialization=False))",
                           ck->what, v->kind == PV_INT ? (long long)v->u.i : -1LL);
        if (i == 2 && v->kind == PV_DICT)
            for (size_t k = 0; k < v->u.dict.n; k++) {
                const pm_pv *key = v->u.dict.k[k], *val = v->u.dict.v[k];
                if (key->kind == PV_STR && key->u.s.n == 13 && memcmp(key->u.s.p, "little_endian", 13) == 0 &&
                    val->kind == PV_BOOL && !val->u.i)
                    rc = pm_errorf(PM_EUNSUPPORTED, "%s was written on a big-endian machine; pixmend reads little-endian checkpoints only (load and re-save it on x86 or ARM)",
                                   ck->what);
            }
        pm_pickle_free(pk);
        if (rc)
            return rc;
    }
    return 0;
}

/* The element size of storage `key` from the storages the object names. */
static int elsize_of(const pm_pickle *pk, const char *key, size_t key_n, const pm_pv **type)
{
    const pm_pv *const *st;
    size_t n = pm_pickle_storages(pk, &st);
    for (size_t i = 0; i < n; i++)
        if (cmp_key(st[i]->u.storage.key, st[i]->u.storage.key_n, key, key_n) == 0) {
            *type = st[i]->u.storage.type;
            return st[i]->u.storage.elsize;
        }
    *type = NULL;
    return -1;
}

/* Walks the appended storages named by `keys` (a list of strings) from
 * *pos, filling t (t->s owned by the caller). */
static int read_storages(pm_ckpt *ck, const pm_pickle *pk, const pm_pv *keys, size_t pos, legacy_table *t)
{
    if (keys->kind != PV_LIST)
        return pm_errorf(PM_ECORRUPT, "%s: its list of storage keys is not a list; the file is corrupt", ck->what);
    t->s = pm_malloc((keys->u.seq.n ? keys->u.seq.n : 1) * sizeof *t->s);
    if (!t->s)
        return pm_errorf(PM_ENOMEM, "%s: out of memory for %zu storages", ck->what, keys->u.seq.n);
    for (size_t i = 0; i < keys->u.seq.n; i++) {
        const pm_pv *k = keys->u.seq.v[i];
        if (k->kind != PV_STR)
            return pm_errorf(PM_ECORRUPT, "%s: storage key %zu is not a string; the file is corrupt", ck->what, i);
        const pm_pv *type;
        int es = elsize_of(pk, k->u.s.p, k->u.s.n, &type);
        if (es < 0)
            return pm_errorf(PM_ECORRUPT, "%s: storage '%.*s' is listed but no tensor names it; the file is corrupt",
                             ck->what, (int)(k->u.s.n > 60 ? 60 : k->u.s.n), k->u.s.p);
        if (es == 0)
            return pm_errorf(PM_EUNSUPPORTED, "%s: storage '%.*s' is of type %.*s, whose element size pixmend does not know, so the storages after it cannot be found",
                             ck->what, (int)(k->u.s.n > 60 ? 60 : k->u.s.n), k->u.s.p,
                             type ? (int)(type->u.glob.name_n > 60 ? 60 : type->u.glob.name_n) : 7,
                             type ? type->u.glob.name : "unknown");
        if (ck->size - pos < 8)
            return pm_errorf(PM_ETRUNCATED, "%s ends at byte %zu, inside storage %zu of %zu; the file is truncated (download it again)",
                             ck->what, ck->size, i + 1, keys->u.seq.n);
        uint64_t numel = 0;
        for (int b = 7; b >= 0; b--)
            numel = numel << 8 | ck->base[pos + (size_t)b];
        pos += 8;
        if (numel > (ck->size - pos) / (uint64_t)es)
            return pm_errorf(PM_ETRUNCATED, "%s: storage %zu of %zu needs %llu bytes but the file ends after %zu; the file is truncated (download it again)",
                             ck->what, i + 1, keys->u.seq.n, (unsigned long long)numel * (unsigned long long)es,
                             ck->size - pos);
        t->s[t->n++] = (legacy_storage){k->u.s.p, k->u.s.n, ck->base + pos, (size_t)numel * (size_t)es, es};
        pos += (size_t)numel * (size_t)es;
    }
    qsort(t->s, t->n, sizeof *t->s, cmp_storage);
    return 0;
}

/* The pickles' values are freed before returning; the table borrows the
 * storages' bytes from ck->base (copies where a tensor is misaligned). */
int pm_legacy_load(pm_ckpt *ck)
{
    ck->format = "PyTorch legacy";
    size_t pos = 0, used = 0;
    int rc = read_header(ck, &pos);
    if (rc)
        return rc;
    pm_pickle *pk = NULL, *pkeys = NULL;
    pm_pv *root, *keys;
    if ((rc = pm_pickle_run_ex(ck->base + pos, ck->size - pos, ck->what, "main pickle", 0, &pk, &root, &used)))
        return rc;
    pos += used;
    legacy_table t = {0};
    if ((rc = pm_pickle_run_ex(ck->base + pos, ck->size - pos, ck->what, "storage keys", 0, &pkeys, &keys, &used)))
        goto free_main;
    pos += used;
    if ((rc = read_storages(ck, pk, keys, pos, &t)))
        goto free_table;
    rc = pm_torch_collect(ck, root, 0, legacy_bytes, &t);
free_table:
    pm_free(t.s);
    pm_pickle_free(pkeys);
free_main:
    pm_pickle_free(pk);
    return rc;
}

/* ------------------------------------------------ the tar format (< 0.4) */

typedef struct tar_member {
    const uint8_t *data;
    size_t len;
} tar_member;

/* Finds members storages, tensors and pickle of the tar in ck->base. */
static int tar_members(pm_ckpt *ck, tar_member m[3])
{
    static const char *const names[] = {"storages", "tensors", "pickle"};
    memset(m, 0, 3 * sizeof *m);
    size_t pos = 0;
    while (pos + 512 <= ck->size) {
        const uint8_t *h = ck->base + pos;
        if (h[0] == '\0')
            break; /* the end blocks */
        uint64_t size = 0;
        for (int i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++)
            size = size * 8 + (uint64_t)(h[i] - '0');
        if (size > ck->size - pos - 512)
            return pm_errorf(PM_ETRUNCATED, "%s: tar member '%.100s' needs %llu bytes but the file ends first; the file is truncated",
                             ck->what, (const char *)h, (unsigned long long)size);
        for (int k = 0; k < 3; k++)
            if (strnlen((const char *)h, 100) == strlen(names[k]) && memcmp(h, names[k], strlen(names[k])) == 0 &&
                (h[156] == '0' || h[156] == '\0'))
                m[k] = (tar_member){h + 512, (size_t)size};
        pos += 512 + (size_t)((size + 511) & ~(uint64_t)511);
    }
    for (int k = 0; k < 3; k++)
        if (!m[k].data)
            return pm_errorf(PM_EFORMAT, "%s is a tar archive without a '%s' member, so not a PyTorch (before 0.4) checkpoint",
                             ck->what, names[k]);
    return 0;
}

/* One small pickle of a member at *pos (freed by the caller). */
static int member_pickle(pm_ckpt *ck, const tar_member *m, size_t *pos, const char *part, pm_pickle **pk, pm_pv **v)
{
    size_t used = 0;
    int rc = pm_pickle_run_ex(m->data + *pos, m->len - *pos, ck->what, part, 0, pk, v, &used);
    if (!rc)
        *pos += used;
    return rc;
}

typedef struct tar_tensors {
    pm_pv *pv;           /* n PV_TENSOR values (pm_malloc) */
    pm_pv_tensor *t;     /* their tensors (pm_malloc) */
    pm_pv *st;           /* PV_STORAGE values, one per storage (pm_malloc) */
    int64_t *keys;       /* each tensor's key */
    char (*names)[24];   /* storage keys as text (pm_malloc) */
    size_t n, nst;
} tar_tensors;

static void tar_tensors_free(tar_tensors *tt)
{
    pm_free(tt->pv);
    pm_free(tt->t);
    pm_free(tt->st);
    pm_free(tt->keys);
    pm_free(tt->names);
}

/* pm_persid_fn: a tensor key (an int, or its decimal text) -> its tensor. */
static pm_pv *tar_persid(void *user, const pm_pv *pid)
{
    const tar_tensors *tt = user;
    int64_t key;
    if (pid->kind == PV_INT) {
        key = pid->u.i;
    } else if (pid->kind == PV_STR && pid->u.s.n > 0 && pid->u.s.n < 20) {
        char b[24], *end;
        memcpy(b, pid->u.s.p, pid->u.s.n);
        b[pid->u.s.n] = '\0';
        key = strtoll(b, &end, 10);
        if (*end)
            return NULL;
    } else {
        return NULL;
    }
    for (size_t i = 0; i < tt->n; i++)
        if (tt->keys[i] == key)
            return &tt->pv[i];
    return NULL;
}

/* Reads member storages: count, then per storage (key, location, type)
 * and its element count and bytes; storage views are refused. */
static int tar_storages(pm_ckpt *ck, const tar_member *m, legacy_table *t, tar_tensors *tt)
{
    size_t pos = 0;
    pm_pickle *pk;
    pm_pv *v;
    int rc = member_pickle(ck, m, &pos, "storages", &pk, &v);
    if (rc)
        return rc;
    int64_t n = v->kind == PV_INT ? v->u.i : -1;
    pm_pickle_free(pk);
    if (n < 0 || (uint64_t)n > m->len / 8)
        return pm_errorf(PM_ECORRUPT, "%s: its storages member does not start with a storage count; the file is corrupt", ck->what);
    t->s = pm_malloc((size_t)(n ? n : 1) * sizeof *t->s);
    tt->st = pm_calloc((size_t)(n ? n : 1), sizeof *tt->st);
    tt->names = pm_calloc((size_t)(n ? n : 1), sizeof *tt->names);
    if (!t->s || !tt->st || !tt->names)
        return pm_errorf(PM_ENOMEM, "%s: out of memory for %lld storages", ck->what, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if ((rc = member_pickle(ck, m, &pos, "storages", &pk, &v)))
            return rc;
        const pm_pv *type = v->kind == PV_TUPLE && v->u.seq.n == 3 ? v->u.seq.v[2] : NULL;
        int ok = type && v->u.seq.v[0]->kind == PV_INT && type->kind == PV_GLOBAL && type->u.glob.size > 0;
        int64_t key = ok ? v->u.seq.v[0]->u.i : 0;
        int es = ok ? type->u.glob.size : 0, dt = ok ? type->u.glob.dtype : -1;
        pm_pickle_free(pk);
        if (!ok)
            return pm_errorf(PM_ECORRUPT, "%s: storage %lld of its storages member is not (key, location, type); the file is corrupt",
                             ck->what, (long long)i);
        if (m->len - pos < 8)
            return pm_errorf(PM_ETRUNCATED, "%s: its storages member ends inside storage %lld; the file is truncated", ck->what, (long long)i);
        uint64_t numel = 0;
        for (int b = 7; b >= 0; b--)
            numel = numel << 8 | m->data[pos + (size_t)b];
        pos += 8;
        if (numel > (m->len - pos) / (uint64_t)es)
            return pm_errorf(PM_ETRUNCATED, "%s: storage %lld needs %llu bytes but its member ends first; the file is truncated",
                             ck->what, (long long)i, (unsigned long long)numel * (unsigned long long)es);
        snprintf(tt->names[i], sizeof tt->names[i], "%lld", (long long)key);
        pm_pv *s = &tt->st[i];
        s->kind = PV_STORAGE;
        s->u.storage.dtype = dt;
        s->u.storage.elsize = es;
        s->u.storage.key = tt->names[i];
        s->u.storage.key_n = strlen(tt->names[i]);
        s->u.storage.numel = (int64_t)numel;
        t->s[t->n++] = (legacy_storage){tt->names[i], s->u.storage.key_n, m->data + pos, (size_t)numel * (size_t)es, es};
        tt->nst++;
        pos += (size_t)numel * (size_t)es;
    }
    if ((rc = member_pickle(ck, m, &pos, "storages", &pk, &v)))
        return rc;
    int views = v->kind == PV_LIST && v->u.seq.n > 0;
    pm_pickle_free(pk);
    if (views)
        return pm_errorf(PM_EUNSUPPORTED, "%s uses storage views of PyTorch before 0.4, which pixmend does not read; re-save it with a current PyTorch: torch.save(torch.load(path), path)",
                         ck->what);
    qsort(t->s, t->n, sizeof *t->s, cmp_storage);
    return 0;
}

/* The storage value of key `key` among tt's, or NULL. */
static const pm_pv *tar_storage(const tar_tensors *tt, int64_t key)
{
    char b[24];
    snprintf(b, sizeof b, "%lld", (long long)key);
    for (size_t i = 0; i < tt->nst; i++)
        if (strcmp(tt->names[i], b) == 0)
            return &tt->st[i];
    return NULL;
}

/* Reads member tensors: count, then per tensor (key, storage key, type),
 * ndim (int32, 4 bytes padding), sizes, strides (int64) and offset. */
static int tar_tensor_table(pm_ckpt *ck, const tar_member *m, tar_tensors *tt)
{
    size_t pos = 0;
    pm_pickle *pk;
    pm_pv *v;
    int rc = member_pickle(ck, m, &pos, "tensors", &pk, &v);
    if (rc)
        return rc;
    int64_t n = v->kind == PV_INT ? v->u.i : -1;
    pm_pickle_free(pk);
    if (n < 0 || (uint64_t)n > m->len / 8)
        return pm_errorf(PM_ECORRUPT, "%s: its tensors member does not start with a tensor count; the file is corrupt", ck->what);
    tt->pv = pm_calloc((size_t)(n ? n : 1), sizeof *tt->pv);
    tt->t = pm_calloc((size_t)(n ? n : 1), sizeof *tt->t);
    tt->keys = pm_calloc((size_t)(n ? n : 1), sizeof *tt->keys);
    if (!tt->pv || !tt->t || !tt->keys)
        return pm_errorf(PM_ENOMEM, "%s: out of memory for %lld tensors", ck->what, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if ((rc = member_pickle(ck, m, &pos, "tensors", &pk, &v)))
            return rc;
        int ok = v->kind == PV_TUPLE && v->u.seq.n == 3 && v->u.seq.v[0]->kind == PV_INT && v->u.seq.v[1]->kind == PV_INT;
        int64_t key = ok ? v->u.seq.v[0]->u.i : 0, sk = ok ? v->u.seq.v[1]->u.i : 0;
        pm_pickle_free(pk);
        const pm_pv *st = ok ? tar_storage(tt, sk) : NULL;
        if (!st)
            return pm_errorf(PM_ECORRUPT, "%s: tensor %lld of its tensors member names no stored storage; the file is corrupt",
                             ck->what, (long long)i);
        if (m->len - pos < 8)
            return pm_errorf(PM_ETRUNCATED, "%s: its tensors member ends inside tensor %lld; the file is truncated", ck->what, (long long)i);
        int32_t ndim = (int32_t)(m->data[pos] | m->data[pos + 1] << 8 | m->data[pos + 2] << 16 | (uint32_t)m->data[pos + 3] << 24);
        pos += 8;
        if (ndim < 0 || ndim > PM_MAX_DIMS || m->len - pos < (size_t)(16 * ndim + 8))
            return pm_errorf(PM_ECORRUPT, "%s: tensor %lld of its tensors member has %d dimensions or ends early; the file is corrupt",
                             ck->what, (long long)i, ndim);
        pm_pv_tensor *t = &tt->t[i];
        t->storage = st;
        t->ndim = ndim;
        t->dtype = (enum pm_dtype)(st->u.storage.dtype < 0 ? PM_DT_U8 : st->u.storage.dtype);
        int64_t vals[2 * PM_MAX_DIMS + 1];
        for (int k = 0; k < 2 * ndim + 1; k++) {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--)
                u = u << 8 | m->data[pos + (size_t)b];
            vals[k] = (int64_t)u;
            pos += 8;
        }
        for (int d = 0; d < ndim; d++) {
            t->shape[d] = vals[d];
            t->stride[d] = vals[ndim + d];
            if (t->shape[d] < 0 || t->stride[d] < 0)
                return pm_errorf(PM_ECORRUPT, "%s: tensor %lld has a negative size or stride; the file is corrupt", ck->what, (long long)i);
        }
        t->offset = vals[2 * ndim];
        if (t->offset < 0)
            return pm_errorf(PM_ECORRUPT, "%s: tensor %lld has a negative storage offset; the file is corrupt", ck->what, (long long)i);
        tt->keys[i] = key;
        /* a storage of a type pixmend does not read stands for a skipped tensor */
        tt->pv[i].kind = st->u.storage.dtype < 0 ? PV_OBJECT : PV_TENSOR;
        if (st->u.storage.dtype < 0)
            tt->pv[i].u.obj.why = "its dtype is not one pixmend reads";
        else
            tt->pv[i].u.t = t;
        tt->n++;
    }
    return 0;
}

/* The pickles' values and the tensor tables are freed before returning. */
int pm_legacy_tar_load(pm_ckpt *ck)
{
    ck->format = "PyTorch legacy (tar)";
    tar_member m[3];
    int rc = tar_members(ck, m);
    if (rc)
        return rc;
    legacy_table t = {0};
    tar_tensors tt = {0};
    pm_pickle *pk = NULL;
    pm_pv *root;
    if ((rc = tar_storages(ck, &m[0], &t, &tt)) || (rc = tar_tensor_table(ck, &m[1], &tt)))
        goto free_tables;
    if ((rc = pm_pickle_run_persid(m[2].data, m[2].len, ck->what, "pickle", 0, tar_persid, &tt, &pk, &root, NULL)))
        goto free_tables;
    rc = pm_torch_collect(ck, root, 0, legacy_bytes, &t);
    pm_pickle_free(pk);
free_tables:
    tar_tensors_free(&tt);
    pm_free(t.s);
    return rc;
}
