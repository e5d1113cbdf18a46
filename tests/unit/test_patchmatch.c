/* Unit tests of the built-in PatchMatch inpainter (src/models/patchmatch.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/patchmatch.h"
#include "models/patchmatch_internal.h"

/* ------------------------------------------------------------- test images */

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void make_image(pm_image *img, int w, int h, int ch)
{
    assert_int_equal(pm_image_alloc(img, w, h, ch), 0);
}

/* A photo-like test image: smooth gradients, a few edges and some noise. */
static void fill_natural(pm_image *img, uint32_t seed)
{
    uint32_t s = seed;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            uint8_t *p = img->data + ((size_t)y * img->width + x) * 3;
            double base = 120 + 60 * sin(x * 0.07) * cos(y * 0.05);
            int stripe = ((x + 2 * y) / 17) % 2;
            for (int c = 0; c < 3; c++) {
                double v = base + (stripe ? 30 : -30) * (c == 1 ? 1 : 0.5) + c * 15 + (double)(lcg(&s) % 21) - 10;
                p[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

/* A periodic texture: a random tile of tw x th pixels repeated. */
static void fill_tiled(pm_image *img, int tw, int th, uint32_t seed)
{
    uint8_t tile[32 * 32 * 3];
    uint32_t s = seed;
    assert_true(tw <= 32 && th <= 32);
    for (int i = 0; i < tw * th * 3; i++)
        tile[i] = (uint8_t)(lcg(&s) & 0xff);
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            memcpy(img->data + ((size_t)y * img->width + x) * 3, tile + ((y % th) * tw + (x % tw)) * 3, 3);
}

static void mask_box(pm_image *m, int x0, int y0, int x1, int y1)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (x >= 0 && y >= 0 && x < m->width && y < m->height)
                m->data[(size_t)y * m->width + x] = 255;
}

static double hole_psnr(const pm_image *ref, const pm_image *out, const pm_image *mask)
{
    double se = 0;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)mask->width * mask->height; i++) {
        if (!mask->data[i])
            continue;
        for (int c = 0; c < 3; c++) {
            double d = (double)ref->data[3 * i + c] - out->data[3 * i + c];
            se += d * d;
        }
        n += 3;
    }
    if (se == 0)
        return 99.0;
    return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

static void assert_outside_exact(const pm_image *in, const pm_image *out, const pm_image *mask)
{
    assert_int_equal(out->width, in->width);
    assert_int_equal(out->height, in->height);
    assert_int_equal(out->channels, 3);
    for (size_t i = 0; i < (size_t)mask->width * mask->height; i++)
        if (!mask->data[i])
            assert_memory_equal(in->data + 3 * i, out->data + 3 * i, 3);
}

static pm_patchmatch_params params_threads(int threads)
{
    pm_patchmatch_params p = pm_patchmatch_default_params();
    p.threads = threads;
    return p;
}

/* Clears `img` under a box hole (x0,y0)-(x1,y1) of `mask`, fills it on two
 * threads into *out (the caller frees it) and checks the pixels outside. */
static void fill_box(pm_image *img, pm_image *mask, int x0, int y0, int x1, int y1, pm_image *out)
{
    mask_box(mask, x0, y0, x1, y1);
    for (size_t i = 0; i < (size_t)img->width * img->height; i++)
        if (mask->data[i])
            memset(img->data + 3 * i, 0, 3);
    pm_patchmatch_params p = params_threads(2);
    assert_int_equal(pm_patchmatch_inpaint(img, mask, &p, out, NULL), 0);
    assert_outside_exact(img, out, mask);
}

/* ------------------------------------------------------- building blocks */

/* Independent reference for the patch distance: R, G, B and the texture
 * feature in the fourth byte. */
static int64_t ref_ssd(const pm_pmatch_layer *L, int tx, int ty, int sx, int sy)
{
    int r = L->patch_size / 2;
    int64_t sum = 0;
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            for (int c = 0; c < 4; c++) {
                int a = L->px[((size_t)(ty + dy) * L->w + (tx + dx)) * 4 + c];
                int b = L->px[((size_t)(sy + dy) * L->w + (sx + dx)) * 4 + c];
                sum += (a - b) * (a - b);
            }
    return sum;
}

static int window_has_hole(const pm_pmatch_layer *L, int x, int y)
{
    int r = L->patch_size / 2;
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (L->hole[(size_t)(y + dy) * L->w + (x + dx)])
                return 1;
    return 0;
}

static int inside(const pm_pmatch_layer *L, int x, int y)
{
    int r = L->patch_size / 2;
    return x >= r && x < L->w - r && y >= r && y < L->h - r;
}

/* Every target is a patch inside the layer that overlaps the hole, and every
 * such patch is a target; each entry points at a source patch inside the
 * layer and fully outside the hole, with its exact distance stored. */
static void check_field(const pm_nnf *f, const pm_pmatch_layer *L)
{
    int targets = 0;
    for (int y = 0; y < L->h; y++)
        for (int x = 0; x < L->w; x++) {
            int want = inside(L, x, y) && window_has_hole(L, x, y);
            int fx = x - f->x0, fy = y - f->y0;
            int in_box = fx >= 0 && fy >= 0 && fx < f->w && fy < f->h;
            int is = in_box && f->is_target[(size_t)fy * f->w + fx];
            assert_int_equal(is, want);
            if (!is)
                continue;
            targets++;
            const pm_nnf_entry *e = &f->e[(size_t)fy * f->w + fx];
            assert_true(inside(L, e->sx, e->sy));
            assert_false(window_has_hole(L, e->sx, e->sy));
            assert_int_equal(L->src_ok[(size_t)e->sy * L->w + e->sx], 1);
            assert_int_equal((int64_t)e->d, ref_ssd(L, x, y, e->sx, e->sy));
        }
    assert_int_equal(targets, f->n_targets);
}

/* A 90x70 layer with a box hole and a hole touching the left border. */
static void build_layer(pm_pmatch_layer *L, pm_image *img, pm_image *mask)
{
    make_image(img, 90, 70, 3);
    make_image(mask, 90, 70, 1);
    fill_natural(img, 7);
    mask_box(mask, 30, 20, 52, 41);
    mask_box(mask, 0, 50, 12, 58);
    assert_int_equal(pm_pmatch_layer_from_image(L, img, mask, 7), 0);
}

static void test_layer_sources(void **state)
{
    (void)state;
    pm_image img, mask;
    pm_pmatch_layer L;
    build_layer(&L, &img, &mask);
    int n = 0;
    for (int y = 0; y < L.h; y++)
        for (int x = 0; x < L.w; x++) {
            int want = inside(&L, x, y) && !window_has_hole(&L, x, y);
            assert_int_equal(L.src_ok[(size_t)y * L.w + x], want);
            if (want) {
                assert_true(n < L.n_src);
                assert_int_equal(L.src_list[n], y * L.w + x);
                n++;
            }
            float d = L.hole_dist[(size_t)y * L.w + x];
            if (L.hole[(size_t)y * L.w + x])
                assert_true(d >= 1.0f && d < 15.0f); /* the box is 22x21: no pixel is more than 11 away */
            else
                assert_true(d == 0.0f);
        }
    assert_int_equal(n, L.n_src);
    /* The box's centre is deeper inside than a pixel next to its edge. */
    assert_true(L.hole_dist[30 * L.w + 41] > L.hole_dist[30 * L.w + 31]);
    pm_pmatch_layer_free(&L);
    pm_image_free(&img);
    pm_image_free(&mask);
}

static void test_patch_distance(void **state)
{
    (void)state;
    pm_image img, mask;
    pm_pmatch_layer L;
    build_layer(&L, &img, &mask);
    uint32_t s = 99;
    for (int k = 0; k < 2000; k++) {
        int tx = 3 + (int)(lcg(&s) % (uint32_t)(L.w - 6)), ty = 3 + (int)(lcg(&s) % (uint32_t)(L.h - 6));
        int sx = 3 + (int)(lcg(&s) % (uint32_t)(L.w - 6)), sy = 3 + (int)(lcg(&s) % (uint32_t)(L.h - 6));
        int64_t want = ref_ssd(&L, tx, ty, sx, sy);
        assert_int_equal((int64_t)pm_patch_distance(&L, tx, ty, sx, sy, INT32_MAX), want);
        int32_t limit = (int32_t)(lcg(&s) % 400000u);
        int32_t got = pm_patch_distance(&L, tx, ty, sx, sy, limit);
        if (want < limit)
            assert_int_equal((int64_t)got, want);
        else
            assert_true(got >= limit);
    }
    assert_int_equal(pm_patch_distance(&L, 40, 30, 40, 30, INT32_MAX), 0);
    pm_pmatch_layer_free(&L);
    pm_image_free(&img);
    pm_image_free(&mask);
}

static void test_nnf_invariants(void **state)
{
    (void)state;
    pm_image img, mask;
    pm_pmatch_layer L;
    pm_nnf f;
    build_layer(&L, &img, &mask);
    assert_int_equal(pm_nnf_alloc(&f, &L), 0);
    assert_true(f.n_targets > 0);
    pm_nnf_init_random(&f, &L, 1234, 2);
    check_field(&f, &L);

    size_t n = (size_t)f.w * f.h;
    int32_t *before = malloc(n * sizeof *before);
    assert_non_null(before);
    int64_t first_total = 0, total = 0;
    for (size_t i = 0; i < n; i++)
        if (f.is_target[i])
            first_total += f.e[i].d;
    for (int pass = 0; pass < 6; pass++) {
        for (size_t i = 0; i < n; i++)
            before[i] = f.e[i].d;
        assert_int_equal(pm_nnf_pass(&f, &L, pass, 77 + pass, 2), 0);
        check_field(&f, &L);
        total = 0;
        for (size_t i = 0; i < n; i++) {
            if (!f.is_target[i])
                continue;
            assert_true(f.e[i].d <= before[i]);
            total += f.e[i].d;
        }
    }
    /* Six passes from a random field must have improved matches a lot. */
    assert_true(total * 2 < first_total);
    free(before);
    pm_nnf_free(&f);
    pm_pmatch_layer_free(&L);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* The same passes with 1 and 2 threads give the same field. */
static void test_nnf_threads_agree(void **state)
{
    (void)state;
    pm_image img, mask;
    pm_pmatch_layer L;
    pm_nnf a, b;
    build_layer(&L, &img, &mask);
    assert_int_equal(pm_nnf_alloc(&a, &L), 0);
    assert_int_equal(pm_nnf_alloc(&b, &L), 0);
    pm_nnf_init_random(&a, &L, 5, 1);
    pm_nnf_init_random(&b, &L, 5, 2);
    for (int pass = 0; pass < 4; pass++) {
        pm_nnf_pass(&a, &L, pass, 11, 1);
        pm_nnf_pass(&b, &L, pass, 11, 2);
    }
    for (size_t i = 0; i < (size_t)a.w * a.h; i++) {
        if (!a.is_target[i])
            continue;
        assert_int_equal(a.e[i].sx, b.e[i].sx);
        assert_int_equal(a.e[i].sy, b.e[i].sy);
        assert_int_equal(a.e[i].d, b.e[i].d);
    }
    pm_nnf_free(&a);
    pm_nnf_free(&b);
    pm_pmatch_layer_free(&L);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* --------------------------------------------------------------- inpaint */

/* In a periodic texture every hole patch exists verbatim elsewhere, so a
 * converged field rebuilds the hole exactly (infinite PSNR). 30 dB (an RMS
 * error of 8 levels) leaves room for a few unconverged patches while a method
 * that only smooths scores far lower on random tiles, which the test checks
 * with the best constant fill (the mean colour). */
static void test_periodic_reconstruction(void **state)
{
    (void)state;
    pm_image img, mask, out;
    make_image(&img, 160, 128, 3);
    make_image(&mask, 160, 128, 1);
    fill_tiled(&img, 16, 16, 4242);
    mask_box(&mask, 60, 40, 90, 70);                /* a 30x30 box */
    for (int x = 10; x < 150; x++)                  /* and a slanted stroke */
        mask_box(&mask, x, 100 + x / 20, x + 1, 105 + x / 20);
    pm_image holed;
    assert_int_equal(pm_image_clone(&holed, &img), 0);
    for (size_t i = 0; i < (size_t)160 * 128; i++)
        if (mask.data[i])
            memset(holed.data + 3 * i, 0, 3);

    pm_patchmatch_params p = params_threads(2);
    assert_int_equal(pm_patchmatch_inpaint(&holed, &mask, &p, &out, NULL), 0);
    assert_outside_exact(&holed, &out, &mask);
    double psnr = hole_psnr(&img, &out, &mask);
    print_message("periodic texture: hole PSNR %.2f dB\n", psnr);
    assert_true(psnr > 30.0);

    /* The mean colour as a baseline: far below the threshold. */
    pm_image flat;
    assert_int_equal(pm_image_clone(&flat, &img), 0);
    double mean[3] = {0, 0, 0};
    for (size_t i = 0; i < (size_t)160 * 128; i++)
        for (int c = 0; c < 3; c++)
            mean[c] += img.data[3 * i + c] / (160.0 * 128.0);
    for (size_t i = 0; i < (size_t)160 * 128; i++)
        if (mask.data[i])
            for (int c = 0; c < 3; c++)
                flat.data[3 * i + c] = (uint8_t)lround(mean[c]);
    assert_true(hole_psnr(&img, &flat, &mask) < 15.0);

    pm_image_free(&flat);
    pm_image_free(&out);
    pm_image_free(&holed);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* ------------------------------------------------ texture and structure */

/* Variance of the 4-neighbour Laplacian of the luminance over the hole
 * pixels that are not on the image's edge. */
static double hole_lap_var(const pm_image *img, const pm_image *mask)
{
    int w = img->width, h = img->height;
    double s = 0, s2 = 0;
    size_t n = 0;
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            size_t i = (size_t)y * w + x;
            if (!mask->data[i])
                continue;
            const uint8_t *p = img->data;
#define Y_AT(k) ((77.0 * p[3 * (k)] + 150.0 * p[3 * (k) + 1] + 29.0 * p[3 * (k) + 2]) / 256.0)
            double lap = Y_AT(i - 1) + Y_AT(i + 1) + Y_AT(i - w) + Y_AT(i + w) - 4.0 * Y_AT(i);
#undef Y_AT
            s += lap;
            s2 += lap * lap;
            n++;
        }
    assert_true(n > 0);
    return s2 / (double)n - (s / (double)n) * (s / (double)n);
}

/* Mean |difference| over the 4-neighbour pairs that cross the mask's edge. */
static double seam_step(const pm_image *img, const pm_image *mask)
{
    int w = img->width, h = img->height;
    double sum = 0;
    size_t n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            size_t nb[2] = {x + 1 < w ? i + 1 : i, y + 1 < h ? i + (size_t)w : i};
            for (int k = 0; k < 2; k++) {
                if (nb[k] == i || !mask->data[i] == !mask->data[nb[k]])
                    continue;
                for (int c = 0; c < 3; c++)
                    sum += fabs((double)img->data[3 * i + c] - img->data[3 * nb[k] + c]);
                n += 3;
            }
        }
    assert_true(n > 0);
    return sum / (double)n;
}

/* A stochastic colour grain (no exact copy of the hole exists): the fill must
 * carry the grain's own detail (Laplacian variance within 0.6-1.6 of the
 * original's in the hole) without a visible seam (steps across the mask's
 * edge at most 1.4 times the original's there). A smooth fill fails: the
 * mean colour, the best smooth guess, has almost no detail, which the test
 * checks too. */
static void test_texture_detail(void **state)
{
    (void)state;
    int w = 192, h = 160;
    pm_image img, mask, out, holed, flat;
    make_image(&img, w, h, 3);
    make_image(&mask, w, h, 1);
    uint32_t s = 777;
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        img.data[i] = (uint8_t)(lcg(&s) & 0xff);
    assert_int_equal(pm_image_clone(&holed, &img), 0);
    for (int y = 0; y < h; y++) /* a 3x3 box blur: grain a few pixels wide, plus a tint */
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int sum = 0, cnt = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int xx = x + dx, yy = y + dy;
                        if (xx >= 0 && yy >= 0 && xx < w && yy < h) {
                            sum += holed.data[3 * ((size_t)yy * w + xx) + c];
                            cnt++;
                        }
                    }
                img.data[3 * ((size_t)y * w + x) + c] = (uint8_t)(sum / cnt / 2 + 40 * c + 20);
            }
    mask_box(&mask, 40, 50, 84, 94);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if ((x - 140) * (x - 140) + (y - 100) * (y - 100) < 18 * 18)
                mask.data[(size_t)y * w + x] = 255;
    memcpy(holed.data, img.data, (size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h; i++)
        if (mask.data[i])
            memset(holed.data + 3 * i, 0, 3);

    pm_patchmatch_params p = params_threads(2);
    assert_int_equal(pm_patchmatch_inpaint(&holed, &mask, &p, &out, NULL), 0);
    assert_outside_exact(&holed, &out, &mask);
    double detail = hole_lap_var(&out, &mask) / hole_lap_var(&img, &mask);
    double seam = seam_step(&out, &mask) / seam_step(&img, &mask);
    print_message("grain: detail ratio %.2f, seam ratio %.2f\n", detail, seam);
    assert_true(detail > 0.6 && detail < 1.6);
    assert_true(seam < 1.4);

    assert_int_equal(pm_image_clone(&flat, &img), 0);
    double mean[3] = {0, 0, 0};
    for (size_t i = 0; i < (size_t)w * h; i++)
        for (int c = 0; c < 3; c++)
            mean[c] += img.data[3 * i + c] / ((double)w * h);
    for (size_t i = 0; i < (size_t)w * h; i++)
        if (mask.data[i])
            for (int c = 0; c < 3; c++)
                flat.data[3 * i + c] = (uint8_t)lround(mean[c]);
    assert_true(hole_lap_var(&flat, &mask) / hole_lap_var(&img, &mask) < 0.1);

    pm_image_free(&flat);
    pm_image_free(&out);
    pm_image_free(&holed);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* The chamfer pass that starts the smooth fill and the seam membrane: every
 * hole pixel's distance lies between the Euclidean distance to the nearest
 * known pixel and 1.09 times it (a (1, sqrt 2) chamfer overestimates by at
 * most 8.3 %), and the value it carries is that of a known pixel no farther
 * than that distance. Known pixels keep distance 0 and their value. */
static void test_chamfer_carries_nearest(void **state)
{
    (void)state;
    enum { W = 60, H = 50 };
    uint8_t hole[W * H];
    float D[W * H], v[4 * W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int i = y * W + x;
            hole[i] = (x - 25) * (x - 25) + (y - 22) * (y - 22) < 15 * 15 || (x < 9 && y >= 38) || (x > 40 && y == 7);
            float init[4] = {hole[i] ? -1.0f : (float)x, hole[i] ? -1.0f : (float)y, 7.0f, (float)i};
            memcpy(v + 4 * i, init, sizeof init);
        }
    pm_pmatch_chamfer(hole, W, H, D, v);
    int holes = 0;
    for (int i = 0; i < W * H; i++) {
        if (!hole[i]) {
            assert_true(D[i] == 0.0f && v[4 * i] == (float)(i % W) && v[4 * i + 1] == (float)(i / W));
            continue;
        }
        holes++;
        double dmin = 1e9;
        for (int j = 0; j < W * H; j++)
            if (!hole[j])
                dmin = fmin(dmin, hypot(i % W - j % W, i / W - j / W));
        int jx = (int)v[4 * i], jy = (int)v[4 * i + 1];
        assert_true(jx >= 0 && jy >= 0 && jx < W && jy < H && !hole[jy * W + jx]);
        double carried = hypot(i % W - jx, i / W - jy);
        assert_true(D[i] >= dmin - 1e-4 && D[i] <= 1.09 * dmin + 1e-4);
        assert_true(carried <= D[i] + 1e-4);
        assert_true(v[4 * i + 2] == 7.0f && v[4 * i + 3] == (float)(jy * W + jx));
    }
    assert_true(holes > 700);
}

/* A straight edge between two textures crosses a box hole: it must come out
 * continuous and sharp. Away from the edge (4 px or more), the 3x3 mean of
 * at least 90 % of the hole pixels lies within a fifth of the two textures'
 * colour difference of their own side's colour. A membrane (harmonic) fill,
 * which fades from one side to the other across the box, gets about 64 %
 * (measured with a Jacobi solver on the same layout). */
static void test_edge_continues(void **state)
{
    (void)state;
    int w = 200, h = 160, edge = 80;
    const double top[3] = {180, 160, 120}, bot[3] = {60, 90, 60};
    pm_image img, mask, out;
    make_image(&img, w, h, 3);
    make_image(&mask, w, h, 1);
    uint32_t s = 99;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = (y < edge ? top[c] : bot[c]) + (double)(lcg(&s) % 41) - 20;
                img.data[3 * ((size_t)y * w + x) + c] = (uint8_t)v;
            }
    fill_box(&img, &mask, 70, 50, 130, 110, &out);
    double span = 0;
    for (int c = 0; c < 3; c++)
        span += (top[c] - bot[c]) * (top[c] - bot[c]);
    span = sqrt(span);
    int good = 0, total = 0;
    for (int y = 51; y < 109; y++) {
        if (abs(2 * y + 1 - 2 * edge) < 8)
            continue;
        const double *want = y < edge ? top : bot;
        for (int x = 71; x < 129; x++) {
            double d2 = 0;
            for (int c = 0; c < 3; c++) {
                double m = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                        m += out.data[3 * ((size_t)(y + dy) * w + x + dx) + c] / 9.0;
                d2 += (m - want[c]) * (m - want[c]);
            }
            good += sqrt(d2) < 0.2 * span;
            total++;
        }
    }
    print_message("edge: %d of %d hole pixels on the right side of the edge\n", good, total);
    assert_true(good >= total * 9 / 10);
    pm_image_free(&out);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* A fan of thin straight bars (a fence or a brick wall's joints seen in
 * perspective: straight lines at slightly different angles) over a noisy
 * texture, with a box hole across one bar: the bar must come out straight
 * and unbroken. In every row of the hole, the brightest 3-pixel run must lie
 * within 2 px of the bar's straight continuation, in at least 90 % of the
 * rows. Without a structure term the fill copies pieces of the neighbouring
 * bars, whose angles differ, and the bar bends or breaks (the engine before
 * the straight-edge step got 23 of 44 rows here). */
static void test_line_continues(void **state)
{
    (void)state;
    int w = 256, h = 256;
    const double vy = -200; /* the bars meet at (128, vy) */
    pm_image img, mask, out;
    make_image(&img, w, h, 3);
    make_image(&mask, w, h, 1);
    uint32_t s = 4242;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int bar = 0;
            for (int k = -6; k <= 6 && !bar; k++) { /* bar k crosses row 128 at x = 146 + 36 k */
                double ux = 18.0 + 36 * k, uy = 128.0 - vy, n = hypot(ux, uy);
                bar = fabs(-(x - 128.0) * uy / n + (y - vy) * ux / n) < 2.0;
            }
            for (int c = 0; c < 3; c++) {
                int v = bar ? 215 : 70 + 10 * c + (int)(lcg(&s) % 91) - 45;
                img.data[3 * ((size_t)y * w + x) + c] = (uint8_t)(v < 0 ? 0 : v);
            }
        }
    fill_box(&img, &mask, 122, 104, 170, 152, &out);
    int good = 0, total = 0;
    for (int y = 106; y < 150; y++, total++) {
        double want = 128.0 + (y - vy) * 18.0 / (128.0 - vy), best = -1;
        int at = 0;
        for (int x = 124; x < 168; x++) {
            double m = 0;
            for (int dx = -1; dx <= 1; dx++)
                m += out.data[3 * ((size_t)y * w + x + dx) + 1];
            if (m > best)
                best = m, at = x;
        }
        good += fabs(at - want) <= 2.0 && best > 3 * 170;
    }
    print_message("bars: %d of %d hole rows on the bar's straight continuation\n", good, total);
    assert_true(good >= total * 9 / 10);
    pm_image_free(&out);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* A hole big enough (more than 65536 pixels) that the smooth fill also runs
 * on several threads; the result must not change. */
static void test_determinism_large_hole(void **state)
{
    (void)state;
    pm_image img, mask, a, c;
    make_image(&img, 384, 288, 3);
    make_image(&mask, 384, 288, 1);
    fill_natural(&img, 13);
    mask_box(&mask, 40, 20, 320, 260); /* 280x240 = 67200 pixels */
    pm_patchmatch_params p1 = params_threads(1), p2 = params_threads(2);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p2, &a, NULL), 0);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p1, &c, NULL), 0);
    assert_memory_equal(a.data, c.data, (size_t)384 * 288 * 3);
    assert_outside_exact(&img, &a, &mask);
    pm_image_free(&a);
    pm_image_free(&c);
    pm_image_free(&img);
    pm_image_free(&mask);
}

