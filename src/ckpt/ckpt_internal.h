/* Internals of the checkpoint readers, shared by zip.c, pickle.c,
 * safetensors.c and ckpt.c, and used directly by tests/unit/test_ckpt.c
 * (to run the pickle machine on damaged input without the zip's CRCs). */
#ifndef PM_CKPT_INTERNAL_H
#define PM_CKPT_INTERNAL_H

#include "ckpt/ckpt.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ zip */

typedef struct pm_zip_entry {
    const uint8_t *name;   /* points into the central directory; not NUL-terminated */
    size_t name_len;
    uint64_t csize, usize; /* compressed / uncompressed sizes (ZIP64 resolved) */
    uint64_t local_off;    /* offset of the local file header */
    uint32_t crc;
    uint16_t method, flags;
    const uint8_t *data;   /* contents once read (mapped bytes or `owned`); NULL before */
    uint8_t *owned;        /* inflated contents (pm_malloc), owned by the pm_zip */
    int verified;          /* CRC checked */
} pm_zip_entry;

typedef struct pm_zip {
    const uint8_t *base;   /* the whole file; not owned */
    size_t size;
    pm_zip_entry *entries; /* pm_malloc; count entries */
    size_t count;
    size_t *by_name;       /* entry indices sorted by name (pm_malloc) */
    int skip_crc;          /* PM_CKPT_NO_CRC: fuzzing only */
    int release;           /* base is a private read-only file mapping: a stored
                              entry's pages are given back once its CRC is
                              checked (they are read from the file again when
                              the tensor is used) */
} pm_zip;

/* Reads the central directory of the zip archive in base[0, size). `what`
 * names the file in messages ("checkpoint best.ckpt"). The pm_zip borrows
 * `base`; release with pm_zip_close. */
int pm_zip_open(pm_zip *z, const uint8_t *base, size_t size, const char *what);
/* Frees the entry table and every inflated buffer; safe on a zeroed pm_zip. */
void pm_zip_close(pm_zip *z);
/* The entry named exactly name[0, len), or NULL. */
pm_zip_entry *pm_zip_find(pm_zip *z, const char *name, size_t len);
/* The entry with the shortest name that equals `base` or ends with "/" base, or NULL. */
pm_zip_entry *pm_zip_find_base(pm_zip *z, const char *base);
/* Contents of an entry: stored entries are returned in place, deflated ones
 * are inflated once into a buffer the pm_zip owns. The CRC is checked the
 * first time (then, with z->release, a stored entry's pages are released).
 * *data stays valid until pm_zip_close. */
int pm_zip_read(pm_zip *z, pm_zip_entry *e, const char *what, const uint8_t **data, size_t *len);

/* Gives back the resident pages of [p, p + n), part of a private read-only
 * file mapping: touched again, they are read from the file again. */
void pm_map_release(const void *p, size_t n);

/* --------------------------------------------------------------- pickle */

enum pm_pv_kind {
    PV_NONE, PV_BOOL, PV_INT, PV_BIGINT, PV_FLOAT, PV_STR, PV_BYTES,
    PV_TUPLE, PV_LIST, PV_DICT, PV_SET,
    PV_GLOBAL,  /* a class or function named by module and name */
    PV_OBJECT,  /* an instance of anything pixmend does not know: opaque */
    PV_STORAGE, /* a torch storage named by a persistent id */
    PV_TENSOR
};

/* Callables (and other globals) the machine recognises. */
enum pm_pv_fn {
    FN_UNKNOWN = 0,
    FN_ORDERED_DICT,      /* collections.OrderedDict, builtins.dict */
    FN_REBUILD_TENSOR,    /* torch._utils._rebuild_tensor (v1) */
    FN_REBUILD_TENSOR_V2, /* torch._utils._rebuild_tensor_v2 */
    FN_REBUILD_TENSOR_V3, /* torch._utils._rebuild_tensor_v3 (explicit dtype) */
    FN_REBUILD_PARAMETER, /* torch._utils._rebuild_parameter(_with_state) */
    FN_REBUILD_FROM_TYPE, /* torch._tensor._rebuild_from_type_v2 */
    FN_STORAGE_TYPE,      /* torch.FloatStorage and friends; dtype in glob.dtype */
    FN_TORCH_DTYPE        /* torch.float32 and friends; dtype in glob.dtype */
};

