/* Checkpoint readers: PyTorch zip+pickle files (torch.save, incl. PyTorch
 * Lightning .ckpt) and safetensors, exposed as one name -> tensor table. */
#ifndef PM_CKPT_H
#define PM_CKPT_H

#include "pixmend.h"

enum pm_dtype { PM_DT_F32 = 0, PM_DT_F16, PM_DT_BF16, PM_DT_F64, PM_DT_I64, PM_DT_I32, PM_DT_I16, PM_DT_I8, PM_DT_U8, PM_DT_BOOL };

#define PM_MAX_DIMS 8

typedef struct pm_tensor_ref {
    const char *name;          /* full key, e.g. "generator.model.1.ffc.convl2l.weight" */
    enum pm_dtype dtype;
    int ndim;
    int64_t shape[PM_MAX_DIMS];
    const void *data;          /* contiguous, little-endian; owned by the pm_ckpt */
    size_t nbytes;
} pm_tensor_ref;

typedef struct pm_ckpt pm_ckpt;

/* Opens a checkpoint (format detected from content). The tensor table is the
 * dict of tensors found at 'state_dict', else 'params_ema'/'params', else the
 * top level; keys of nested dicts are joined with '.'. When `prefix` is not
 * NULL only keys starting with it are kept. Objects of unknown classes in the
 * pickle are skipped, never fatal. Caller owns *out (pm_ckpt_close). */
int pm_ckpt_open(const char *path, const char *prefix, pm_ckpt **out);
void pm_ckpt_close(pm_ckpt *ck);

int pm_ckpt_count(const pm_ckpt *ck);
const pm_tensor_ref *pm_ckpt_at(const pm_ckpt *ck, int i);
/* NULL if absent. */
const pm_tensor_ref *pm_ckpt_find(const pm_ckpt *ck, const char *name);

/* Copies tensor `name` into dst as float32 (converting f16/bf16/f64), after
 * checking it has exactly `ndim` dims of `shape`. Errors (PM_ECHECKPOINT) name
 * the tensor and say what was expected and what was found. */
int pm_ckpt_get_f32(const pm_ckpt *ck, const char *name, int ndim, const int64_t *shape, float *dst);

/* Gives back the resident file pages behind tensor r, for a caller that has
 * read r once and will not read it again soon (e.g. after converting it to
 * its own layout): without this the whole file stays resident next to the
 * weights made from it until pm_ckpt_close. Only tensors in ck's own mapping
 * (pm_ckpt_open) are affected; copies the reader made and checkpoints opened
 * from memory are left alone. r stays valid: a page touched again is read
 * from the file again. NULL r is fine. */
void pm_ckpt_release(const pm_ckpt *ck, const pm_tensor_ref *r);

/* Like pm_ckpt_open on bytes already in memory; `name` (e.g. the file's
 * name) is used in messages. The bytes are borrowed: they must stay valid
 * and unchanged until pm_ckpt_close. Caller owns *out. */
int pm_ckpt_open_mem(const void *data, size_t len, const char *name, const char *prefix, pm_ckpt **out);

/* Names the model family the caller expects (e.g. "big-lama"); missing-tensor
 * messages then ask "is this a big-lama checkpoint?". The string is copied. */
int pm_ckpt_set_hint(pm_ckpt *ck, const char *family);

const char *pm_dtype_name(enum pm_dtype dt);
size_t pm_dtype_size(enum pm_dtype dt);

#endif
