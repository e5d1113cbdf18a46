/* pixmend colorize: one image through DDColor. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "cli/progress.h"
#include "pipeline/colorize.h"

/* Declared here until cli.h lists it with the other sub-commands. */
extern const pm_command pm_cmd_colorize;

static const pm_optdef opts[] = {
    {"output", 'o', 1},
    {"model", 'm', 1},
    {"input-size", 0, 1},
    {"upsample", 0, 1},
    {"threads", 't', 1},
    {"quiet", 'q', 0},
    {0},
};

static int error_out(const pm_command *cmd, int rc)
{
    const char *d = pm_error_detail();
    pm_cli_error(cmd, "%s", *d ? d : pm_strerror(rc));
    return 1;
}

static int run(int argc, char **argv)
{
    const pm_command *cmd = &pm_cmd_colorize;
    pm_args a;
    int rc = pm_cli_parse(cmd, opts, 1, 1, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *outp = pm_cli_get(opts, &a, "output"), *model = pm_cli_get(opts, &a, "model");
    if (!outp) {
        pm_cli_error(cmd, "missing -o OUT: where to write the colorized image (see 'pixmend colorize --help')");
        return 2;
    }
    if (!model) {
        pm_cli_error(cmd, "missing --model FILE: DDColor weights, e.g. ddcolor_paper.pth or pytorch_model.bin");
        return 2;
    }
    if (pm_format_from_name(outp) == PM_FMT_UNKNOWN) {
        pm_cli_error(cmd, "cannot tell the output format from '%s'; name it .png, .jpg or .webp", outp);
        return 2;
    }
    pm_colorize_opts co = pm_colorize_default_opts();
    const char *v = pm_cli_get(opts, &a, "input-size");
    if (v) {
        int s = pm_colorize_size_parse(v);
        if (s < 0) {
            pm_cli_error(cmd, "--input-size: %s", pm_error_detail());
            return 2;
        }
        co.input_size = s;
    }
    if ((v = pm_cli_get(opts, &a, "upsample"))) {
        int u = pm_upsample_parse(v);
        if (u < 0) {
            pm_cli_error(cmd, "--upsample must be nearest or bilinear, not '%s'", v);
            return 2;
        }
        co.upsample = (pm_upsample)u;
    }
    long threads = 0;
    if ((v = pm_cli_get(opts, &a, "threads")) && pm_cli_int(cmd, "threads", v, 0, 1024, &threads))
        return 2;

    pm_image img;
    rc = pm_image_load(a.pos[0], NULL, &img);
    if (rc)
        return error_out(cmd, rc);
    pm_model_opts mo = {(int)threads, PM_PREC_FP32, 0};
    pm_ddcolor *m;
    rc = pm_ddcolor_load(model, &mo, &m);
    if (rc) {
        error_out(cmd, rc);
        goto free_image;
    }
    pm_bar bar;
    pm_bar_init(&bar, "colorize", pm_cli_get(opts, &a, "quiet") != NULL);
    pm_run_ctx ctx = {pm_bar_update, &bar};
    pm_image out;
    rc = pm_colorize_run(m, &img, &co, &out, &ctx);
    pm_bar_finish(&bar);
    if (rc) {
        error_out(cmd, rc);
        goto free_model;
    }
    rc = pm_image_save(outp, &out, NULL);
    if (rc)
        error_out(cmd, rc);
    pm_image_free(&out);
free_model:
    pm_ddcolor_free(m);
free_image:
    pm_image_free(&img);
    return rc ? 1 : 0;
}

const pm_command pm_cmd_colorize = {
    "colorize", "colorize a black-and-white photo with DDColor",
    "usage: pixmend colorize IMAGE -o OUT --model FILE [options]\n\n"
    "Colorizes IMAGE (PNG, JPEG or WebP; grey or colour, whose own colours are\n"
    "replaced; alpha is kept) with DDColor and writes OUT (format from its name).\n\n"
    "  -o, --output OUT        the result (.png, .jpg, .webp)\n"
    "  -m, --model FILE        DDColor weights: ddcolor_paper.pth, ddcolor_modelscope.pth,\n"
    "                          ddcolor_artistic.pth, ddcolor_paper_tiny.pth or a\n"
    "                          pytorch_model.bin (the variant is read from the file)\n"
    "      --input-size N      the network's input side: a multiple of 32 (default 512),\n"
    "                          or 'portrait' (512) or 'building' (1024); larger sizes\n"
    "                          keep finer colour detail and cost about 4x per doubling\n"
    "      --upsample MODE     how the colours are enlarged to the image: nearest\n"
    "                          (default, as DDColor does) or bilinear (smoother edges)\n"
    "  -t, --threads N         compute threads (default: all cores)\n"
    "  -q, --quiet             no progress bar\n",
    run,
};