static void test_determinism(void **state)
{
    (void)state;
    pm_image img, mask, a, b, c;
    make_image(&img, 120, 90, 3);
    make_image(&mask, 120, 90, 1);
    fill_natural(&img, 3);
    mask_box(&mask, 20, 15, 60, 50);
    mask_box(&mask, 70, 60, 110, 70);
    pm_patchmatch_params p1 = params_threads(1), p2 = params_threads(2);
    p1.seed = p2.seed = 987654321;
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p2, &a, NULL), 0);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p2, &b, NULL), 0);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p1, &c, NULL), 0);
    assert_memory_equal(a.data, b.data, (size_t)120 * 90 * 3);
    assert_memory_equal(a.data, c.data, (size_t)120 * 90 * 3);
    pm_image_free(&a);
    pm_image_free(&b);
    pm_image_free(&c);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* What lies under the hole in the input is never looked at. */
static void test_hole_content_ignored(void **state)
{
    (void)state;
    pm_image img, img2, mask, a, b;
    make_image(&img, 100, 80, 3);
    make_image(&mask, 100, 80, 1);
    fill_natural(&img, 11);
    mask_box(&mask, 30, 30, 70, 60);
    assert_int_equal(pm_image_clone(&img2, &img), 0);
    uint32_t s = 5;
    for (size_t i = 0; i < (size_t)100 * 80; i++)
        if (mask.data[i])
            for (int c = 0; c < 3; c++)
                img2.data[3 * i + c] = (uint8_t)lcg(&s);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, NULL, &a, NULL), 0);
    assert_int_equal(pm_patchmatch_inpaint(&img2, &mask, NULL, &b, NULL), 0);
    assert_memory_equal(a.data, b.data, (size_t)100 * 80 * 3);
    pm_image_free(&a);
    pm_image_free(&b);
    pm_image_free(&img);
    pm_image_free(&img2);
    pm_image_free(&mask);
}

