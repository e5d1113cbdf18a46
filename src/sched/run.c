/* Running one job: decode the inputs, run the model through the pipeline,
 * encode the result. Nothing here touches the scheduler's state. */
#include "sched/sched_internal.h"
#include "pipeline/pipeline.h"
#include "pipeline/colorize.h"
#include "pipeline/mask.h"
#include "pipeline/resample.h"
#include "image/meta.h"

#include "base/base.h"
#include "monitor/monitor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns rc after prefixing the image layer's sentence with which input
 * ("image", "mask") it was about. */
static int input_error(int rc, const char *what)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", pm_error_detail());
    if (detail[0])
        return pm_errorf(rc, "%s: %s", what, detail);
    return pm_errorf(rc, "%s: %s", what, pm_strerror(rc));
}

/* The image with its metadata carrier (meta may be NULL). */
static int job_decode_meta(const uint8_t *data, size_t len, const pm_limits *lim, const char *name,
                           const char *what, pm_image *out, pm_image_meta *meta)
{
    memset(out, 0, sizeof *out);
    if (meta)
        memset(meta, 0, sizeof *meta);
    if (len == 0)
        return pm_errorf(PM_EEMPTY, "the %s is empty (0 bytes); send a PNG, JPEG or WebP file", what);
    int rc = pm_image_decode_meta(data, len, lim, name, out, meta);
    return rc ? input_error(rc, what) : 0;
}

/* `what` names the input in messages ("image", "mask"). */
int pm_job_decode(const uint8_t *data, size_t len, const pm_limits *lim, const char *name,
                  const char *what, pm_image *out)
{
    return job_decode_meta(data, len, lim, name, what, out, NULL);
}

/* The image's header, read and checked as job_decode_meta would decode it
 * (same codes, same sentences), without decoding a pixel. */
static int job_probe(const uint8_t *data, size_t len, const pm_limits *lim, const char *name, const char *what,
                     pm_image_info *info)
{
    if (len == 0)
        return pm_errorf(PM_EEMPTY, "the %s is empty (0 bytes); send a PNG, JPEG or WebP file", what);
    int rc = pm_image_probe_named(data, len, lim, name, info);
    return rc ? input_error(rc, what) : 0;
}

/* The mask as the model will see it (scaled to the image's w x h, grown or
 * shrunk) must select something; *work_px (may be NULL) receives the pixels
 * the model works on at once. Owns nothing. */
static int check_mask(const pm_job_spec *spec, const pm_image *msk, int w, int h, uint64_t *work_px)
{
    pm_image scaled = {0}, prep = {0};
    const pm_image *use = msk;
    size_t holes = 0;
    int rc = 0;
    if (msk->width != w || msk->height != h) {
        if ((rc = pm_resize_nearest(&scaled, msk, w, h)))
            return rc;
        use = &scaled;
    }
    if ((rc = pm_mask_prepare(use, spec->mask_dilate, &prep, &holes)))
        goto free_masks;
    if (holes == 0) {
        pm_image raw = {0};
        size_t raw_holes = 0;
        if (spec->mask_dilate < 0 && pm_mask_prepare(use, 0, &raw, &raw_holes) == 0)
            pm_image_free(&raw);
        if (raw_holes > 0)
            rc = pm_errorf(PM_EMASKEMPTY,
                           "the mask selects nothing once shrunk by %d px (mask_dilate=%d): its areas are "
                           "narrower than that; shrink it less",
                           -spec->mask_dilate, spec->mask_dilate);
        else
            rc = pm_errorf(PM_EMASKEMPTY,
                           "the mask selects nothing: every pixel of it is black (0); paint what should be "
                           "removed in white");
        goto free_masks;
    }
    if (work_px) {
        pm_inpaint_opts o = pm_inpaint_default_opts();
        o.strategy = (pm_hd_strategy)spec->hd_strategy;
        *work_px = pm_inpaint_work_pixels(&prep, &o);
    }
free_masks:
    pm_image_free(&prep);
    pm_image_free(&scaled);
    return rc;
}

