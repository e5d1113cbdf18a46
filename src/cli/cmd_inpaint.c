/* pixmend inpaint IMAGE MASK -o OUT: one image, a progress bar on a terminal. */
#include "cli/batch.h"
#include "cli/cli.h"
#include "cli/meta_cli.h"
#include "cli/progress.h"
#include "models/model.h"
#include "pipeline/mask.h"
#include "pipeline/pipeline.h"
#include "pipeline/resample.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const pm_optdef opts[] = {
    {"output", 'o', 1},        {"model", 'm', 1},      {"hd-strategy", 0, 1}, {"resize-limit", 0, 1},
    {"crop-margin", 0, 1},     {"precision", 0, 1},    {"threads", 't', 1},   {"seed", 0, 1},
    {"quality", 'q', 1},       {"mask-resize", 0, 0},  {"max-pixels", 0, 1},  {"max-side", 0, 1},
    {"max-file-bytes", 0, 1},  {"quiet", 0, 0},        {"mask-dilate", 0, 1},
    {"batch", 0, 0},           {"jobs", 'j', 1},       {"overwrite", 0, 0},   {"mem-budget", 0, 1},
    PM_CLI_META_OPTS,
    {0},
};

/* Picks the model named by --model: a registered name, or a weights file for
 * the inpainting model that needs one (LaMa). */
static const pm_model_desc *choose_model(const char *arg, const char **file)
{
    *file = NULL;
    if (!arg)
        arg = "patchmatch";
    const pm_model_desc *m = pm_model_find(arg);
    if (m && m->task == PM_TASK_INPAINT && !m->needs_file)
        return m;
    struct stat st;
    if (m && m->task == PM_TASK_INPAINT && stat(arg, &st) != 0) {
        pm_errorf(PM_EINVAL, "model %s needs its weights: give the checkpoint file, e.g. --model "
                             "big-lama/models/best.ckpt", arg);
        return NULL;
    }
    if (m && m->task != PM_TASK_INPAINT && stat(arg, &st) != 0) {
        pm_errorf(PM_EINVAL, "model %s colorizes; use `pixmend colorize`, or --model patchmatch or a LaMa "
                             "checkpoint here", arg);
        return NULL;
    }
    if (stat(arg, &st) != 0) {
        pm_errorf(PM_ENOENT, "--model %s is neither a model name (patchmatch) nor an existing file", arg);
        return NULL;
    }
    m = pm_model_find("lama");
    if (!m) {
        pm_errorf(PM_EUNSUPPORTED, "--model %s: this build has no LaMa engine; use --model patchmatch", arg);
        return NULL;
    }
    *file = arg;
    return m;
}

/* Does the file name (its last path component) have an extension? */
static int has_extension(const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *dot = strrchr(base, '.');
    return dot && dot != base;
}

/* Sets *eo for the output: in `out_fmt` (PM_FMT_UNKNOWN: the input's), like
 * the input when the formats match and `quality` (0 = not given) does not
 * say otherwise: a JPEG's estimated quality, WebP lossless when it was. */
static int encode_like_input(const char *input, enum pm_format out_fmt, int quality, pm_encode_opts *eo)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    pm_encode_opts like;
    int rc = pm_read_file(input, 0, &bytes, &len);
    if (rc == 0)
        rc = pm_encode_opts_like(bytes, len, &like);
    pm_free(bytes);
    if (rc)
        return rc;
    if (out_fmt == PM_FMT_UNKNOWN || out_fmt == like.format)
        *eo = like;
    else
        *eo = pm_default_encode_opts(out_fmt);
    if (quality > 0) {
        eo->quality = quality;
        eo->lossless = 0;
    }
    return 0;
}

static int fail(const char *what)
{
    const char *d = pm_error_detail();
    fprintf(stderr, "pixmend inpaint: %s%s%s\n", what ? what : "", what && *d ? ": " : "", d);
    return 1;
}