/* Holes along all four borders and in a corner, in a periodic texture. */
static void test_mask_touching_border(void **state)
{
    (void)state;
    pm_image img, mask, out;
    make_image(&img, 128, 96, 3);
    make_image(&mask, 128, 96, 1);
    fill_tiled(&img, 16, 8, 77);
    mask_box(&mask, 0, 0, 20, 14);      /* top-left corner */
    mask_box(&mask, 50, 0, 60, 96);     /* a column from top to bottom border */
    mask_box(&mask, 100, 40, 128, 52);  /* touching the right border */
    mask_box(&mask, 10, 90, 40, 96);    /* along the bottom border */
    pm_patchmatch_params p = params_threads(2);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p, &out, NULL), 0);
    assert_outside_exact(&img, &out, &mask);
    double psnr = hole_psnr(&img, &out, &mask);
    print_message("border holes: hole PSNR %.2f dB\n", psnr);
    /* Same argument as the periodic test: exact sources exist for every patch. */
    assert_true(psnr > 30.0);
    pm_image_free(&out);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* A mask covering about 90 %: only a 40x40 window of a 128x128 image is
 * known. Every filled pixel is a weighted mean of known pixels, so it lies
 * within the known pixels' range, channel by channel. */
static void test_mask_ninety_percent(void **state)
{
    (void)state;
    pm_image img, mask, out;
    make_image(&img, 128, 128, 3);
    make_image(&mask, 128, 128, 1);
    fill_natural(&img, 21);
    memset(mask.data, 255, (size_t)128 * 128);
    for (int y = 70; y < 110; y++)
        memset(mask.data + (size_t)y * 128 + 20, 0, 40);
    size_t hole = 0;
    for (size_t i = 0; i < (size_t)128 * 128; i++)
        hole += mask.data[i] != 0;
    assert_true(hole > (size_t)(0.89 * 128 * 128));
    int lo[3] = {255, 255, 255}, hi[3] = {0, 0, 0};
    for (size_t i = 0; i < (size_t)128 * 128; i++)
        if (!mask.data[i])
            for (int c = 0; c < 3; c++) {
                int v = img.data[3 * i + c];
                lo[c] = v < lo[c] ? v : lo[c];
                hi[c] = v > hi[c] ? v : hi[c];
            }
    pm_patchmatch_params p = params_threads(2);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p, &out, NULL), 0);
    assert_outside_exact(&img, &out, &mask);
    for (size_t i = 0; i < (size_t)128 * 128; i++)
        if (mask.data[i])
            for (int c = 0; c < 3; c++) {
                assert_true(out.data[3 * i + c] >= lo[c]);
                assert_true(out.data[3 * i + c] <= hi[c]);
            }
    pm_image_free(&out);
    pm_image_free(&img);
    pm_image_free(&mask);
}