/* The image is only probed (its header sizes the job; damage inside its
 * pixel data fails the job when the worker decodes it). The mask is decoded:
 * the empty-mask refusal and the crop boxes that size an inpainting job need
 * its pixels. Runs on HTTP threads (civetweb's 100 KiB stacks): the codecs
 * keep their state on the heap (tests/unit/test_submit_stack.c measures the
 * stack this takes). */
int pm_job_check_inputs(const pm_job_spec *spec, const pm_limits *lim, const uint8_t *image,
                        size_t image_len, const char *image_name, const uint8_t *mask,
                        size_t mask_len, const char *mask_name, int *w, int *h, uint64_t *work_px)
{
    int rc;
    pm_image_info info;
    pm_image msk = {0};
    if (spec->task == PM_TASK_INPAINT && !mask)
        return pm_errorf(PM_EINVAL, "inpainting needs a mask: add a 'mask' file part (white = fill)");
    if (spec->task == PM_TASK_COLORIZE && mask)
        return pm_errorf(PM_EINVAL, "colorization takes no mask; leave out the 'mask' part");
    if ((rc = job_probe(image, image_len, lim, image_name, "image", &info)))
        return rc;
    *w = info.width;
    *h = info.height;
    if (work_px)
        *work_px = (uint64_t)info.width * (uint64_t)info.height;
    if (!mask)
        return 0;
    if ((rc = pm_job_decode(mask, mask_len, lim, mask_name, "mask", &msk)))
        return rc;
    if ((msk.width != info.width || msk.height != info.height) && !spec->mask_resize)
        rc = pm_errorf(PM_EMISMATCH,
                       "the mask is %dx%d but the image is %dx%d; send a mask of the same size "
                       "or set mask_resize=1 to scale it (nearest neighbour)",
                       msk.width, msk.height, info.width, info.height);
    else
        rc = check_mask(spec, &msk, info.width, info.height, work_px);
    pm_image_free(&msk);
    return rc;
}

/* Options for the result: spec's format (the input's when unset); with no
 * quality given and the input in the same format, encoded like the input
 * (a JPEG's estimated quality, WebP lossless or not). */
static pm_encode_opts encode_opts(const pm_job_spec *spec, const uint8_t *image, size_t image_len)
{
    pm_encode_opts like;
    int have_like = pm_encode_opts_like(image, image_len, &like) == 0;
    enum pm_format f = spec->format;
    if (f == PM_FMT_UNKNOWN)
        f = have_like ? like.format : PM_FMT_PNG;
    pm_encode_opts o = pm_default_encode_opts(f);
    if (spec->quality == 0 && have_like && like.format == f)
        o = like;
    if (spec->quality > 0) {
        o.quality = spec->quality;
        if (f == PM_FMT_WEBP)
            o.lossless = 0;
    }
    return o;
}

