/* Checkpoint readers: PyTorch zip+pickle files (torch.save, incl. PyTorch
 * Lightning .ckpt), TorchScript archives (torch.jit.save), PyTorch's legacy
 * serialization and safetensors, exposed as one name -> tensor table. A
 * directory (a Hugging Face snapshot or repository folder, a ModelScope
 * model folder) stands for the one weights file inside it. */
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
/* pm_ckpt_open for one model inside a file that may name it from another
 * root: when no tensor is named prefix+anchor (e.g. "generator." +
 * "model.1.ffc.convl2l.weight") but one is named R+anchor (R empty or ending
 * in '.'), the tensors under R are renamed prefix+rest and the others
 * dropped. So a bare state dict, a TorchScript module of the network or of a
 * wrapper holding it read as the official layout (prefix NULL or "": the
 * tensors under R keep only the rest). Caller owns *out. */
int pm_ckpt_open_rooted(const char *path, const char *prefix, const char *anchor, pm_ckpt **out);
void pm_ckpt_close(pm_ckpt *ck);

/* "checkpoint best.ckpt" as messages name it; never NULL. */
const char *pm_ckpt_what(const pm_ckpt *ck);
/* The file's format: "PyTorch zip", "TorchScript", "PyTorch legacy" or
 * "safetensors" (static). */
const char *pm_ckpt_format(const pm_ckpt *ck);

/* What the first bytes of a file say it is. */
enum { PM_CKPT_KIND_NONE = 0, PM_CKPT_KIND_ZIP, PM_CKPT_KIND_SAFETENSORS, PM_CKPT_KIND_LEGACY };
int pm_ckpt_sniff(const uint8_t *b, size_t n);
/* The same of the file `path` by its first 16 bytes; NONE when unreadable. */
int pm_ckpt_sniff_file(const char *path);

/* The weights file `path` stands for, into out[0, n): path itself unless it
 * is a directory; a directory with snapshots/ (a Hugging Face repository
 * folder) stands for the snapshot refs/main names (else its only or newest
 * one); a folder stands for the one weights file in it, recognised by its
 * content (safetensors preferred where the same folder also has a PyTorch
 * file). Fails (PM_ENOENT, PM_EINVAL) with a message naming the folder and
 * what it holds. */
int pm_ckpt_resolve(const char *path, char *out, size_t n);

int pm_ckpt_count(const pm_ckpt *ck);
const pm_tensor_ref *pm_ckpt_at(const pm_ckpt *ck, int i);
/* NULL if absent. */
const pm_tensor_ref *pm_ckpt_find(const pm_ckpt *ck, const char *name);

/* How many of the names <pre><first><post>, <pre><first + 1><post>, ...
 * the table holds in a row. */
int pm_ckpt_count_run(const pm_ckpt *ck, const char *pre, int first, const char *post);

/* Finds tensor `name` and checks that it has exactly `ndim` dims of `shape`;
 * errors (PM_ECHECKPOINT) name the tensor and say what was expected and
 * what was found. */
int pm_ckpt_check(const pm_ckpt *ck, const char *name, int ndim, const int64_t *shape, const pm_tensor_ref **out);

/* Copies tensor `name` into dst as float32 (converting f16/bf16/f64), after
 * checking it has exactly `ndim` dims of `shape`. Errors (PM_ECHECKPOINT) name
 * the tensor and say what was expected and what was found. */
int pm_ckpt_get_f32(const pm_ckpt *ck, const char *name, int ndim, const int64_t *shape, float *dst);

/* Gives back the resident file pages behind tensor r (NULL: the whole file),
 * for a caller that has read r once and will not read it again soon (e.g.
 * after converting it to its own layout): without this the whole file stays
 * resident next to the weights made from it until pm_ckpt_close. Only ck's
 * own mapping (pm_ckpt_open) is affected; copies the reader made and
 * checkpoints opened from memory are left alone. r stays valid: a page
 * touched again is read from the file again. */
void pm_ckpt_release(const pm_ckpt *ck, const pm_tensor_ref *r);

/* Like pm_ckpt_release for the n bytes at p, e.g. weights a caller has
 * converted from a tensor: only pages of ck's own mapping are given back,
 * anything else (a copy the reader made, the caller's memory) is left alone. */
void pm_ckpt_release_bytes(const pm_ckpt *ck, const void *p, size_t n);

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