typedef struct pm_pv pm_pv;

typedef struct pm_pv_tensor {
    const pm_pv *storage; /* a PV_STORAGE */
    int64_t offset;       /* in elements */
    int ndim;
    int64_t shape[PM_MAX_DIMS];
    int64_t stride[PM_MAX_DIMS];
    enum pm_dtype dtype;
} pm_pv_tensor;

/* A pickle value. Everything (values, item arrays) lives in the pm_pickle's
 * pool; strings point into the pickle bytes. */
struct pm_pv {
    enum pm_pv_kind kind;
    union {
        int64_t i;   /* BOOL, INT */
        double f;    /* FLOAT */
        struct { const char *p; size_t n; } s;             /* STR, BYTES (not NUL-terminated) */
        struct { pm_pv **v; size_t n, cap; } seq;          /* TUPLE, LIST, SET */
        struct { pm_pv **k, **v; size_t n, cap; } dict;    /* DICT, in insertion order */
        struct {
            const char *mod, *name; size_t mod_n, name_n;
            enum pm_pv_fn fn;
            int dtype;     /* FN_STORAGE_TYPE / FN_TORCH_DTYPE: enum pm_dtype, -1 if unsupported */
            int size;      /* FN_STORAGE_TYPE: bytes per element, 0 if unknown */
        } glob;                                            /* GLOBAL */
        struct {
            const pm_pv *cls;  /* the GLOBAL it was made from, or NULL */
            const char *why;   /* static text when this stands for a skipped tensor, else NULL */
            const pm_pv *state; /* what the first BUILD gave it (a module's attribute dict), or NULL */
        } obj;                                             /* OBJECT */
        struct {
            int dtype, elsize;  /* enum pm_dtype (-1 unsupported); bytes per element (0 unknown) */
            const char *key; size_t key_n;
            const pm_pv *type;
            int64_t numel;      /* as the persistent id says, -1 if absent */
            int64_t view_off;   /* legacy storage views: offset in elements into the keyed storage */
        } storage;                                         /* STORAGE */
        pm_pv_tensor *t;                                   /* TENSOR */
    } u;
};

typedef struct pm_pickle pm_pickle;

/* Runs the pickle machine over buf[0, len) (the bytes must outlive the
 * result). On success *out owns every value (pm_pickle_free) and *root is
 * the unpickled object. `what` names the file in messages. */
int pm_pickle_run(const uint8_t *buf, size_t len, const char *what, pm_pickle **out, pm_pv **root);
/* PM_PICKLE_STRICT: refuse every global outside a TorchScript module tree's
 * (__torch__.*, torch.*, containers); without it only globals no checkpoint
 * needs (os, subprocess, eval, ...) are refused. Either way nothing is ever
 * called. */
#define PM_PICKLE_STRICT 1u
/* pm_pickle_run with the pickle's name in messages (`part`, e.g.
 * "data.pkl"), flags, and *used (may be NULL) = the bytes up to and
 * including STOP, for streams of several pickles. */
int pm_pickle_run_ex(const uint8_t *buf, size_t len, const char *what, const char *part, unsigned flags,
                     pm_pickle **out, pm_pv **root, size_t *used);
/* Resolves a persistent id other than ('storage', ...): a value the
 * resolver owns (it must outlive the pickle's use), or NULL for an opaque
 * object. */
typedef pm_pv *(*pm_persid_fn)(void *user, const pm_pv *pid);
/* pm_pickle_run_ex with a resolver for other persistent ids. */
int pm_pickle_run_persid(const uint8_t *buf, size_t len, const char *what, const char *part, unsigned flags,
                         pm_persid_fn persid, void *user, pm_pickle **out, pm_pv **root, size_t *used);
void pm_pickle_free(pm_pickle *p);
/* Every storage the pickle's persistent ids named, in order (duplicates
 * included); the array belongs to p. */
size_t pm_pickle_storages(const pm_pickle *p, const pm_pv *const **out);
/* pickle_globals.c: sets g's fn, dtype and size from its module and name. */
void pm_pickle_classify(pm_pv *g);
/* Why global g is refused (static text), or NULL when it may appear. */
const char *pm_pickle_refused(const pm_pv *g, int strict);

