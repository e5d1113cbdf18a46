/* pixmend colorize IMAGE -o OUT --model FILE: one image through DDColor,
 * a progress bar on a terminal. */
#include "base/base.h"
#include "cli/batch.h"
#include "cli/cli.h"
#include "cli/meta_cli.h"
#include "cli/progress.h"
#include "models/model.h"
#include "pipeline/colorize.h"
#include "sched/options.h"

#include <stdio.h>
#include <string.h>

static const pm_optdef opts[] = {
    {"output", 'o', 1},      {"model", 'm', 1},     {"input-size", 0, 1},     {"upsample", 0, 1},
    {"threads", 't', 1},     {"quality", 'q', 1},   {"max-pixels", 0, 1},     {"max-side", 0, 1},
    {"max-file-bytes", 0, 1}, {"quiet", 0, 0},       {"precision", 0, 1},
    {"batch", 0, 0},          {"jobs", 'j', 1},     {"overwrite", 0, 0},      {"mem-budget", 0, 1},
    PM_CLI_META_OPTS,         {0},
};

/* One line on stderr: "pixmend colorize: WHAT: detail"; returns 1. */
static int fail(const char *what)
{
    const char *d = pm_error_detail();
    fprintf(stderr, "pixmend colorize: %s%s%s\n", what ? what : "", what && *d ? ": " : "", d);
    return 1;
}