static void test_no_source(void **state)
{
    (void)state;
    pm_image img, mask, out;
    make_image(&img, 64, 48, 3);
    make_image(&mask, 64, 48, 1);
    fill_natural(&img, 1);
    memset(mask.data, 1, (size_t)64 * 48);
    memset(&out, 0xAB, sizeof out);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, NULL, &out, NULL), PM_ENOSOURCE);
    assert_null(out.data);
    assert_true(strstr(pm_error_detail(), "mask") != NULL);

    /* Known pixels remain, but no 7x7 patch fits between the hole's stripes. */
    memset(mask.data, 0, (size_t)64 * 48);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++)
            if (x % 6 == 0 || y % 6 == 0)
                mask.data[(size_t)y * 64 + x] = 1;
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, NULL, &out, NULL), PM_ENOSOURCE);
    assert_null(out.data);

    /* An image smaller than one patch. */
    pm_image tiny, tmask;
    make_image(&tiny, 5, 5, 3);
    make_image(&tmask, 5, 5, 1);
    tmask.data[12] = 1;
    assert_int_equal(pm_patchmatch_inpaint(&tiny, &tmask, NULL, &out, NULL), PM_ENOSOURCE);
    pm_image_free(&tiny);
    pm_image_free(&tmask);
    pm_image_free(&img);
    pm_image_free(&mask);
}

