/* The inpainting pipeline: channel handling and the large-image strategies.
 * Engines see an RGB image and a binary mask; this file decides which region
 * they see (whole, shrunk, or one crop per mask region) and pastes the
 * result back so that pixels outside the mask never change. */
#include "pipeline/pipeline.h"
#include "pipeline/mask.h"
#include "pipeline/resample.h"

#include <stdlib.h>
#include <string.h>

pm_inpaint_opts pm_inpaint_default_opts(void)
{
    pm_inpaint_opts o = {PM_HD_AUTO, 1280, 800, 128, 0};
    return o;
}

static const char *const strategy_names[] = {"auto", "original", "resize", "crop"};

int pm_hd_strategy_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, strategy_names[i]) == 0)
            return i;
    return -1;
}

const char *pm_hd_strategy_name(int s)
{
    return s >= 0 && s < 4 ? strategy_names[s] : "auto";
}

typedef struct pm_box {
    int x0, y0, x1, y1; /* half-open: [x0, x1) x [y0, y1) */
} pm_box;

/* Cell size of the coarse grid used to find mask regions; the grid is small
 * (w/8 x h/8 bytes), so finding regions costs far less than the image. */
#define CELL 8

/* Finds the boxes of the mask's connected regions (8-connected on the coarse
 * grid), shrunk to the exact extent of mask pixels, grown by `margin` and
 * clamped to the image. *boxes is a new array (caller owns, pm_free). */
static int find_regions(const pm_image *mask, int margin, pm_box **boxes, int *count)
{
    int rc = 0;
    int gw = (mask->width + CELL - 1) / CELL, gh = (mask->height + CELL - 1) / CELL;
    size_t gn = (size_t)gw * gh;
    uint8_t *grid = pm_calloc(gn, 1);
    int *stack = pm_malloc(gn * sizeof *stack);
    int cap = 16, n = 0;
    pm_box *out = pm_malloc(cap * sizeof *out);
    if (!grid || !stack || !out) {
        rc = pm_errorf(PM_ENOMEM, "out of memory while finding mask regions");
        goto free_all;
    }
    for (int y = 0; y < mask->height; y++) {
        const uint8_t *row = mask->data + (size_t)y * mask->width;
        for (int x = 0; x < mask->width; x++)
            if (row[x])
                grid[(size_t)(y / CELL) * gw + x / CELL] = 1;
    }
    for (size_t start = 0; start < gn; start++) {
        if (grid[start] != 1)
            continue;
        int gx0 = gw, gy0 = gh, gx1 = -1, gy1 = -1, sp = 0;
        stack[sp++] = (int)start;
        grid[start] = 2;
        while (sp) {
            int c = stack[--sp], cx = c % gw, cy = c / gw;
            if (cx < gx0) gx0 = cx;
            if (cx > gx1) gx1 = cx;
            if (cy < gy0) gy0 = cy;
            if (cy > gy1) gy1 = cy;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int nx = cx + dx, ny = cy + dy;
                    if (nx < 0 || ny < 0 || nx >= gw || ny >= gh)
                        continue;
                    size_t ni = (size_t)ny * gw + nx;
                    if (grid[ni] == 1) {
                        grid[ni] = 2;
                        stack[sp++] = (int)ni;
                    }
                }
        }
        /* Exact extent of the mask pixels inside the region's cells. */
        pm_box b = {mask->width, mask->height, 0, 0};
        int px1 = (gx1 + 1) * CELL < mask->width ? (gx1 + 1) * CELL : mask->width;
        int py1 = (gy1 + 1) * CELL < mask->height ? (gy1 + 1) * CELL : mask->height;
        for (int y = gy0 * CELL; y < py1; y++)
            for (int x = gx0 * CELL; x < px1; x++)
                if (mask->data[(size_t)y * mask->width + x]) {
                    if (x < b.x0) b.x0 = x;
                    if (x + 1 > b.x1) b.x1 = x + 1;
                    if (y < b.y0) b.y0 = y;
                    if (y + 1 > b.y1) b.y1 = y + 1;
                }
        b.x0 = b.x0 - margin < 0 ? 0 : b.x0 - margin;
        b.y0 = b.y0 - margin < 0 ? 0 : b.y0 - margin;
        b.x1 = b.x1 + margin > mask->width ? mask->width : b.x1 + margin;
        b.y1 = b.y1 + margin > mask->height ? mask->height : b.y1 + margin;
        if (n == cap) {
            pm_box *bigger = pm_realloc(out, (size_t)cap * 2 * sizeof *out);
            if (!bigger) {
                rc = pm_errorf(PM_ENOMEM, "out of memory while finding mask regions");
                goto free_all;
            }
            out = bigger;
            cap *= 2;
        }
        out[n++] = b;
    }
    *boxes = out;
    *count = n;
    out = NULL;
