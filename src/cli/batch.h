/* Folders of photos: `pixmend inpaint --batch` and `pixmend colorize --batch`.
 *
 * The sub-commands parse their usual options and hand a pm_batch_spec to
 * pm_batch_run, which checks the folders, pairs images with masks by base
 * name (or applies one mask file to every image), loads the model once and
 * runs the images on --jobs threads admitted by the model's memory law
 * against --mem-budget (the service's law and admission rule). */
#ifndef PM_CLI_BATCH_H
#define PM_CLI_BATCH_H

#include "cli/cli.h"
#include "image/meta.h"
#include "models/model.h"
#include "pipeline/colorize.h"
#include "pipeline/pipeline.h"

typedef struct pm_batch_spec {
    const pm_command *cmd;
    const char *images;   /* IMAGES_DIR */
    const char *masks;    /* inpaint: MASKS_DIR or one mask file; colorize: NULL */
    const char *out_dir;  /* OUT_DIR (created when missing) */
    int jobs;             /* images at once, >= 1 */
    uint64_t mem_budget;  /* bytes the running images may use together */
    int overwrite;        /* replace existing results */
    int quiet;            /* no progress bar */
    int mask_resize;      /* scale a mask of another size to the image */
    int quality;          /* JPEG/WebP quality; 0 = the input's (estimated) */
    pm_limits lim;
    const pm_model_desc *model; /* the engine (colorize: the registry's "ddcolor") */
    const char *weights;  /* its file, or NULL */
    pm_model_opts mo;
    pm_inpaint_opts io;   /* inpaint */
    pm_colorize_opts co;  /* colorize */
    pm_meta_policy meta;  /* --strip-metadata, --strip-gps, --jpeg-reencode */
} pm_batch_spec;

/* The batch options of `defs` (--jobs, --mem-budget, --overwrite, --quiet,
 * --mask-resize, --quality) into bs; the rest of bs is the caller's.
 * Returns 0, or 2 after an error line. Without --batch, a batch-only option
 * (--jobs, --mem-budget, --overwrite) is a usage error too. */
int pm_batch_options(const pm_command *cmd, const pm_optdef *defs, const pm_args *a, pm_batch_spec *bs);

/* Runs the batch; returns the exit status: 0 all done or skipped, 1 when an
 * image failed or the model could not be loaded, 2 for bad folders (one line
 * on stderr; nothing written). */
int pm_batch_run(const pm_batch_spec *bs);

#endif
