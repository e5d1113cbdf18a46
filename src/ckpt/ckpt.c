/* The checkpoint table: opening (mmap, format detection), the name ->
 * tensor table with its sorted index, and checked float32 reads. */
#include "ckpt/ckpt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A static name ("float32"); never NULL. */
const char *pm_dtype_name(enum pm_dtype dt)
{
    switch (dt) {
    case PM_DT_F32: return "float32";
    case PM_DT_F16: return "float16";
    case PM_DT_BF16: return "bfloat16";
    case PM_DT_F64: return "float64";
    case PM_DT_I64: return "int64";
    case PM_DT_I32: return "int32";
    case PM_DT_I16: return "int16";
    case PM_DT_I8: return "int8";
    case PM_DT_U8: return "uint8";
    case PM_DT_BOOL: return "bool";
    }
    return "unknown";
}

/* Bytes per element. */
size_t pm_dtype_size(enum pm_dtype dt)
{
    switch (dt) {
    case PM_DT_F64: case PM_DT_I64: return 8;
    case PM_DT_F32: case PM_DT_I32: return 4;
    case PM_DT_F16: case PM_DT_BF16: case PM_DT_I16: return 2;
    case PM_DT_I8: case PM_DT_U8: case PM_DT_BOOL: return 1;
    }
    return 1;
}

int64_t pm_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    int zero = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return -1;
        if (shape[d] == 0)
            zero = 1;
        else if (__builtin_mul_overflow(n, shape[d], &n))
            return -1;
    }
    return zero ? 0 : n;
}

int pm_ckpt_wants(pm_ckpt *ck, const char *name)
{
    ck->seen++;
    /* a rooted open filters once every name is known (reroot) */
    if (!ck->prefix || ck->anchor || strncmp(name, ck->prefix, strlen(ck->prefix)) == 0)
        return 1;
    if (!ck->other[0])
        snprintf(ck->other, sizeof ck->other, "%s", name);
    return 0;
}

/* Takes ownership of `owned` (freed here on failure). */
int pm_ckpt_add(pm_ckpt *ck, const char *name, enum pm_dtype dt, int ndim, const int64_t *shape,
                const void *data, size_t nbytes, void *owned)
{
    if (ck->count == ck->cap) {
        int cap = ck->cap ? ck->cap * 2 : 64;
        pm_ckpt_tensor *t = pm_realloc(ck->t, (size_t)cap * sizeof *t);
        if (!t) {
            pm_free(owned);
            return pm_errorf(PM_ENOMEM, "%s: out of memory for a table of %d tensors", ck->what, cap);
        }
        ck->t = t;
        ck->cap = cap;
    }
    pm_ckpt_tensor *r = &ck->t[ck->count];
    memset(r, 0, sizeof *r);
    char *nm = pm_strdup(name);
    if (!nm) {
        pm_free(owned);
        return pm_errorf(PM_ENOMEM, "%s: out of memory", ck->what);
    }
    r->ref.name = nm;
    r->ref.dtype = dt;
    r->ref.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        r->ref.shape[d] = shape[d];
    /* empty tensors get a valid, aligned (never NULL) pointer */
    static const max_align_t empty_data;
    r->ref.data = nbytes ? data : (const void *)&empty_data;
    r->ref.nbytes = nbytes;
    r->owned = owned;
    r->order = (size_t)ck->count;
    ck->count++;
    return 0;
}

typedef struct name_idx {
    const char *name;
    size_t order;
    int idx;
} name_idx;

