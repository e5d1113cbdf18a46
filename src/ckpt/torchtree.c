/* The tensors of an unpickled torch object, wherever its storages live (a
 * zip archive's data/<key> entries, a legacy file's appended storages):
 * state dicts (with the 'state_dict' / 'params_ema' / 'params' choice and
 * nested dicts flattened) and TorchScript module trees (__torch__ objects
 * whose BUILD state is their attribute dict). */
#include "ckpt/ckpt_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct walker {
    pm_ckpt *ck;
    pm_storage_fn storage; /* finds a storage's bytes */
    void *user;
    char *name;       /* the key being built (pm_malloc) */
    size_t name_n, name_cap;
    size_t budget;    /* dict items left to visit */
} walker;

/* Grows the walker's name buffer (owned by the walker) to `need` bytes. */
static int grow_name(walker *w, size_t need)
{
    if (need <= w->name_cap)
        return 0;
    size_t cap = w->name_cap ? w->name_cap : 256;
    while (cap < need)
        cap *= 2;
    char *n = pm_realloc(w->name, cap);
    if (!n)
        return pm_errorf(PM_ENOMEM, "%s: out of memory for a %zu-byte tensor name", w->ck->what, need);
    w->name = n;
    w->name_cap = cap;
    return 0;
}

static void fmt_dims(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* Adds tensor `t` (named w->name): its bytes are used in place when they are
 * contiguous and aligned, else gathered into a buffer the table owns. */
static int add_tensor(walker *w, const pm_pv_tensor *t)
{
    pm_ckpt *ck = w->ck;
    const char *name = w->name;
    const uint8_t *bytes;
    size_t blen;
    int rc = w->storage(ck, w->user, name, t->storage, &bytes, &blen);
    if (rc)
        return rc;

    size_t es = pm_dtype_size(t->dtype);
    int64_t numel = pm_shape_numel(t->ndim, t->shape);
    char dims[160];
    fmt_dims(dims, sizeof dims, t->ndim, t->shape);
    if (numel < 0)
        return pm_errorf(PM_ECORRUPT, "%s: tensor %s has an impossible shape %s; the file is corrupt", ck->what, name, dims);
    if (numel == 0)
        return pm_ckpt_add(ck, name, t->dtype, t->ndim, t->shape, NULL, 0, NULL);

    /* The last element it reaches must lie inside the storage. */
    uint64_t last = (uint64_t)t->offset, avail = blen / es;
    int contiguous = 1;
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        uint64_t step;
        if (__builtin_mul_overflow((uint64_t)(t->shape[d] - 1), (uint64_t)t->stride[d], &step) ||
            __builtin_add_overflow(last, step, &last))
            last = UINT64_MAX;
        if (t->shape[d] != 1 && t->stride[d] != expect)
            contiguous = 0;
        expect *= t->shape[d]; /* cannot overflow: numel fits in int64 */
    }
    if (last >= avail)
        return pm_errorf(PM_ECORRUPT, "%s: tensor %s (shape %s, storage offset %lld) reaches past the %llu elements of its storage; the file is corrupt",
                         ck->what, name, dims, (long long)t->offset, (unsigned long long)avail);
    const uint8_t *src = bytes + (size_t)t->offset * es;
    if (contiguous && (uintptr_t)src % es == 0)
        return pm_ckpt_add(ck, name, t->dtype, t->ndim, t->shape, src, (size_t)numel * es, NULL);

    /* Views with strides (transposes, slices, expands): lay them out
     * contiguously. An expanded view may be far larger than its storage;
     * refuse absurd ones rather than fill memory. */
    uint64_t nbytes = (uint64_t)numel * es; /* numel*es < 2^63 * 8 is checked next */
    if ((uint64_t)numel > UINT64_MAX / 8 || nbytes > (uint64_t)blen * 1024 + ((uint64_t)64 << 20) || nbytes > SIZE_MAX / 2)
        return pm_errorf(PM_ECORRUPT, "%s: tensor %s (shape %s) would need %llu bytes from a storage of %zu bytes; the file is corrupt or hostile",
                         ck->what, name, dims, (unsigned long long)nbytes, blen);
    uint8_t *dst = pm_malloc((size_t)nbytes);
    if (!dst)
        return pm_errorf(PM_ENOMEM, "%s: out of memory laying out tensor %s (%llu bytes)", ck->what, name,
                         (unsigned long long)nbytes);
    /* Element offsets stay inside [0, last]: a size-1 dimension's stride
     * never matters, so it is taken as 0. */
    int64_t idx[PM_MAX_DIMS] = {0}, stride[PM_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        stride[d] = t->shape[d] == 1 ? 0 : t->stride[d];
    int64_t off = 0;
    for (int64_t i = 0; i < numel; i++) {
        const uint8_t *sp = src + off * (int64_t)es;
        switch (es) {
        case 1: dst[i] = *sp; break;
        case 2: memcpy(dst + i * 2, sp, 2); break;
        case 4: memcpy(dst + i * 4, sp, 4); break;
        default: memcpy(dst + i * 8, sp, 8); break;
        }
        for (int d = t->ndim - 1; d >= 0; d--) {
            off += stride[d];
            if (++idx[d] < t->shape[d])
                break;
            off -= stride[d] * t->shape[d];
            idx[d] = 0;
        }
    }
    return pm_ckpt_add(ck, name, t->dtype, t->ndim, t->shape, dst, (size_t)nbytes, dst);
}

/* Visits the items of dict d, whose keys extend w->name (of length base_n). */
static int walk_dict(walker *w, const pm_pv *d, int depth)
{
    size_t base_n = w->name_n;
    for (size_t i = 0; i < d->u.dict.n; i++) {
        if (w->budget-- == 0)
            return pm_errorf(PM_ECORRUPT, "%s: its dicts share or nest so much that the tensor names would not end; the file is corrupt or hostile",
                             w->ck->what);
        const pm_pv *k = d->u.dict.k[i], *v = d->u.dict.v[i];
        char num[32];
        const char *ks;
        size_t kn;
        if (k->kind == PV_STR) {
            ks = k->u.s.p;
            kn = k->u.s.n;
            if (memchr(ks, '\0', kn))
                continue;
        } else if (k->kind == PV_INT) {
            kn = (size_t)snprintf(num, sizeof num, "%lld", (long long)k->u.i);
            ks = num;
        } else {
            continue;
        }
        if (v->kind != PV_TENSOR && v->kind != PV_DICT && !(v->kind == PV_OBJECT && v->u.obj.why))
            continue;
        int rc = grow_name(w, base_n + 1 + kn + 1);
        if (rc)
            return rc;
        size_t n = base_n;
        if (n)
            w->name[n++] = '.';
        memcpy(w->name + n, ks, kn);
        n += kn;
        w->name[n] = '\0';
        w->name_n = n;
        if (v->kind == PV_TENSOR) {
            if (pm_ckpt_wants(w->ck, w->name) && (rc = add_tensor(w, v->u.t)))
                return rc;
        } else if (v->kind == PV_DICT) {
            if (depth >= 32)
                return pm_errorf(PM_ECORRUPT, "%s: its dicts nest more than 32 deep (at %s); the file is corrupt or hostile",
                                 w->ck->what, w->name);
            if ((rc = walk_dict(w, v, depth + 1)))
                return rc;
        } else if (pm_ckpt_wants(w->ck, w->name)) {
            pm_warn("ckpt_tensor_skipped", "%s: tensor %s is skipped: %s", w->ck->what, w->name, v->u.obj.why);
        }
        w->name_n = base_n;
        w->name[base_n] = '\0';
    }
    return 0;
}

/* The value at string key `key` of dict d (owned by the pickle), or NULL. */
static const pm_pv *dict_get(const pm_pv *d, const char *key)
{
    size_t n = strlen(key);
    const pm_pv *found = NULL;
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const pm_pv *k = d->u.dict.k[i];
        if (k->kind == PV_STR && k->u.s.n == n && memcmp(k->u.s.p, key, n) == 0)
            found = d->u.dict.v[i]; /* the last wins, as in Python */
    }
    return found;
}

