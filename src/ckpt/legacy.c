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