static int cmp_name_idx(const void *a, const void *b)
{
    const name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Drops all but the last of tensors sharing a name (as a Python dict keeps
 * the last), then builds the sorted index. */
static int finish_table(pm_ckpt *ck)
{
    if (ck->count == 0)
        return 0;
    name_idx *ix = pm_malloc((size_t)ck->count * sizeof *ix);
    if (!ix)
        return pm_errorf(PM_ENOMEM, "%s: out of memory", ck->what);
    for (int i = 0; i < ck->count; i++)
        ix[i] = (name_idx){ck->t[i].ref.name, ck->t[i].order, i};
    qsort(ix, (size_t)ck->count, sizeof *ix, cmp_name_idx);
    int dropped = 0;
    for (int i = 0; i + 1 < ck->count; i++) {
        if (strcmp(ix[i].name, ix[i + 1].name) == 0) {
            pm_ckpt_tensor *r = &ck->t[ix[i].idx];
            pm_free((void *)r->ref.name);
            pm_free(r->owned);
            r->ref.name = NULL;
            r->owned = NULL;
            dropped++;
        }
    }
    if (dropped) {
        int k = 0;
        for (int i = 0; i < ck->count; i++)
            if (ck->t[i].ref.name)
                ck->t[k++] = ck->t[i];
        ck->count = k;
        for (int i = 0; i < ck->count; i++)
            ix[i] = (name_idx){ck->t[i].ref.name, ck->t[i].order, i};
        qsort(ix, (size_t)ck->count, sizeof *ix, cmp_name_idx);
    }
    ck->by_name = pm_malloc((size_t)ck->count * sizeof *ck->by_name);
    if (!ck->by_name) {
        pm_free(ix);
        return pm_errorf(PM_ENOMEM, "%s: out of memory", ck->what);
    }
    for (int i = 0; i < ck->count; i++)
        ck->by_name[i] = ix[i].idx;
    pm_free(ix);
    return 0;
}

static int starts_with_ci(const uint8_t *b, size_t n, const char *s)
{
    size_t k = strlen(s);
    if (n < k)
        return 0;
    for (size_t i = 0; i < k; i++) {
        uint8_t c = b[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        if (c != (uint8_t)s[i])
            return 0;
    }
    return 1;
}

int pm_ckpt_sniff(const uint8_t *b, size_t n)
{
    if (n >= 4 && b[0] == 'P' && b[1] == 'K' &&
        ((b[2] == 3 && b[3] == 4) || (b[2] == 5 && b[3] == 6) || (b[2] == 7 && b[3] == 8)))
        return PM_CKPT_KIND_ZIP;
    if (n >= 9 && b[8] == '{') {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--)
            hlen = hlen << 8 | b[i];
        if (hlen >= 2 && hlen <= ((uint64_t)100 << 20))
            return PM_CKPT_KIND_SAFETENSORS;
    }
    /* PROTO 2..5, a FRAME from protocol 4 on, then LONG1 of 10 bytes:
     * torch's legacy magic number */
    static const uint8_t magic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) {
        size_t at = n >= 11 && b[2] == 0x95 ? 11 : 2;
        if (n >= at + sizeof magic && memcmp(b + at, magic, sizeof magic) == 0)
            return PM_CKPT_KIND_LEGACY;
    }
    return PM_CKPT_KIND_NONE;
}