/* Explains a top-level object that is not a dict. */
static int not_a_dict(pm_ckpt *ck, const pm_pv *root, int torchscript)
{
    if (torchscript)
        return pm_errorf(PM_ECHECKPOINT, "%s is a TorchScript archive whose data.pkl holds no module (it holds a %s); it is damaged or was not written by torch.jit.save",
                         ck->what, root->kind == PV_DICT ? "dict" : "value that is not a __torch__ module");
    if (root->kind == PV_OBJECT && root->u.obj.cls) {
        const pm_pv *c = root->u.obj.cls;
        return pm_errorf(PM_ECHECKPOINT, "%s holds a pickled %.*s.%.*s object, not a dict of tensors; pixmend cannot run Python classes: save model.state_dict() with torch.save instead",
                         ck->what, (int)(c->u.glob.mod_n > 100 ? 100 : c->u.glob.mod_n), c->u.glob.mod,
                         (int)(c->u.glob.name_n > 100 ? 100 : c->u.glob.name_n), c->u.glob.name);
    }
    static const char *const kinds[] = {"None", "bool", "int", "int", "float", "string", "bytes", "tuple", "list",
                                        "dict", "set", "class", "object", "storage", "single tensor"};
    return pm_errorf(PM_ECHECKPOINT, "%s holds a %s, not a dict of tensors (a state dict); save one with torch.save(model.state_dict(), path)",
                     ck->what, kinds[root->kind]);
}