static int run(int argc, char **argv)
{
    const pm_command *cmd = &pm_cmd_colorize;
    pm_args a;
    int rc = pm_cli_parse(cmd, opts, 1, 1, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *out_path = pm_cli_get(opts, &a, "output"), *model = pm_cli_get(opts, &a, "model");
    pm_batch_spec bs = {.images = a.pos[0], .out_dir = out_path};
    if (pm_batch_options(cmd, opts, &a, &bs))
        return 2;
    if (!out_path) {
        pm_cli_error(cmd, "missing -o OUT, the file to write (.png, .jpg or .webp)");
        return 2;
    }
    if (!model) {
        pm_cli_error(cmd, "missing --model FILE: DDColor weights such as ddcolor_paper.pth or pytorch_model.bin");
        return 2;
    }
    enum pm_format out_fmt = bs.cmd ? PM_FMT_PNG : pm_format_from_name(out_path);
    if (out_fmt == PM_FMT_UNKNOWN) {
        pm_cli_error(cmd, "cannot tell the output format from '%s'; end it in .png, .jpg, .jpeg or .webp", out_path);
        return 2;
    }
    pm_limits lim = pm_default_limits();
    if (pm_cli_limits(&pm_cmd_colorize, opts, &a, &lim))
        return 2;
    pm_colorize_opts co = pm_colorize_default_opts();
    pm_model_opts mo = {0};
    pm_encode_opts eo = pm_default_encode_opts(out_fmt);
    const char *v;
    if ((v = pm_cli_get(opts, &a, "input-size"))) {
        const pm_option_range *range = pm_option_find("input_size");
        if (pm_option_parse(range, v, &co.input_size)) {
            char what[160];
            pm_option_describe(range, what, sizeof what);
            pm_cli_error(cmd, "--input-size must be %s, not '%s'", what, v);
            return 2;
        }
    }
    if ((v = pm_cli_get(opts, &a, "upsample"))) {
        int u = pm_upsample_parse(v);
        if (u < 0) {
            pm_cli_error(cmd, "--upsample must be nearest or bilinear, not '%s'", v);
            return 2;
        }
        co.upsample = (pm_upsample)u;
    }
    if (pm_cli_opt_int(cmd, opts, &a, "threads", 1, 1024, &mo.threads))
        return 2;
    if ((v = pm_cli_get(opts, &a, "precision"))) {
        if (strcmp(v, "fp32") != 0 && strcmp(v, "bf16") != 0) {
            pm_cli_error(cmd, "--precision must be fp32 or bf16, not '%s'", v);
            return 2;
        }
        mo.precision = strcmp(v, "bf16") == 0 ? PM_PREC_BF16 : PM_PREC_FP32;
    }
    if (pm_cli_opt_int(cmd, opts, &a, "quality", 1, 100, &eo.quality))
        return 2;

    if (bs.cmd) {
        bs.lim = lim, bs.mo = mo, bs.co = co, bs.model = pm_model_find("ddcolor"), bs.weights = model;
        bs.meta = pm_cli_meta_policy(opts, &a);
        return pm_batch_run(&bs);
    }
    pm_image img = {0}, out = {0};
    pm_image_meta meta = {0};
    const pm_model_desc *desc = pm_model_find("ddcolor");
    void *state = NULL;
    int status = 1;
    if (pm_image_load_meta(a.pos[0], &lim, &img, &meta) != 0) {
        status = fail(a.pos[0]);
        goto free_images;
    }
    if (desc->load(model, &mo, &state) != 0) {
        status = fail(NULL);
        goto free_images;
    }
    pm_bar bar;
    pm_bar_init(&bar, "ddcolor", pm_cli_get(opts, &a, "quiet") != NULL);
    pm_run_ctx ctx = {pm_bar_update, &bar};
    rc = pm_colorize_run(desc, state, &img, &co, &out, &ctx);
    pm_bar_finish(&bar);
    if (rc != 0) {
        status = fail(NULL);
        goto free_model;
    }
    /* The whole image changes: no JPEG blocks to keep (keep_blocks 0). */
    pm_encode_req req = {&out, &img, &meta, eo, pm_cli_meta_policy(opts, &a), 0};
    pm_encode_report rep;
    if (pm_image_save_full(out_path, &req, &rep) != 0) {
        status = fail(out_path);
        goto free_model;
    }
    pm_cli_meta_notes(cmd, opts, &a, out_path, &rep);
    status = 0;
free_model:
    desc->unload(state);
free_images:
    pm_image_meta_free(&meta);
    pm_image_free(&out);
    pm_image_free(&img);
    return status;
}

const pm_command pm_cmd_colorize = {
    "colorize", "colorize a black-and-white photo (DDColor)",
    "usage: pixmend colorize IMAGE -o OUT --model FILE [options]\n"
    "       pixmend colorize --batch IMAGES_DIR -o OUT_DIR --model FILE [options]\n\n"
    "Colorizes IMAGE with DDColor and writes OUT. IMAGE: PNG, JPEG or WebP, grey or\n"
    "colour (its colours are replaced; its lightness is kept); alpha is kept. OUT:\n"
    ".png, .jpg/.jpeg or .webp; nothing is written unless the whole run succeeds.\n\n"
    "  -o, --output FILE      the result\n"
    "  -m, --model FILE       DDColor weights: ddcolor_paper.pth, ddcolor_modelscope.pth,\n"
    "                         ddcolor_artistic.pth, ddcolor_paper_tiny.pth, or a\n"
    "                         pytorch_model.bin (the variant is read from the file), or a\n"
    "                         Hugging Face or ModelScope folder holding one (`pixmend models`)\n"
    "  --input-size N         the network's square input: a multiple of " PM_XSTR(PM_COLORIZE_SIZE_STEP)
    " from " PM_XSTR(PM_COLORIZE_SIZE_MIN) "\n"
    "                         to " PM_XSTR(PM_COLORIZE_SIZE_MAX) " (default " PM_XSTR(PM_COLORIZE_SIZE_DEFAULT)
    "), portrait (" PM_XSTR(PM_COLORIZE_SIZE_PORTRAIT) ") or building\n"
    "                         (" PM_XSTR(PM_COLORIZE_SIZE_BUILDING) "); larger keeps finer colour detail and costs\n"
    "                         about 4x the time per doubling\n"
    "  --upsample M           how colours are enlarged to the image: nearest (default,\n"
    "                         as DDColor does) or bilinear (smoother colour edges)\n"
    "  -t, --threads N        compute threads (default: all cores)\n"
    "  --precision P          fp32 (default) or bf16 (CPUs with avx512_bf16 or AMX; about\n"
    "                         half the weights' memory, within 40 dB PSNR of fp32)\n"
    "  -q, --quality Q        JPEG/WebP quality 1-100 (default " PM_XSTR(PM_QUALITY_DEFAULT) ")\n"
    "  --max-pixels N         refuse larger images: 16000000, 16M or 16MP (default 16M)\n"
    "  --max-side N           refuse images with a longer side (default 8192)\n"
    "  --max-file-bytes B     refuse larger files (default 64M)\n"
    "  --quiet                no progress bar\n\n"
    "Folders (--batch): every image of IMAGES_DIR, results under the same names in\n"
    "OUT_DIR (created if missing; outside IMAGES_DIR); the model loaded once; one\n"
    "progress bar; a summary; exit 1 if any failed.\n"
    "  --batch                IMAGES_DIR is a folder\n"
    "  -j, --jobs N           images at once (default 1), admitted within --mem-budget\n"
    "  --mem-budget B|N%      as for serve (default 70% of host memory or the cgroup limit)\n"
    "  --overwrite            replace results that exist (default: skip those images)\n"
    PM_CLI_META_HELP
    "\nThe output keeps the input's ICC profile, EXIF, XMP, DPI and PNG text chunks,\n"
    "as far as its format can hold them.\n",
    run,
};
