/* DDColor, the colorization network (ConvNeXt encoder, pixel decoder,
 * multi-scale colour decoder, refine conv), from its official checkpoints:
 * DDColor-L, DDColor-T, and any reduced configuration, recognised from the
 * tensor names and shapes. The image pipeline around it (Lab, resizing,
 * merging) is src/pipeline/colorize.c. */
#ifndef PM_MODELS_DDCOLOR_H
#define PM_MODELS_DDCOLOR_H

#include "models/model.h"

/* What a checkpoint says about the network. */
typedef struct pm_ddcolor_config {
    int depths[4];  /* ConvNeXt blocks per stage */
    int dims[4];    /* ConvNeXt channels per stage */
    int nf;         /* pixel decoder width (512 in the releases) */
    int embed;      /* channels of the full-resolution features = nf / 2 */
    int hidden;     /* colour decoder width (256) */
    int queries;    /* colour queries (100) */
    int scales;     /* memory levels (3) */
    int layers;     /* colour decoder layers (9) */
    int ffn;        /* FFN width (2048) */
    int heads;      /* attention heads (8; not stored in the file) */
} pm_ddcolor_config;

typedef struct pm_ddcolor pm_ddcolor;

/* Loads a .pth ({'params': state_dict}) or a bare state dict
 * (pytorch_model.bin). Spectral norms and BatchNorms are folded here. The
 * checkpoint stays mapped: float32 weights are used in place (fp32), or
 * converted when a plan is built (opts->precision PM_PREC_BF16: the encoder
 * and the pixel decoder in bf16, the colour decoder in fp32; needs a CPU
 * with native bf16, pm_nn_cpu_has_bf16).
 * Errors: PM_ENOENT/PM_EIO/PM_EFORMAT from the reader; PM_ECHECKPOINT naming
 * the missing or misshapen tensor. Caller owns *out (pm_ddcolor_free). */
int pm_ddcolor_load(const char *path, const pm_model_opts *opts, pm_ddcolor **out);
void pm_ddcolor_free(pm_ddcolor *m);

const pm_ddcolor_config *pm_ddcolor_config_of(const pm_ddcolor *m);

/* Number of progress steps one prediction reports (ctx->progress gets
 * value 1..max with this max). */
int pm_ddcolor_progress_steps(const pm_ddcolor *m);

/* Runs the network on a size x size RGB image in [0,1], planar (3 planes of
 * size*size floats), and writes Lab a and b (raw units) planar to ab (2 planes).
 * size: a multiple of 32, at least 32. The first call for a size builds the
 * plan (primitives and buffers) for it; calls with the same size reuse it.
 * Calls on one model are serialised. Returns PM_ECANCELLED when ctx->progress
 * asks to stop. Buffers belong to the caller. */
int pm_ddcolor_predict(pm_ddcolor *m, const float *rgb, int size, float *ab, const pm_run_ctx *ctx);

/* Work (GFLOP) of one prediction at the planned size; 0 before the first. */
double pm_ddcolor_gflop(const pm_ddcolor *m);

/* Per-layer timing of the cached plan: file NULL starts counting (from
 * zero); a FILE* prints the table of the runs since, and stops. */
void pm_ddcolor_profile(pm_ddcolor *m, void *file);

/* Frees the cached plan (its buffers and reordered weights); the next
 * prediction builds one again. For an idle server, and for measuring. */
void pm_ddcolor_trim(pm_ddcolor *m);

/* Bytes of working memory (activations and reordered weights) the plan for
 * `size` holds: exact for a size that has been planned, else estimated from
 * the configuration. */
uint64_t pm_ddcolor_workspace_bytes(const pm_ddcolor *m, int size);

/* The model registry entry (name "ddcolor", task colorize, needs a file):
 * colorize() is pm_ddcolor_predict; mem_estimate() the whole job at an input
 * size, with the colorize pipeline's own buffers (9 floats per input pixel,
 * its index tables and the output image: pipeline/colorize.c). */
extern const pm_model_desc pm_model_ddcolor;

/* DDColor's default input size (the reference's 512). */
#define PM_DDCOLOR_SIZE_DEFAULT 512

/* Bytes of weights the model holds (mapped or owned). The mapped file pages
 * are released after loading and become resident with the first prediction:
 * count this as the model's memory from load time on. */
uint64_t pm_ddcolor_weight_bytes(const pm_ddcolor *m);

#endif