/* ------------------------------------------------------------ the table */

typedef struct pm_ckpt_tensor {
    pm_tensor_ref ref;  /* ref.name is owned (pm_malloc) */
    void *owned;        /* materialised data (pm_malloc) or NULL when ref.data is borrowed */
    size_t order;       /* insertion rank, to keep the last of duplicate names */
} pm_ckpt_tensor;

struct pm_ckpt {
    char what[300];       /* "checkpoint best.ckpt", used in messages */
    char *prefix;         /* owned; NULL = all keys */
    char *anchor;         /* owned; pm_ckpt_open_rooted's anchor, or NULL */
    char *hint;           /* owned; model family named in missing-tensor messages */
    const uint8_t *base;  /* the file's bytes */
    size_t size;
    void *map;            /* mmap of the file (owned) or NULL for pm_ckpt_open_mem */
    size_t map_len;
    pm_zip zip;           /* PyTorch archives only */
    pm_ckpt_tensor *t;    /* pm_malloc; count entries */
    int count, cap;
    int *by_name;         /* indices into t sorted by name */
    unsigned flags;       /* PM_CKPT_* */
    const char *format;   /* static: "PyTorch zip", "TorchScript", ... */
    int seen;             /* tensors met before the prefix filter */
    char other[160];      /* the first name the prefix filter dropped */
};

/* Adds a tensor (name copied) unless the prefix filter rejects it. `data` is
 * borrowed when `owned` is NULL; when `owned` is set the table takes it. */
int pm_ckpt_add(pm_ckpt *ck, const char *name, enum pm_dtype dt, int ndim, const int64_t *shape,
                const void *data, size_t nbytes, void *owned);
/* Does the prefix filter keep `name`? Readers call it once per tensor they
 * meet; it counts them and remembers a dropped name for messages. */
int pm_ckpt_wants(pm_ckpt *ck, const char *name);

/* pm_ckpt_open_mem with flags. PM_CKPT_NO_CRC accepts zip entries whose
 * CRC-32 differs: for the fuzz target only, so that its mutations reach the
 * pickle machine and the table builder instead of stopping at the CRC. */
#define PM_CKPT_NO_CRC 1u
int pm_ckpt_open_mem_flags(const void *data, size_t len, const char *name, const char *prefix, unsigned flags,
                           pm_ckpt **out);
/* The same, rooted as pm_ckpt_open_rooted (for the fuzz target). */
int pm_ckpt_open_mem_rooted(const void *data, size_t len, const char *name, const char *prefix, const char *anchor,
                            unsigned flags, pm_ckpt **out);

/* Finds a tensor's storage bytes: 0 and *bytes, *len (borrowed) or an error. */
typedef int (*pm_storage_fn)(pm_ckpt *ck, void *user, const char *name, const pm_pv *storage,
                             const uint8_t **bytes, size_t *len);
/* Adds the tensors of an unpickled torch object to the table: the dict at
 * 'state_dict' / 'params_ema' / 'params' or the top-level dict, nested dicts
 * flattened; or a TorchScript module tree (__torch__ objects and their
 * attribute dicts, names joined with '.'). Errors name the file and say what
 * the object is when it holds no tensors. */
int pm_torch_collect(pm_ckpt *ck, const pm_pv *root, int torchscript, pm_storage_fn storage, void *user);

/* Fills the table from a safetensors file (ck->base, ck->size). */
int pm_safetensors_load(pm_ckpt *ck);
/* Fills the table from a PyTorch zip archive (ck->base, ck->size):
 * torch.save's and torch.jit.save's (TorchScript). */
int pm_torchzip_load(pm_ckpt *ck);
/* Fills the table from PyTorch's legacy serialization (before 1.6). */
int pm_legacy_load(pm_ckpt *ck);
/* Fills the table from PyTorch's oldest serialization (before 0.4): a tar
 * with members storages, tensors and pickle. */
int pm_legacy_tar_load(pm_ckpt *ck);

/* Element count of a shape, or -1 if a dimension is negative or it overflows. */
int64_t pm_shape_numel(int ndim, const int64_t *shape);

#endif