static void test_empty_mask(void **state)
{
    (void)state;
    pm_image img, mask, out;
    make_image(&img, 40, 30, 3);
    make_image(&mask, 40, 30, 1);
    fill_natural(&img, 2);
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, NULL, &out, NULL), 0);
    assert_memory_equal(img.data, out.data, (size_t)40 * 30 * 3);
    pm_image_free(&out);
    pm_image_free(&img);
    pm_image_free(&mask);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    pm_image img, mask, small, rgba, out;
    make_image(&img, 40, 30, 3);
    make_image(&mask, 40, 30, 1);
    make_image(&small, 20, 30, 1);
    make_image(&rgba, 40, 30, 4);
    mask.data[100] = 1;
    assert_int_equal(pm_patchmatch_inpaint(&img, &small, NULL, &out, NULL), PM_EMISMATCH);
    assert_int_equal(pm_patchmatch_inpaint(&rgba, &mask, NULL, &out, NULL), PM_EINVAL);
    assert_int_equal(pm_patchmatch_inpaint(&img, &img, NULL, &out, NULL), PM_EINVAL);
    pm_patchmatch_params p = pm_patchmatch_default_params();
    p.patch_size = 8;
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p, &out, NULL), PM_EINVAL);
    p = pm_patchmatch_default_params();
    p.em_iters = 0;
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p, &out, NULL), PM_EINVAL);
    assert_null(out.data);
    pm_image_free(&img);
    pm_image_free(&mask);
    pm_image_free(&small);
    pm_image_free(&rgba);
}