/* Picks the reader from the first bytes and fills the table. */
static int load(pm_ckpt *ck)
{
    const uint8_t *b = ck->base;
    size_t n = ck->size;
    if (n == 0)
        return pm_errorf(PM_EEMPTY, "%s is empty (0 bytes); download or copy it again", ck->what);
    switch (pm_ckpt_sniff(b, n)) {
    case PM_CKPT_KIND_ZIP:
        return pm_torchzip_load(ck);
    case PM_CKPT_KIND_SAFETENSORS:
        ck->format = "safetensors";
        return pm_safetensors_load(ck);
    case PM_CKPT_KIND_LEGACY:
        return pm_legacy_load(ck);
    default:
        break;
    }
    if (n >= 262 && memcmp(b + 257, "ustar", 5) == 0)
        return pm_legacy_tar_load(ck);
    if (n >= 2 && b[0] == 0x80 && b[1] <= 5)
        return pm_errorf(PM_EFORMAT, "%s is a bare Python pickle, not a torch.save archive or safetensors file; re-save the weights with torch.save",
                         ck->what);
    size_t i = 0;
    while (i < n && i < 64 && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
        i++;
    if (starts_with_ci(b + i, n - i, "<!doctype html") || starts_with_ci(b + i, n - i, "<html"))
        return pm_errorf(PM_EFORMAT, "%s is an HTML page, not a checkpoint; the download probably failed (check the URL and fetch the file again)",
                         ck->what);
    if (starts_with_ci(b, n, "version https://git-lfs"))
        return pm_errorf(PM_EFORMAT, "%s is a Git LFS pointer, not the checkpoint itself; fetch the real file (git lfs pull)", ck->what);
    char hex[64] = "";
    size_t k = 0;
    for (size_t j = 0; j < n && j < 8; j++)
        k += (size_t)snprintf(hex + k, sizeof hex - k, "%s%02x", j ? " " : "", b[j]);
    return pm_errorf(PM_EFORMAT, "%s is neither a PyTorch checkpoint (a torch.save zip archive) nor a safetensors file (it is %zu bytes and starts with %s)",
                     ck->what, n, hex);
}

/* A zeroed table with its name and prefix (copied); caller owns it
 * (pm_ckpt_close). NULL when out of memory. */
static pm_ckpt *new_ckpt(const char *name, const char *prefix, const char *anchor)
{
    pm_ckpt *ck = pm_calloc(1, sizeof *ck);
    if (!ck)
        return NULL;
    const char *base = name ? strrchr(name, '/') : NULL;
    base = base ? base + 1 : name;
    snprintf(ck->what, sizeof ck->what, "checkpoint %s", base && *base ? base : "(in memory)");
    if (prefix && *prefix) {
        ck->prefix = pm_strdup(prefix);
        if (!ck->prefix) {
            pm_free(ck);
            return NULL;
        }
    }
    if (anchor && *anchor && !(ck->anchor = pm_strdup(anchor))) {
        pm_free(ck->prefix);
        pm_free(ck);
        return NULL;
    }
    return ck;
}

/* Drops table entry i (its name and copy). */
static void drop(pm_ckpt *ck, int i)
{
    pm_free((void *)ck->t[i].ref.name);
    pm_free(ck->t[i].owned);
    ck->t[i].ref.name = NULL;
    ck->t[i].owned = NULL;
}

/* A rooted open (ck->anchor): when no tensor is named prefix+anchor but one
 * is named R+anchor (R "" or ending in '.'; the shortest wins), every tensor
 * under R is renamed prefix+rest -- a bare generator state dict, a
 * TorchScript module whose root is the generator or a wrapper around it --
 * and the rest are dropped; otherwise the prefix filter is applied as
 * pm_ckpt_wants would have. */
static int reroot(pm_ckpt *ck)
{
    const char *pre = ck->prefix ? ck->prefix : ""; /* no prefix: renamed to the rest alone */
    size_t pn = strlen(pre), an = strlen(ck->anchor);
    const char *root = NULL;
    size_t rn = 0;
    int direct = 0;
    for (int i = 0; i < ck->count && !direct; i++) {
        const char *k = ck->t[i].ref.name;
        size_t kn = strlen(k);
        if (kn == pn + an && strncmp(k, pre, pn) == 0 && strcmp(k + pn, ck->anchor) == 0)
            direct = 1;
        else if (kn >= an && strcmp(k + kn - an, ck->anchor) == 0 && (kn == an || k[kn - an - 1] == '.') &&
                 (!root || kn - an < rn)) {
            root = k;
            rn = kn - an;
        }
    }
    char *rootcp = NULL;
    if (!direct && root) {
        rootcp = pm_malloc(rn + 1);
        if (!rootcp)
            return pm_errorf(PM_ENOMEM, "%s: out of memory", ck->what);
        memcpy(rootcp, root, rn);
        rootcp[rn] = '\0';
    }
    int k = 0, rc = 0;
    for (int i = 0; i < ck->count; i++) {
        const char *name = ck->t[i].ref.name;
        int keep = rootcp ? strncmp(name, rootcp, rn) == 0 : strncmp(name, pre, pn) == 0;
        if (keep && rootcp && !rc) {
            size_t nn = strlen(name) - rn;
            char *renamed = pm_malloc(pn + nn + 1);
            if (!renamed) {
                rc = pm_errorf(PM_ENOMEM, "%s: out of memory", ck->what);
            } else {
                memcpy(renamed, pre, pn);
                memcpy(renamed + pn, name + rn, nn + 1);
                pm_free((void *)name);
                ck->t[i].ref.name = renamed;
            }
        }
        if (!keep || rc) {
            if (!keep && !ck->other[0])
                snprintf(ck->other, sizeof ck->other, "%s", name);
            drop(ck, i);
            continue;
        }
        ck->t[k++] = ck->t[i];
    }
    ck->count = k;
    pm_free(rootcp);
    return rc;
}

/* Fills the table; on success the caller owns *out = ck, on failure ck is
 * closed here. */
static int open_loaded(pm_ckpt *ck, pm_ckpt **out)
{
    int rc = load(ck);
    if (!rc && ck->anchor)
        rc = reroot(ck);
    if (!rc)
        rc = finish_table(ck);
    if (rc) {
        pm_ckpt_close(ck);
        return rc;
    }
    *out = ck;
    return 0;
}

/* The table borrows `data` (see ckpt.h); caller owns *out. */
int pm_ckpt_open_mem(const void *data, size_t len, const char *name, const char *prefix, pm_ckpt **out)
{
    return pm_ckpt_open_mem_flags(data, len, name, prefix, 0, out);
}

int pm_ckpt_open_mem_flags(const void *data, size_t len, const char *name, const char *prefix, unsigned flags,
                           pm_ckpt **out)
{
    return pm_ckpt_open_mem_rooted(data, len, name, prefix, NULL, flags, out);
}

int pm_ckpt_open_mem_rooted(const void *data, size_t len, const char *name, const char *prefix, const char *anchor,
                            unsigned flags, pm_ckpt **out)
{
    if (!out || (!data && len))
        return pm_errorf(PM_EINVAL, "pm_ckpt_open_mem: no data or no result pointer");
    *out = NULL;
    pm_ckpt *ck = new_ckpt(name, prefix, anchor);
    if (!ck)
        return pm_errorf(PM_ENOMEM, "out of memory opening a checkpoint");
    ck->base = data;
    ck->size = len;
    ck->flags = flags;
    return open_loaded(ck, out);
}

static int open_file(const char *path, const char *prefix, const char *anchor, pm_ckpt **out);

/* Maps the file read-only; the mapping belongs to *out (caller owns it,
 * pm_ckpt_close unmaps). The descriptor is closed before returning. */
int pm_ckpt_open(const char *path, const char *prefix, pm_ckpt **out)
{
    return pm_ckpt_open_rooted(path, prefix, NULL, out);
}

int pm_ckpt_open_rooted(const char *path, const char *prefix, const char *anchor, pm_ckpt **out)
{
    if (!path || !out)
        return pm_errorf(PM_EINVAL, "pm_ckpt_open: no path or no result pointer");
    *out = NULL;
    char found[4096];
    int rc = pm_ckpt_resolve(path, found, sizeof found);
    if (rc)
        return rc;
    return open_file(found, prefix, anchor, out);
}

/* pm_ckpt_open_rooted on a path that is not a directory. */
static int open_file(const char *path, const char *prefix, const char *anchor, pm_ckpt **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return pm_errorf(PM_ENOENT, "checkpoint file %s does not exist; check the path (--model)", path);
        return pm_errorf(PM_EIO, "cannot open checkpoint %s: %s", path, strerror(e));
    }
    struct stat st;
    int rc;
    if (fstat(fd, &st) != 0) {
        rc = pm_errorf(PM_EIO, "cannot stat checkpoint %s: %s", path, strerror(errno));
        goto close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = pm_errorf(PM_EINVAL, "%s is not a regular file; give a checkpoint file", path);
        goto close_fd;
    }
    pm_ckpt *ck = new_ckpt(path, prefix, anchor);
    if (!ck) {
        rc = pm_errorf(PM_ENOMEM, "out of memory opening checkpoint %s", path);
        goto close_fd;
    }
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = pm_errorf(PM_EIO, "cannot map checkpoint %s (%lld bytes): %s", path, (long long)st.st_size,
                           strerror(errno));
            pm_ckpt_close(ck);
            goto close_fd;
        }
        ck->map = m;
        ck->map_len = (size_t)st.st_size;
        ck->base = m;
        ck->size = (size_t)st.st_size;
    }
    close(fd);
    return open_loaded(ck, out);