free_all:
    pm_free(out);
    pm_free(stack);
    pm_free(grid);
    return rc;
}

/* Progress of one model call mapped into a share of the whole run. */
typedef struct sub_progress {
    const pm_run_ctx *outer;
    int index, total; /* this call is number `index` of `total` */
} sub_progress;

static int sub_progress_fn(void *user, int value, int max)
{
    sub_progress *s = user;
    if (!s->outer || !s->outer->progress)
        return 0;
    long long v = (long long)s->index * 1000 + (max > 0 ? (long long)value * 1000 / max : 0);
    return s->outer->progress(s->outer->progress_user, (int)v, s->total * 1000);
}

/* Copies a w x h window at (x0, y0) of `src` into a new image *dst (caller owns). */
static int crop_image(pm_image *dst, const pm_image *src, const pm_box *b)
{
    int w = b->x1 - b->x0, h = b->y1 - b->y0, c = src->channels;
    int rc = pm_image_alloc(dst, w, h, c);
    if (rc)
        return rc;
    for (int y = 0; y < h; y++)
        memcpy(dst->data + (size_t)y * w * c, src->data + ((size_t)(b->y0 + y) * src->width + b->x0) * c,
               (size_t)w * c);
    return 0;
}

/* Writes RGB pixel `p` into pixel i of `out` in out's own channels: grey
 * (BT.601 luma) for 1 channel; for 4, the alpha is left as it is. */