struct progress_log {
    int calls, last, max, stop_at, monotonic;
};

static int on_progress(void *user, int value, int max)
{
    struct progress_log *l = user;
    if (l->calls > 0 && (value < l->last || max != l->max))
        l->monotonic = 0;
    l->calls++;
    l->last = value;
    l->max = max;
    return l->stop_at >= 0 && value >= l->stop_at;
}

static void test_progress_and_cancel(void **state)
{
    (void)state;
    pm_image img, mask, out;
    make_image(&img, 160, 120, 3);
    make_image(&mask, 160, 120, 1);
    fill_natural(&img, 9);
    mask_box(&mask, 40, 30, 100, 80);

    struct progress_log full = {.stop_at = -1, .monotonic = 1};
    pm_run_ctx ctx = {.progress = on_progress, .progress_user = &full};
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, NULL, &out, &ctx), 0);
    assert_true(full.monotonic);
    assert_true(full.max >= 2);
    assert_int_equal(full.last, full.max);
    pm_image_free(&out);

    struct progress_log stop = {.stop_at = 2, .monotonic = 1};
    ctx.progress_user = &stop;
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, NULL, &out, &ctx), PM_ECANCELLED);
    assert_null(out.data);
    assert_int_equal(stop.last, 2);
    assert_true(stop.calls < full.calls);

    struct progress_log now = {.stop_at = 0, .monotonic = 1};
    ctx.progress_user = &now;
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, NULL, &out, &ctx), PM_ECANCELLED);
    assert_int_equal(now.calls, 1);
    pm_image_free(&img);
    pm_image_free(&mask);
}