close_fd:
    close(fd);
    return rc;
}

void pm_map_release(const void *p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p & ~(page - 1), hi = ((uintptr_t)p + n + page - 1) & ~(page - 1);
    if (n)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void pm_ckpt_release_bytes(const pm_ckpt *ck, const void *p, size_t n)
{
    if (!ck || !ck->map)
        return;
    uintptr_t mlo = (uintptr_t)ck->map, mhi = mlo + ck->map_len;
    if ((uintptr_t)p >= mlo && (uintptr_t)p + n <= mhi)
        pm_map_release(p, n); /* not a copy the reader made */
}

void pm_ckpt_release(const pm_ckpt *ck, const pm_tensor_ref *r)
{
    if (!r && ck && ck->map)
        pm_map_release(ck->map, ck->map_len);
    else if (r)
        pm_ckpt_release_bytes(ck, r->data, r->nbytes);
}

/* Frees names, materialised and inflated tensors, the mapping; every
 * pm_tensor_ref of ck is invalid afterwards. NULL is fine. */
void pm_ckpt_close(pm_ckpt *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->count; i++) {
        pm_free((void *)ck->t[i].ref.name);
        pm_free(ck->t[i].owned);
    }
    pm_free(ck->t);
    pm_free(ck->by_name);
    pm_zip_close(&ck->zip);
    if (ck->map)
        munmap(ck->map, ck->map_len);
    pm_free(ck->prefix);
    pm_free(ck->anchor);
    pm_free(ck->hint);
    pm_free(ck);
}