/* Is v a TorchScript module object: a __torch__.* class with a dict state? */
static int is_module(const pm_pv *v)
{
    if (v->kind != PV_OBJECT || !v->u.obj.cls || !v->u.obj.state || v->u.obj.state->kind != PV_DICT)
        return 0;
    const pm_pv *c = v->u.obj.cls;
    return c->u.glob.mod_n >= 9 && memcmp(c->u.glob.mod, "__torch__", 9) == 0 &&
           (c->u.glob.mod_n == 9 || c->u.glob.mod[9] == '.');
}

/* Visits a TorchScript module: its tensor attributes (parameters and
 * buffers) become w->name.<attr>, its module attributes are visited in turn.
 * Other attributes (training flags, ints, strings, hooks) are passed over. */
static int walk_module(walker *w, const pm_pv *m, int depth)
{
    const pm_pv *d = m->u.obj.state;
    size_t base_n = w->name_n;
    for (size_t i = 0; i < d->u.dict.n; i++) {
        if (w->budget-- == 0)
            return pm_errorf(PM_ECORRUPT, "%s: its modules share or nest so much that the tensor names would not end; the file is corrupt or hostile",
                             w->ck->what);
        const pm_pv *k = d->u.dict.k[i], *v = d->u.dict.v[i];
        if (k->kind != PV_STR || memchr(k->u.s.p, '\0', k->u.s.n) || memchr(k->u.s.p, '.', k->u.s.n))
            continue;
        int sub = is_module(v);
        if (v->kind != PV_TENSOR && !sub && !(v->kind == PV_OBJECT && v->u.obj.why))
            continue;
        int rc = grow_name(w, base_n + 1 + k->u.s.n + 1);
        if (rc)
            return rc;
        size_t n = base_n;
        if (n)
            w->name[n++] = '.';
        memcpy(w->name + n, k->u.s.p, k->u.s.n);
        n += k->u.s.n;
        w->name[n] = '\0';
        w->name_n = n;
        if (v->kind == PV_TENSOR) {
            if (pm_ckpt_wants(w->ck, w->name) && (rc = add_tensor(w, v->u.t)))
                return rc;
        } else if (sub) {
            if (depth >= 32)
                return pm_errorf(PM_ECORRUPT, "%s: its modules nest more than 32 deep (at %s); the file is corrupt or hostile",
                                 w->ck->what, w->name);
            if ((rc = walk_module(w, v, depth + 1)))
                return rc;
        } else if (pm_ckpt_wants(w->ck, w->name)) {
            pm_warn("ckpt_tensor_skipped", "%s: tensor %s is skipped: %s", w->ck->what, w->name, v->u.obj.why);
        }
        w->name_n = base_n;
        w->name[base_n] = '\0';
    }
    return 0;
}

/* The pickle's values stay the caller's; the table's names are copies. */
int pm_torch_collect(pm_ckpt *ck, const pm_pv *root, int torchscript, pm_storage_fn storage, void *user)
{
    walker w = {.ck = ck, .storage = storage, .user = user, .budget = (size_t)4 << 20};
    int module = torchscript && is_module(root);
    if (!module && root->kind != PV_DICT)
        return not_a_dict(ck, root, torchscript);
    const pm_pv *table = root;
    if (!module) {
        static const char *const keys[] = {"state_dict", "params_ema", "params"};
        for (int i = 0; i < 3; i++) {
            const pm_pv *v = dict_get(root, keys[i]);
            if (v && v->kind == PV_DICT) {
                table = v;
                break;
            }
        }
    }
    int rc = grow_name(&w, 256);
    if (rc)
        return rc;
    w.name[0] = '\0';
    rc = module ? walk_module(&w, table, 0) : walk_dict(&w, table, 0);
    pm_free(w.name);
    if (!rc && module && ck->seen == 0) {
        const pm_pv *c = root->u.obj.cls;
        rc = pm_errorf(PM_ECHECKPOINT, "%s is a TorchScript archive of %.*s.%.*s with no parameters or buffers (a frozen module, torch.jit.freeze, keeps its weights only in its code); it holds no weights pixmend could use",
                       ck->what, (int)(c->u.glob.mod_n > 80 ? 80 : c->u.glob.mod_n), c->u.glob.mod,
                       (int)(c->u.glob.name_n > 80 ? 80 : c->u.glob.name_n), c->u.glob.name);
    }
    return rc;
}