/* The registry description drives the same engine, and its memory estimate
 * covers what a run actually allocates. */
static void test_registry_entry(void **state)
{
    (void)state;
    const pm_model_desc *d = &pm_model_patchmatch;
    assert_string_equal(d->name, "patchmatch");
    assert_int_equal(d->task, PM_TASK_INPAINT);
    assert_int_equal(d->needs_file, 0);
    assert_null(d->colorize);
    assert_non_null(d->load);
    assert_non_null(d->unload);
    assert_non_null(d->inpaint);
    assert_non_null(d->mem_estimate);

    pm_model_opts opts = {.threads = 2, .seed = 42};
    void *st = NULL;
    assert_int_equal(d->load(NULL, &opts, &st), 0);
    assert_non_null(st);

    /* A hole spread over the whole image (the field spans all of it) and
     * thick enough to use coarser levels. */
    enum { W = 480, H = 360 };
    pm_image img, mask, out, ref;
    make_image(&img, W, H, 3);
    make_image(&mask, W, H, 1);
    fill_natural(&img, 5);
    for (int k = 0; k < 8; k++)
        mask_box(&mask, 10 + 56 * k, 10 + 40 * k, 40 + 56 * k, 50 + 40 * k);
    mask_box(&mask, 0, 170, W, 180);

    size_t before = pm_mem_in_use();
    pm_mem_reset_peak();
    assert_int_equal(d->inpaint(st, &img, &mask, &out, NULL), 0);
    size_t used = pm_mem_peak() - before;
    uint64_t est = d->mem_estimate(st, W, H, 0);
    print_message("peak %zu bytes, estimate %llu bytes\n", used, (unsigned long long)est);
    /* Enough for admission control, and not so high that it wastes capacity. */
    assert_true(used <= est);
    assert_true(est <= 3 * (uint64_t)used);
    assert_outside_exact(&img, &out, &mask);

    pm_patchmatch_params p = pm_patchmatch_default_params();
    p.threads = 2;
    p.seed = 42;
    assert_int_equal(pm_patchmatch_inpaint(&img, &mask, &p, &ref, NULL), 0);
    assert_memory_equal(out.data, ref.data, (size_t)W * H * 3);

    d->unload(st);
    pm_image_free(&ref);
    pm_image_free(&out);
    pm_image_free(&img);
    pm_image_free(&mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_sources),
        cmocka_unit_test(test_patch_distance),
        cmocka_unit_test(test_nnf_invariants),
        cmocka_unit_test(test_nnf_threads_agree),
        cmocka_unit_test(test_periodic_reconstruction),
        cmocka_unit_test(test_texture_detail),
        cmocka_unit_test(test_edge_continues),
        cmocka_unit_test(test_line_continues),
        cmocka_unit_test(test_chamfer_carries_nearest),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_determinism_large_hole),
        cmocka_unit_test(test_hole_content_ignored),
        cmocka_unit_test(test_mask_touching_border),
        cmocka_unit_test(test_mask_ninety_percent),
        cmocka_unit_test(test_no_source),
        cmocka_unit_test(test_empty_mask),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_progress_and_cancel),
        cmocka_unit_test(test_registry_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