const char *pm_ckpt_what(const pm_ckpt *ck)
{
    return ck ? ck->what : "checkpoint";
}

const char *pm_ckpt_format(const pm_ckpt *ck)
{
    return ck && ck->format ? ck->format : "unknown";
}

/* The family string is copied; NULL or "" clears it. */
int pm_ckpt_set_hint(pm_ckpt *ck, const char *family)
{
    if (!ck)
        return pm_errorf(PM_EINVAL, "pm_ckpt_set_hint: no checkpoint");
    char *h = NULL;
    if (family && *family) {
        h = pm_strdup(family);
        if (!h)
            return pm_errorf(PM_ENOMEM, "out of memory");
    }
    pm_free(ck->hint);
    ck->hint = h;
    return 0;
}

/* Tensors in the table (after the prefix filter); 0 for NULL. */
int pm_ckpt_count(const pm_ckpt *ck)
{
    return ck ? ck->count : 0;
}

/* Table order is the order of the file; the ref belongs to ck. NULL when
 * i is out of range. */
const pm_tensor_ref *pm_ckpt_at(const pm_ckpt *ck, int i)
{
    if (!ck || i < 0 || i >= ck->count)
        return NULL;
    return &ck->t[i].ref;
}

/* Binary search; the ref belongs to ck. */
const pm_tensor_ref *pm_ckpt_find(const pm_ckpt *ck, const char *name)
{
    if (!ck || !name)
        return NULL;
    int lo = 0, hi = ck->count;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const pm_tensor_ref *r = &ck->t[ck->by_name[mid]].ref;
        int c = strcmp(r->name, name);
        if (c == 0)
            return r;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* The missing-tensor message: how many tensors there are, a key that may be
 * the same tensor under another prefix, and the expected model family. */
static int missing(const pm_ckpt *ck, const char *name)
{
    char held[240];
    if (ck->prefix) {
        size_t pn = strlen(ck->prefix);
        while (pn && ck->prefix[pn - 1] == '.')
            pn--;
        if (ck->count == 0 && ck->other[0])
            snprintf(held, sizeof held, "it holds no %.*s tensors; its %d tensors have names like '%.80s'",
                     (int)(pn > 40 ? 40 : pn), ck->prefix, ck->seen, ck->other);
        else
            snprintf(held, sizeof held, "it holds %d %.*s tensors", ck->count, (int)(pn > 80 ? 80 : pn), ck->prefix);
    } else {
        snprintf(held, sizeof held, "it holds %d tensors", ck->count);
    }
    const char *similar = NULL;
    size_t nn = strlen(name);
    for (int i = 0; i < ck->count && !similar; i++) {
        const char *k = ck->t[i].ref.name;
        size_t kn = strlen(k);
        if ((kn > nn && k[kn - nn - 1] == '.' && strcmp(k + kn - nn, name) == 0) ||
            (nn > kn && name[nn - kn - 1] == '.' && strcmp(name + nn - kn, k) == 0))
            similar = k;
    }
    char mean[200] = "";
    if (similar)
        snprintf(mean, sizeof mean, "; it has '%.150s', so the keys may carry another prefix", similar);
    char fam[120] = "";
    if (ck->hint)
        snprintf(fam, sizeof fam, "; is this a %.80s checkpoint?", ck->hint);
    return pm_errorf(PM_ECHECKPOINT, "%s has no tensor '%s' (%s%s%s)", ck->what, name, held, mean, fam);
}

/* IEEE binary16 -> binary32, exact (subnormals, infinities, NaN kept). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        float v = (float)man * (1.0f / 16777216.0f); /* subnormal: man * 2^-24, exact */
        memcpy(&bits, &v, 4);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 112) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int pm_ckpt_count_run(const pm_ckpt *ck, const char *pre, int first, const char *post)
{
    char name[512];
    int n = 0;
    while (n < 1 << 20 && snprintf(name, sizeof name, "%s%d%s", pre, first + n, post) < (int)sizeof name &&
           pm_ckpt_find(ck, name))
        n++;
    return n;
}

