/* Finding the weights people already have: the usual caches (torch hub,
 * Hugging Face hub, ModelScope) and folders given, each file recognised by
 * its content (tensor names and shapes), never by its name. */
#ifndef PM_MODELS_DISCOVER_H
#define PM_MODELS_DISCOVER_H

#include "pixmend.h"

#define PM_DISCOVER_MAX_DIRS 16

typedef struct pm_found {
    char path[4096];      /* the weights file */
    const char *model;    /* "lama" or "ddcolor" (static) */
    char variant[80];     /* "big-lama (ngf 64, 18 blocks)", "large (ConvNeXt-L)", ... */
    char format[32];      /* "TorchScript", "PyTorch zip", "PyTorch legacy", "safetensors" */
    uint64_t size;        /* bytes on disk */
    int64_t mtime;        /* seconds since the epoch */
    uint64_t params;      /* elements of the model's tensors (larger = the fuller variant) */
} pm_found;

/* The folders searched by default, existing or not, into dirs[0, max): from
 * $XDG_CACHE_HOME (else $HOME/.cache): torch/hub/checkpoints (or
 * $TORCH_HOME/hub/checkpoints), huggingface/hub (or $HF_HUB_CACHE,
 * $HF_HOME/hub), modelscope/hub (or $MODELSCOPE_CACHE). Returns the count. */
int pm_discover_default_dirs(char dirs[][4096], int max);

/* Scans the folders (files given are identified directly): links to files
 * are followed, links to folders and hidden entries are not, Hugging Face
 * blobs/ are passed over (their snapshots link to them), depth at most 8.
 * *out (caller owns, pm_free) holds *n entries sorted by model, then
 * largest variant first, then path. */
int pm_discover(const char *const *dirs, int ndirs, pm_found **out, int *n);

/* The entry to load for `model` ("lama", "ddcolor"): the largest variant,
 * then the newest file; -1 if none. */
int pm_discover_best(const pm_found *f, int n, const char *model);

#endif