static void put_rgb(pm_image *out, size_t i, const uint8_t *p)
{
    uint8_t *q = out->data + i * (size_t)out->channels;
    if (out->channels == 1) {
        q[0] = (uint8_t)((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
    } else {
        q[0] = p[0];
        q[1] = p[1];
        q[2] = p[2];
    }
}

/* Runs the model on one region of `rgb` and writes the filled masked pixels
 * into `res` (full size, any of 1, 3 or 4 channels; see put_rgb). Buffers are
 * the region's size only. `mask` is one channel, non-zero = fill. */
static int run_region(const pm_model_desc *m, void *state, const pm_image *rgb, const pm_image *mask,
                      const pm_box *b, pm_image *res, const pm_run_ctx *ctx)
{
    pm_image ci = {0}, cm = {0}, co = {0};
    int rc = crop_image(&ci, rgb, b);
    if (rc)
        goto free_crops;
    rc = crop_image(&cm, mask, b);
    if (rc)
        goto free_crops;
    rc = m->inpaint(state, &ci, &cm, &co, ctx);
    if (rc)
        goto free_crops;
    int w = b->x1 - b->x0;
    for (int y = b->y0; y < b->y1; y++)
        for (int x = b->x0; x < b->x1; x++)
            if (mask->data[(size_t)y * mask->width + x])
                put_rgb(res, (size_t)y * res->width + x, co.data + ((size_t)(y - b->y0) * w + (x - b->x0)) * 3);
free_crops:
    pm_image_free(&co);
    pm_image_free(&cm);
    pm_image_free(&ci);
    return rc;
}

/* Shrinks to `limit` on the long side, inpaints, enlarges the result and pastes
 * back only the masked pixels into `res`. */
static int run_resized(const pm_model_desc *m, void *state, const pm_image *rgb, const pm_image *mask,
                       int limit, pm_image *res, const pm_run_ctx *ctx)
{
    int w = rgb->width, h = rgb->height, lw, lh;
    if (w >= h) {
        lw = limit;
        lh = (int)((long long)h * limit / w);
    } else {
        lh = limit;
        lw = (int)((long long)w * limit / h);
    }
    if (lw < 1) lw = 1;
    if (lh < 1) lh = 1;
    pm_image si = {0}, sm = {0}, so = {0}, big = {0};
    int rc = pm_resize_area(&si, rgb, lw, lh);
    if (rc)
        goto free_all;
    rc = pm_resize_mask_any(&sm, mask, lw, lh);
    if (rc)
        goto free_all;
    rc = m->inpaint(state, &si, &sm, &so, ctx);
    if (rc)
        goto free_all;
    rc = pm_resize_bilinear(&big, &so, w, h);
    if (rc)
        goto free_all;
    for (size_t i = 0; i < (size_t)w * h; i++)
        if (mask->data[i])
            put_rgb(res, i, big.data + i * 3);
free_all:
    pm_image_free(&big);
    pm_image_free(&so);
    pm_image_free(&sm);
    pm_image_free(&si);
    return rc;
}

static pm_hd_strategy effective_strategy(const pm_inpaint_opts *o, int w, int h)
{
    int longest = w > h ? w : h;
    if (o->strategy == PM_HD_AUTO)
        return longest > o->crop_trigger ? PM_HD_CROP : PM_HD_ORIGINAL;
    if (o->strategy == PM_HD_RESIZE && longest <= o->resize_limit)
        return PM_HD_ORIGINAL;
    return o->strategy;
}

int pm_inpaint_run(const pm_model_desc *m, void *state, const pm_image *img, const pm_image *mask,
                   const pm_inpaint_opts *opts, pm_image *out, const pm_run_ctx *ctx)
{
    memset(out, 0, sizeof *out);
    pm_inpaint_opts defaults = pm_inpaint_default_opts();
    if (!opts)
        opts = &defaults;
    if (!m || !m->inpaint)
        return pm_errorf(PM_EINVAL, "model %s cannot inpaint", m ? m->name : "(none)");
    if (img->width != mask->width || img->height != mask->height)
        return pm_errorf(PM_EMISMATCH, "the mask is %dx%d but the image is %dx%d; give a mask of the image's size",
                         mask->width, mask->height, img->width, img->height);
    if (opts->crop_margin < 0 || opts->resize_limit < 8 || opts->crop_trigger < 8)
        return pm_errorf(PM_EINVAL, "crop margin must be >= 0, resize limit and crop trigger >= 8");

    /* Full-size buffers: the output only, plus an RGB copy of a grey or RGBA
     * input and a one-channel copy of a mask with more channels. The model
     * sees the region's pixels only (crop). */
    pm_image bm = {0}, rgb = {0};
    const pm_image *bmp = mask, *rgbp = img;
    pm_box *boxes = NULL;
    size_t holes = 0;
    int rc = pm_image_clone(out, img);
    if (rc)
        goto fail;
    if (mask->channels != 1 || opts->mask_dilate) {
        if ((rc = pm_mask_prepare(mask, opts->mask_dilate, &bm, &holes)))
            goto free_work;
        bmp = &bm;
    } else {
        for (size_t i = 0, n = (size_t)mask->width * mask->height; i < n; i++)
            holes += mask->data[i] != 0;
    }
    if (holes == 0)
        goto free_work; /* nothing to fill: the copy is the answer */
    if (img->channels != 3) {
        if ((rc = pm_image_convert(&rgb, img, 3)))
            goto free_work;
        rgbp = &rgb;
    }

    pm_hd_strategy s = effective_strategy(opts, img->width, img->height);
    if (s == PM_HD_CROP) {
        int n = 0;
        rc = find_regions(bmp, opts->crop_margin, &boxes, &n);
        for (int i = 0; rc == 0 && i < n; i++) {
            sub_progress sp = {ctx, i, n};
            pm_run_ctx sub = {sub_progress_fn, &sp};
            rc = run_region(m, state, rgbp, bmp, &boxes[i], out, &sub);
        }
    } else if (s == PM_HD_RESIZE) {
        rc = run_resized(m, state, rgbp, bmp, opts->resize_limit, out, ctx);
    } else {
        pm_box whole = {0, 0, img->width, img->height};
        rc = run_region(m, state, rgbp, bmp, &whole, out, ctx);
    }
free_work:
    pm_free(boxes);
    pm_image_free(&rgb);
    pm_image_free(&bm);
    if (rc == 0)
        return 0;
    pm_image_free(out);
fail:
    return rc;
}

uint64_t pm_inpaint_work_pixels(const pm_image *mask, const pm_inpaint_opts *opts)
{
    pm_inpaint_opts defaults = pm_inpaint_default_opts();
    if (!opts)
        opts = &defaults;
    int w = mask->width, h = mask->height;
    uint64_t px = (uint64_t)w * (uint64_t)h, holes = 0;
    pm_image bm = {0};
    const pm_image *bmp = mask;
    if (mask->channels != 1 || opts->mask_dilate) {
        size_t count = 0;
        if (pm_mask_prepare(mask, opts->mask_dilate, &bm, &count) != 0)
            return px; /* cannot tell: the whole image */
        bmp = &bm;
        holes = count;
    } else {
        for (uint64_t i = 0; i < px; i++)
            holes += mask->data[i] != 0;
    }
    pm_hd_strategy s = effective_strategy(opts, w, h);
    pm_box *boxes = NULL;
    int n = 0;
    uint64_t worst = px; /* if the regions cannot be found: the whole image */
    if (holes == 0 || s != PM_HD_CROP) {
        pm_image_free(&bm);
        if (holes == 0)
            return 0;
        if (s == PM_HD_ORIGINAL)
            return px;
        int longest = w > h ? w : h;
        double k = (double)opts->resize_limit / longest;
        return (uint64_t)(w * k) * (uint64_t)(h * k);
    }
    if (find_regions(bmp, opts->crop_margin, &boxes, &n) == 0) {
        worst = 0;
        for (int i = 0; i < n; i++) {
            uint64_t a = (uint64_t)(boxes[i].x1 - boxes[i].x0) * (uint64_t)(boxes[i].y1 - boxes[i].y0);
            if (a > worst)
                worst = a;
        }
    }
    pm_free(boxes);
    pm_image_free(&bm);
    return worst;
}

uint64_t pm_inpaint_mem_estimate(const pm_model_desc *m, const void *state, const pm_image *img,
                                 const pm_image *mask, const pm_inpaint_opts *opts)
{
    pm_inpaint_opts defaults = pm_inpaint_default_opts();
    if (!opts)
        opts = &defaults;
    uint64_t px = (uint64_t)img->width * img->height;
    /* The output, an RGB copy of a grey or RGBA input, a one-channel copy
     * of a mask with several channels or one to grow or shrink, and the
     * distance transform's 2 bytes a pixel (freed before the model runs). */
    uint64_t base = px * (uint64_t)img->channels + (img->channels != 3 ? px * 3 : 0) +
                    (mask->channels != 1 || opts->mask_dilate ? px : 0) + (opts->mask_dilate ? px * 2 : 0);
    if (!m->mem_estimate)
        return base;
    pm_hd_strategy s = effective_strategy(opts, img->width, img->height);
    if (s == PM_HD_ORIGINAL)
        return base + m->mem_estimate(state, img->width, img->height, 0);
    if (s == PM_HD_RESIZE) {
        int longest = img->width > img->height ? img->width : img->height;
        double k = (double)opts->resize_limit / longest;
        int w = (int)(img->width * k), h = (int)(img->height * k);
        return base + px * 3 + m->mem_estimate(state, w, h, 0);
    }
    pm_image bm = {0};
    pm_box *boxes = NULL;
    size_t holes;
    int n = 0;
    uint64_t worst = 0;
    const pm_image *bmp = mask;
    int ok = 1;
    if (mask->channels != 1 || opts->mask_dilate) {
        ok = pm_mask_prepare(mask, opts->mask_dilate, &bm, &holes) == 0;
        bmp = &bm;
    }
    if (ok && find_regions(bmp, opts->crop_margin, &boxes, &n) == 0) {
        for (int i = 0; i < n; i++) {
            int w = boxes[i].x1 - boxes[i].x0, h = boxes[i].y1 - boxes[i].y0;
            uint64_t e = m->mem_estimate(state, w, h, 0) + (uint64_t)w * h * 8;
            if (e > worst)
                worst = e;
        }
    }
    pm_free(boxes);
    pm_image_free(&bm);
    return base + worst;
}