/* *out points into ck's table. */
int pm_ckpt_check(const pm_ckpt *ck, const char *name, int ndim, const int64_t *shape, const pm_tensor_ref **out)
{
    if (!ck || !name || ndim < 0 || ndim > PM_MAX_DIMS || (ndim && !shape))
        return pm_errorf(PM_EINVAL, "pm_ckpt_check: bad arguments for tensor %s", name ? name : "(null)");
    const pm_tensor_ref *r = pm_ckpt_find(ck, name);
    if (!r)
        return missing(ck, name);
    int same = r->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = r->shape[d] == shape[d];
    if (!same) {
        char found[160], want[160];
        fmt_shape(found, sizeof found, r->ndim, r->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        return pm_errorf(PM_ECHECKPOINT, "%s: tensor %s has shape %s; expected %s", ck->what, name, found, want);
    }
    *out = r;
    return 0;
}

/* dst is the caller's and must hold the tensor's element count. */
int pm_ckpt_get_f32(const pm_ckpt *ck, const char *name, int ndim, const int64_t *shape, float *dst)
{
    const pm_tensor_ref *r;
    int rc = dst ? pm_ckpt_check(ck, name, ndim, shape, &r) : pm_errorf(PM_EINVAL, "pm_ckpt_get_f32: no buffer");
    if (rc)
        return rc;
    size_t n = r->nbytes / pm_dtype_size(r->dtype);
    const uint8_t *s = r->data;
    switch (r->dtype) {
    case PM_DT_F32:
        if (n)
            memcpy(dst, s, n * 4);
        return 0;
    case PM_DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = half_to_float(h);
        }
        return 0;
    case PM_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        }
        return 0;
    case PM_DT_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        return 0;
    default:
        return pm_errorf(PM_ECHECKPOINT, "%s: tensor %s is %s; expected a floating-point tensor (float32, float16, bfloat16 or float64)",
                         ck->what, name, pm_dtype_name(r->dtype));
    }
}