static int run(int argc, char **argv)
{
    pm_args a;
    int rc = pm_cli_parse(&pm_cmd_inpaint, opts, 2, 2, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *out_path = pm_cli_get(opts, &a, "output");
    pm_batch_spec bs = {.images = a.pos[0], .masks = a.pos[1], .out_dir = out_path};
    if (pm_batch_options(&pm_cmd_inpaint, opts, &a, &bs))
        return 2;
    if (!out_path) {
        pm_cli_error(&pm_cmd_inpaint, "missing -o OUT, the file to write (.png, .jpg or .webp)");
        return 2;
    }
    enum pm_format out_fmt = bs.cmd ? PM_FMT_PNG : pm_format_from_name(out_path);
    /* No extension at all: the input's format, chosen once it is read. */
    if (out_fmt == PM_FMT_UNKNOWN && has_extension(out_path)) {
        pm_cli_error(&pm_cmd_inpaint, "cannot tell the output format from '%s'; end it in .png, .jpg, .jpeg or .webp, "
                     "or leave the extension off to keep the input's format", out_path);
        return 2;
    }
    pm_limits lim = pm_default_limits();
    if (pm_cli_limits(&pm_cmd_inpaint, opts, &a, &lim))
        return 2;
    pm_inpaint_opts io = pm_inpaint_default_opts();
    pm_model_opts mo = {0};
    pm_encode_opts eo = pm_default_encode_opts(out_fmt);
    const char *v;
    long n;
    if ((v = pm_cli_get(opts, &a, "hd-strategy"))) {
        int s = pm_hd_strategy_parse(v);
        if (s < 0) {
            pm_cli_error(&pm_cmd_inpaint, "--hd-strategy must be auto, original, resize or crop, not '%s'", v);
            return 2;
        }
        io.strategy = (pm_hd_strategy)s;
    }
    if (pm_cli_opt_int(&pm_cmd_inpaint, opts, &a, "resize-limit", 64, 16384, &io.resize_limit))
        return 2;
    if (pm_cli_opt_int(&pm_cmd_inpaint, opts, &a, "crop-margin", 0, 4096, &io.crop_margin))
        return 2;
    if ((v = pm_cli_get(opts, &a, "precision"))) {
        if (strcmp(v, "fp32") == 0)
            mo.precision = PM_PREC_FP32;
        else if (strcmp(v, "bf16") == 0)
            mo.precision = PM_PREC_BF16;
        else {
            pm_cli_error(&pm_cmd_inpaint, "--precision must be fp32 or bf16, not '%s'", v);
            return 2;
        }
    }
    if (pm_cli_opt_int(&pm_cmd_inpaint, opts, &a, "threads", 1, 1024, &mo.threads))
        return 2;
    if ((v = pm_cli_get(opts, &a, "seed"))) {
        if (pm_cli_int(&pm_cmd_inpaint, "seed", v, 0, 2147483647L, &n))
            return 2;
        mo.seed = (uint64_t)n;
    }
    if (pm_cli_opt_int(&pm_cmd_inpaint, opts, &a, "quality", 1, 100, &eo.quality))
        return 2;
    if (pm_cli_opt_int(&pm_cmd_inpaint, opts, &a, "mask-dilate", -PM_MASK_DILATE_MAX, PM_MASK_DILATE_MAX,
                       &io.mask_dilate))
        return 2;

    if (bs.cmd) {
        bs.lim = lim, bs.mo = mo, bs.io = io;
        bs.meta = pm_cli_meta_policy(opts, &a);
        if (!(bs.model = choose_model(pm_cli_get(opts, &a, "model"), &bs.weights)))
            return fail(NULL);
        return pm_batch_run(&bs);
    }
    pm_image img = {0}, mask = {0}, out = {0};
    pm_image_meta meta = {0};
    void *state = NULL;
    int status = 1;
    if (pm_image_load_meta(a.pos[0], &lim, &img, &meta) != 0) {
        status = fail(a.pos[0]);
        goto free_images;
    }
    if (pm_image_load(a.pos[1], &lim, &mask) != 0) {
        status = fail(a.pos[1]);
        goto free_images;
    }
    if (mask.width != img.width || mask.height != img.height) {
        if (!pm_cli_get(opts, &a, "mask-resize")) {
            pm_errorf(PM_EMISMATCH, "the mask is %dx%d but the image is %dx%d; give a mask of the image's size or pass --mask-resize",
                      mask.width, mask.height, img.width, img.height);
            status = fail(NULL);
            goto free_images;
        }
        pm_image resized = {0};
        if (pm_resize_nearest(&resized, &mask, img.width, img.height) != 0) {
            status = fail("resizing the mask");
            goto free_images;
        }
        pm_image_free(&mask);
        mask = resized;
    }
    if (encode_like_input(a.pos[0], out_fmt, pm_cli_get(opts, &a, "quality") ? eo.quality : 0, &eo) != 0) {
        status = fail(a.pos[0]);
        goto free_images;
    }
    const char *weights;
    const pm_model_desc *m = choose_model(pm_cli_get(opts, &a, "model"), &weights);
    if (!m) {
        status = fail(NULL);
        goto free_images;
    }
    if (m->load(weights, &mo, &state) != 0) {
        status = fail(weights ? weights : m->name);
        goto free_images;
    }
    pm_bar bar;
    pm_bar_init(&bar, m->name, pm_cli_get(opts, &a, "quiet") != NULL);
    pm_run_ctx ctx = {pm_bar_update, &bar};
    rc = pm_inpaint_run(m, state, &img, &mask, &io, &out, &ctx);
    pm_bar_finish(&bar);
    if (rc != 0) {
        status = fail(NULL);
        goto unload_model;
    }
    pm_encode_req req = {&out, &img, &meta, eo, pm_cli_meta_policy(opts, &a), 1};
    pm_encode_report rep;
    if (pm_image_save_full(out_path, &req, &rep) != 0) {
        status = fail(out_path);
        goto unload_model;
    }
    pm_cli_meta_notes(&pm_cmd_inpaint, opts, &a, out_path, &rep);
    status = 0;
unload_model:
    m->unload(state);
free_images:
    pm_image_meta_free(&meta);
    pm_image_free(&out);
    pm_image_free(&mask);
    pm_image_free(&img);
    return status;
}

const pm_command pm_cmd_inpaint = {
    "inpaint", "fill the masked parts of an image (remove objects, watermarks, blemishes)",
    "usage: pixmend inpaint IMAGE MASK -o OUT [options]\n"
    "       pixmend inpaint --batch IMAGES_DIR MASKS_DIR|MASK -o OUT_DIR [options]\n\n"
    "Fills the pixels of IMAGE where MASK is non-zero (white) and writes OUT.\n"
    "IMAGE, MASK: PNG, JPEG or WebP. OUT: .png, .jpg/.jpeg or .webp, or a name\n"
    "with no extension for IMAGE's own format (a JPEG at its estimated quality);\n"
    "nothing is written unless the whole run succeeds.\n\n"
    "  -o, --output FILE      the result\n"
    "  -m, --model M          patchmatch (built in, the default) or a LaMa checkpoint\n"
    "                         file such as big-lama/models/best.ckpt, IOPaint's big-lama.pt\n"
    "                         (TorchScript) or a folder holding one (`pixmend models` lists them)\n"
    "  --hd-strategy S        auto (default: crop when the long side exceeds 800 px),\n"
    "                         original, resize, crop\n"
    "  --resize-limit N       long side used by the resize strategy (default 1280)\n"
    "  --crop-margin N        pixels around each masked region for crop (default 128)\n"
    "  --precision P          fp32 (default) or bf16 (LaMa, CPUs with avx512_bf16)\n"
    "  -t, --threads N        compute threads (default: all cores)\n"
    "  --seed N               PatchMatch random seed (default 0)\n"
    "  -q, --quality Q        JPEG/WebP quality 1-100 (default: the input's when it is\n"
    "                         a JPEG written as JPEG, else 92)\n"
    "  --mask-dilate N        grow the mask by N pixels (a disc), or shrink it when N\n"
    "                         is negative; -256 to 256 (default 0)\n"
    "  --mask-resize          accept a mask of another size and resize it to the image\n"
    "  --max-pixels N         refuse larger images: 16000000, 16M or 16MP (default 16M)\n"
    "  --max-side N           refuse images with a longer side (default 8192)\n"
    "  --max-file-bytes B     refuse larger files (default 64M)\n"
    "  --quiet                no progress bar\n\n"
    "Folders (--batch): each image of IMAGES_DIR with the mask of the same base name\n"
    "in MASKS_DIR (any of the extensions), or one MASK file for every image (images of\n"
    "another size are skipped unless --mask-resize); results under the same names in\n"
    "OUT_DIR (created if missing; outside IMAGES_DIR). The model is loaded once; one\n"
    "progress bar; a summary of what was done, skipped and failed; exit 1 if any failed.\n"
    "  --batch                IMAGES_DIR and MASKS_DIR (or MASK) are folders / one mask\n"
    "  -j, --jobs N           images at once (default 1), admitted within --mem-budget\n"
    "                         by the model's memory law, as the service does\n"
    "  --mem-budget B|N%      predicted peak memory the running images may use together\n"
    "                         (default 70% of host memory or the cgroup limit)\n"
    "  --overwrite            replace results that exist (default: skip those images)\n"
    PM_CLI_META_HELP
    "\nThe output keeps the input's ICC profile, EXIF (orientation reset to 1 once\n"
    "applied; the stale thumbnail removed), XMP, DPI, PNG text chunks and 16-bit\n"
    "depth, as far as its format can hold them. JPEG to JPEG keeps every 8x8 block\n"
    "outside the repaired area as it was (no generation loss).\n",
    run,
};
