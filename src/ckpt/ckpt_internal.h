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
 * first time. *data stays valid until pm_zip_close. */
int pm_zip_read(pm_zip *z, pm_zip_entry *e, const char *what, const uint8_t **data, size_t *len);

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
        } glob;                                            /* GLOBAL */
        struct {
            const pm_pv *cls;  /* the GLOBAL it was made from, or NULL */
            const char *why;   /* static text when this stands for a skipped tensor, else NULL */
        } obj;                                             /* OBJECT */
        struct { int dtype; const char *key; size_t key_n; const pm_pv *type; } storage; /* STORAGE */
        pm_pv_tensor *t;                                   /* TENSOR */
    } u;
};

typedef struct pm_pickle pm_pickle;

/* Runs the pickle machine over buf[0, len) (the bytes must outlive the
 * result). On success *out owns every value (pm_pickle_free) and *root is
 * the unpickled object. `what` names the file in messages. */
int pm_pickle_run(const uint8_t *buf, size_t len, const char *what, pm_pickle **out, pm_pv **root);
void pm_pickle_free(pm_pickle *p);

/* ------------------------------------------------------------ the table */

typedef struct pm_ckpt_tensor {
    pm_tensor_ref ref;  /* ref.name is owned (pm_malloc) */
    void *owned;        /* materialised data (pm_malloc) or NULL when ref.data is borrowed */
    size_t order;       /* insertion rank, to keep the last of duplicate names */
} pm_ckpt_tensor;

struct pm_ckpt {
    char what[300];       /* "checkpoint best.ckpt", used in messages */
    char *prefix;         /* owned; NULL = all keys */
    char *hint;           /* owned; model family named in missing-tensor messages */
    const uint8_t *base;  /* the file's bytes */
    size_t size;
    void *map;            /* mmap of the file (owned) or NULL for pm_ckpt_open_mem */
    size_t map_len;
    pm_zip zip;           /* PyTorch archives only */
    pm_ckpt_tensor *t;    /* pm_malloc; count entries */
    int count, cap;
    int *by_name;         /* indices into t sorted by name */
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

/* Fills the table from a safetensors file (ck->base, ck->size). */
int pm_safetensors_load(pm_ckpt *ck);
/* Fills the table from a PyTorch zip archive (ck->base, ck->size). */
int pm_torchzip_load(pm_ckpt *ck);

/* Element count of a shape, or -1 if a dimension is negative or it overflows. */
int64_t pm_shape_numel(int ndim, const int64_t *shape);

#endif