/* Owns nothing; *out is the caller's. */
int pm_job_execute(const pm_job_exec *x, uint8_t **out, size_t *out_len)
{
    int rc;
    pm_image img = {0}, msk = {0}, scaled = {0}, res = {0};
    pm_image_meta meta = {0};
    *out = NULL;
    *out_len = 0;
    if (!x->model)
        return pm_errorf(PM_ENOENT, "model '%s' is not loaded in this server", x->spec->model);
    if ((rc = job_decode_meta(x->image, x->image_len, x->limits, NULL, "image", &img, &meta)))
        return rc;
    if (x->spec->task == PM_TASK_INPAINT) {
        if (!x->mask) {
            rc = pm_errorf(PM_EINVAL, "inpainting needs a mask");
            goto free_images;
        }
        if ((rc = pm_job_decode(x->mask, x->mask_len, x->limits, NULL, "mask", &msk)))
            goto free_images;
        const pm_image *use = &msk;
        if (msk.width != img.width || msk.height != img.height) {
            if (!x->spec->mask_resize) {
                rc = pm_errorf(PM_EMISMATCH, "the mask is %dx%d but the image is %dx%d", msk.width,
                               msk.height, img.width, img.height);
                goto free_images;
            }
            if ((rc = pm_resize_nearest(&scaled, &msk, img.width, img.height)))
                goto free_images;
            use = &scaled;
        }
        pm_inpaint_opts io = pm_inpaint_default_opts();
        io.strategy = (pm_hd_strategy)x->spec->hd_strategy;
        io.mask_dilate = x->spec->mask_dilate;
        rc = pm_inpaint_run(x->model, x->model_state, &img, use, &io, &res, x->ctx);
    } else {
        if (!x->model->colorize) {
            rc = pm_errorf(PM_EINVAL, "model '%s' does not colorize", x->model->name);
            goto free_images;
        }
        pm_colorize_opts co = pm_colorize_default_opts();
        if (x->spec->input_size > 0)
            co.input_size = x->spec->input_size;
        rc = pm_colorize_run(x->model, x->model_state, &img, &co, &res, x->ctx);
    }
    if (rc)
        goto free_images;
    pm_encode_req req = {&res, &img, &meta, encode_opts(x->spec, x->image, x->image_len),
                         /* an explicit quality asks for a whole encode at it */
                         {x->spec->strip_metadata, x->spec->strip_gps, x->spec->jpeg_reencode || x->spec->quality > 0},
                         x->spec->task == PM_TASK_INPAINT};
    pm_encode_report rep;
    rc = pm_image_encode_full(&req, out, out_len, &rep);
    for (int i = 0; rc == 0 && i < rep.nwhy; i++)
        pm_debug("metadata_note", "%s", rep.why[i]);

free_images:
    pm_image_meta_free(&meta);
    pm_image_free(&res);
    pm_image_free(&scaled);
    pm_image_free(&msk);
    pm_image_free(&img);
    return rc;
}

/* Owns nothing: the encoded result is made and freed here. */
int pm_job_measure(const pm_model_desc *d, void *state, const pm_job_spec *spec, const pm_limits *lim,
                   const uint8_t *image, size_t image_len, const uint8_t *mask, size_t mask_len,
                   uint64_t *heap_peak, uint64_t *rss_peak, double *seconds)
{
    pm_run_ctx ctx = {0};
    pm_job_exec x = {
        .spec = spec,
        .image = image,
        .image_len = image_len,
        .mask = mask,
        .mask_len = mask_len,
        .limits = lim,
        .model = d,
        .model_state = state,
        .ctx = &ctx,
    };
    uint8_t *out = NULL;
    size_t out_len = 0;
    int hwm_ok = pm_reset_peak_rss();
    uint64_t rss0 = pm_read_rss();
    pm_mem_scope scope;
    double t0 = pm_now();
    pm_mem_scope_begin(&scope);
    int rc = pm_job_execute(&x, &out, &out_len);
    pm_mem_scope_end(&scope);
    *seconds = pm_now() - t0;
    uint64_t hwm = pm_read_peak_rss();
    *heap_peak = scope.peak;
    *rss_peak = hwm_ok && hwm > rss0 ? hwm - rss0 : 0;
    pm_free(out);
    return rc;
}

/* The planted leak's blocks: each starts with a pointer to the one before. */
static void *test_leak_head;
static pthread_mutex_t test_leak_lock = PTHREAD_MUTEX_INITIALIZER;

/* Owns the blocks for the life of the process (never freed, on purpose). */
void pm_job_test_leak(uint64_t bytes)
{
    if (bytes < sizeof(void *) || bytes > ((uint64_t)1 << 32))
        return;
    void **block = malloc((size_t)bytes);
    if (!block)
        return;
    memset(block, 0x5a, (size_t)bytes);
    pthread_mutex_lock(&test_leak_lock);
    block[0] = test_leak_head;
    test_leak_head = block;
    pthread_mutex_unlock(&test_leak_lock);
}
