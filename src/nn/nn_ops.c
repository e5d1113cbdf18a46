/* Custom steps of a plan: reflect padding (optionally fused with an in-place
 * residual add), element-wise add, and the FFTW3f real 2-D transforms of the
 * Fourier unit. They work directly on oneDNN layouts described by pm_nn_view
 * (channel-blocked nChw{4,8,16}c, nhwc, nchw). */
#include "nn/nn_internal.h"

#include "base/base.h"

#include <pthread.h>
#include <string.h>

/* FFTW's planner is not thread-safe: every plan creation and destruction
 * holds this lock. Executing a plan (new-array execute) is thread-safe. */
static pthread_mutex_t fftw_lock = PTHREAD_MUTEX_INITIALIZER;

static int thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static size_t esize(pm_nn_dt dt)
{
    return dt == PM_NN_BF16 ? 2 : 4;
}

static int view_of(pm_nn_plan *p, int t, uint8_t *arena, pm_nn_view *v)
{
    int rc = pm_nn_view_from_md(v, &p->t[t].md);
    if (rc)
        return rc;
    v->data = arena + p->t[t].off;
    return 0;
}

/* Channels of a tensor are padded (blocked layout, C not a multiple of the block). */
static int padded(const pm_nn_plan *p, int t)
{
    return p->t[t].md.padded_dims[1] != p->t[t].md.dims[1];
}

/* ------------------------------------------------------------- pad / add */

/* Pixel geometry of a layout for row-wise copies: planes of rows of pixels of
 * `pix` contiguous elements. */
typedef struct geo {
    int planes, pix;
    ptrdiff_t plane_stride, row_stride;
} geo;

static int geometry(const pm_nn_view *v, geo *g)
{
    if (v->blk > 1) {
        g->planes = (v->c + v->blk - 1) / v->blk;
        g->pix = v->blk;
        g->plane_stride = v->sc;
    } else if (v->sc == 1) {
        g->planes = 1;
        g->pix = v->c;
        g->plane_stride = 0;
    } else {
        g->planes = v->c;
        g->pix = 1;
        g->plane_stride = v->sc;
    }
    g->row_stride = v->sh;
    if (v->sw != g->pix)
        return pm_errorf(PM_EUNSUPPORTED, "tensor rows are not dense");
    return 0;
}

static void add_row(void *dst, const void *src, size_t n, pm_nn_dt dt)
{
    if (dt == PM_NN_F32) {
        float *d = dst;
        const float *s = src;
        for (size_t i = 0; i < n; i++)
            d[i] += s[i];
    } else {
        uint16_t *d = dst;
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            d[i] = pm_nn_f32_to_bf16(pm_nn_bf16_to_f32(d[i]) + pm_nn_bf16_to_f32(s[i]));
    }
}

static inline int reflect(int i, int n)
{
    if (i < 0)
        return -i;
    if (i >= n)
        return 2 * n - 2 - i;
    return i;
}

static int run_pad(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    pm_nn_view vs, vd, va;
    geo gs, gd, ga;
    int rc;
    if ((rc = view_of(p, s->t_src, arena, &vs)) || (rc = view_of(p, s->t_dst, arena, &vd)) ||
        (rc = geometry(&vs, &gs)) || (rc = geometry(&vd, &gd)))
        return rc;
    size_t es = esize(vs.dt);
    int pad = s->pad, H = vs.h, W = vs.w, P = gs.pix, nt = p->threads;
    if (s->t_add >= 0) {
        if ((rc = view_of(p, s->t_add, arena, &va)) || (rc = geometry(&va, &ga)))
            return rc;
        int items = gs.planes * H;
        PM_OMP_FOR(nt)
        for (int it = 0; it < items; it++) {
            int pl = it / H, y = it % H;
            uint8_t *rs = (uint8_t *)vs.data + ((ptrdiff_t)pl * gs.plane_stride + (ptrdiff_t)y * gs.row_stride) * es;
            const uint8_t *ra =
                (const uint8_t *)va.data + ((ptrdiff_t)pl * ga.plane_stride + (ptrdiff_t)y * ga.row_stride) * es;
            add_row(rs, ra, (size_t)W * P, vs.dt);
        }
    }
    int Hd = vd.h, items = gd.planes * Hd, win0 = s->win0, full_h = s->full_h, row0 = s->row0;
    PM_OMP_FOR(nt)
    for (int it = 0; it < items; it++) {
        int pl = it / Hd, y = it % Hd;
        int sy = reflect(win0 + y, full_h) - row0;
        const uint8_t *rs =
            (const uint8_t *)vs.data + ((ptrdiff_t)pl * gs.plane_stride + (ptrdiff_t)sy * gs.row_stride) * es;
        uint8_t *rd = (uint8_t *)vd.data + ((ptrdiff_t)pl * gd.plane_stride + (ptrdiff_t)y * gd.row_stride) * es;
        size_t px = (size_t)P * es;
        memcpy(rd + (size_t)pad * px, rs, (size_t)W * px);
        for (int j = 0; j < pad; j++) {
            memcpy(rd + (size_t)(pad - 1 - j) * px, rs + (size_t)(1 + j) * px, px);
            memcpy(rd + (size_t)(pad + W + j) * px, rs + (size_t)(W - 2 - j) * px, px);
        }
    }
    return 0;
}

static int run_add(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    pm_nn_dt dt = p->t[s->t_dst].dt;
    size_t es = esize(dt);
    size_t n = p->t[s->t_dst].bytes / es;
    uint8_t *d = arena + p->t[s->t_dst].off;
    const uint8_t *a = arena + p->t[s->t_src].off;
    const size_t chunk = 1 << 14;
    long chunks = (long)((n + chunk - 1) / chunk);
    int nt = p->threads;
    PM_OMP_FOR(nt)
    for (long c = 0; c < chunks; c++) {
        size_t b = (size_t)c * chunk, e = b + chunk < n ? b + chunk : n;
        add_row(d + b * es, a + b * es, e - b, dt);
    }
    return 0;
}

/* -------------------------------------------------------- reflect border */

int pm_nn__lower_border(pm_nn_plan *p, const nn_op *op)
{
    if (!p->t[op->dst].fixed)
        return p->err = pm_errorf(PM_EINTERNAL, "%s: tensor is never produced", op->name);
    pm_nn_view v;
    geo g;
    if (pm_nn_view_from_md(&v, &p->t[op->dst].md) || geometry(&v, &g))
        return p->err = pm_errorf(PM_EUNSUPPORTED, "%s: layout not supported", op->name);
    nn_step *s = pm_nn__new_step(p, ST_BORDER, op->name);
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    snprintf(s->impl, sizeof s->impl, "reflect border");
    s->t_dst = op->dst;
    memcpy(s->border, op->border, sizeof s->border);
    return 0;
}

static int run_border(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    pm_nn_view v;
    geo g;
    int rc;
    if ((rc = view_of(p, s->t_dst, arena, &v)) || (rc = geometry(&v, &g)))
        return rc;
    size_t es = esize(v.dt), px = (size_t)g.pix * es;
    int H = v.h, W = v.w, top = s->border[0], bottom = s->border[1], left = s->border[2], right = s->border[3];
    int nt = p->threads, items = g.planes * H;
    if (left || right) {
        PM_OMP_FOR(nt)
        for (int it = 0; it < items; it++) {
            int pl = it / H, y = it % H;
            uint8_t *r = (uint8_t *)v.data + ((ptrdiff_t)pl * g.plane_stride + (ptrdiff_t)y * g.row_stride) * (ptrdiff_t)es;
            for (int j = 0; j < left; j++)
                memcpy(r + (size_t)(left - 1 - j) * px, r + (size_t)(left + 1 + j) * px, px);
            for (int j = 0; j < right; j++)
                memcpy(r + (size_t)(W - right + j) * px, r + (size_t)(W - right - 2 - j) * px, px);
        }
    }
    if (top || bottom) {
        PM_OMP_FOR(nt)
        for (int pl = 0; pl < g.planes; pl++) {
            uint8_t *base = (uint8_t *)v.data + (ptrdiff_t)pl * g.plane_stride * (ptrdiff_t)es;
            size_t rs = (size_t)g.row_stride * es;
            for (int j = 0; j < top; j++)
                memcpy(base + (size_t)(top - 1 - j) * rs, base + (size_t)(top + 1 + j) * rs, (size_t)W * px);
            for (int j = 0; j < bottom; j++)
                memcpy(base + (size_t)(H - bottom + j) * rs, base + (size_t)(H - bottom - 2 - j) * rs, (size_t)W * px);
        }
    }
    return 0;
}

/* ----------------------------------------------------------- interleave */

int pm_nn__lower_interleave(pm_nn_plan *p, const nn_op *op)
{
    int q[4];
    for (int i = 0; i < 4; i++) {
        q[i] = op->quad[i];
        if (!p->t[q[i]].fixed)
            return p->err = pm_errorf(PM_EINTERNAL, "%s: input %d is never produced", op->name, i);
    }
    pm_nn_view v;
    if (pm_nn_view_from_md(&v, &p->t[q[0]].md))
        return p->err = pm_errorf(PM_EUNSUPPORTED, "%s: layout not supported", op->name);
    for (int i = 1; i < 4; i++)
        if (!dnnl_memory_desc_equal(&p->t[q[i]].md, &p->t[q[0]].md))
            return p->err = pm_errorf(PM_EINTERNAL, "%s: the four inputs differ in layout", op->name);
    dnnl_memory_desc_t md;
    if (pm_nn__md_like(&md, &p->t[q[0]].md, p->t[op->dst].c, p->t[op->dst].h, p->t[op->dst].w, p->t[op->dst].dt))
        return p->err = PM_EINTERNAL;
    if (!p->t[op->dst].fixed)
        pm_nn__fix(p, op->dst, &md);
    else if (!dnnl_memory_desc_equal(&md, &p->t[op->dst].md))
        return p->err = pm_errorf(PM_EUNSUPPORTED, "%s: output layout differs from the inputs'", op->name);
    nn_step *s = pm_nn__new_step(p, ST_INTERLEAVE, op->name);
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    snprintf(s->impl, sizeof s->impl, "depth-to-space 2x2");
    for (int i = 0; i < 4; i++)
        s->t_quad[i] = q[i];
    s->t_dst = op->dst;
    return 0;
}

static int run_interleave(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    pm_nn_view vi[4], vd;
    geo gi, gd;
    int rc;
    for (int i = 0; i < 4; i++)
        if ((rc = view_of(p, s->t_quad[i], arena, &vi[i])))
            return rc;
    if ((rc = view_of(p, s->t_dst, arena, &vd)) || (rc = geometry(&vi[0], &gi)) || (rc = geometry(&vd, &gd)))
        return rc;
    size_t px = (size_t)gi.pix * esize(vd.dt);
    int H = vd.h, W = vi[0].w, items = gd.planes * H, nt = p->threads;
    PM_OMP_FOR(nt)
    for (int it = 0; it < items; it++) {
        int pl = it / H, Y = it % H, py = Y & 1, y = Y >> 1;
        uint8_t *rd = (uint8_t *)vd.data + ((ptrdiff_t)pl * gd.plane_stride + (ptrdiff_t)Y * gd.row_stride) * (ptrdiff_t)esize(vd.dt);
        const uint8_t *r0 = (const uint8_t *)vi[2 * py].data +
                            ((ptrdiff_t)pl * gi.plane_stride + (ptrdiff_t)y * gi.row_stride) * (ptrdiff_t)esize(vd.dt);
        const uint8_t *r1 = (const uint8_t *)vi[2 * py + 1].data +
                            ((ptrdiff_t)pl * gi.plane_stride + (ptrdiff_t)y * gi.row_stride) * (ptrdiff_t)esize(vd.dt);
        for (int x = 0; x < W; x++) {
            memcpy(rd + (size_t)(2 * x) * px, r0 + (size_t)x * px, px);
            memcpy(rd + (size_t)(2 * x + 1) * px, r1 + (size_t)x * px, px);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ FFT */

/* Channels per FFT group: the largest of 8, 4, 2, 1 that divides C and stays
 * inside one channel block of every blocked layout involved. */
static int group_size(int c, const int *blocks, int nblocks)
{
    static const int cand[] = {8, 4, 2, 1};
    for (int i = 0; i < 4; i++) {
        int g = cand[i], ok = c % g == 0;
        for (int j = 0; j < nblocks && ok; j++)
            if (blocks[j] > 1 && blocks[j] % g != 0)
                ok = 0;
        if (ok)
            return g;
    }
    return 1;
}

static dnnl_format_tag_t complex_tag(const pm_nn_view *v)
{
    if (v->blk == 16)
        return dnnl_nChw16c;
    if (v->blk == 8)
        return dnnl_nChw8c;
    return dnnl_nhwc;
}

/* Spectrum layouts must keep Re and Im of a channel adjacent: channel-blocked
 * with an even block, or nhwc. */
static int complex_ok(const pm_nn_view *v)
{
    return (v->blk > 1 && v->blk % 2 == 0) || (v->blk == 1 && v->sc == 1);
}

/* Floats of one thread's scratch, rounded up to whole cache lines. */
static size_t chunk_floats(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* A temporary tensor of `floats` per thread. */
static int scratch_tensor(pm_nn_plan *p, size_t floats)
{
    int t = pm_nn__new_tensor(p, 0, 0, 0, PM_NN_F32);
    if (t < 0)
        return -1;
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {(dnnl_dim_t)((size_t)p->threads * floats)};
    dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_f32, dnnl_x);
    pm_nn__fix(p, t, &md);
    return t;
}

/* FFTW plans are made with FFTW_ESTIMATE (MEASURE took 0.08 s of a one-shot
 * LaMa process for no faster transform; docs/benchmarks.md) on scratch
 * arrays, under the planner lock:
 * r2c into a spectrum with the strides of *vo (out_bytes), or c2r when vo
 * is NULL. */
static fftwf_plan plan_fft(int H, int W, int G, const pm_nn_view *vo, size_t out_bytes, unsigned extra)
{
    int wf = W / 2 + 1;
    fftwf_iodim many = {G, 1, 1};
    float *re = fftwf_malloc((size_t)H * W * G * sizeof(float));
    fftwf_complex *cx = fftwf_malloc(vo ? out_bytes : (size_t)H * wf * G * sizeof(fftwf_complex));
    fftwf_plan pl = NULL;
    if (re && cx) {
        pthread_mutex_lock(&fftw_lock);
        if (vo) {
            fftwf_iodim dims[2] = {{H, W * G, (int)(vo->sh / 2)}, {W, G, (int)(vo->sw / 2)}};
            pl = fftwf_plan_guru_dft_r2c(2, dims, 1, &many, re, cx, FFTW_ESTIMATE | extra);
        } else {
            fftwf_iodim dims[2] = {{H, wf * G, W * G}, {W, G, G}};
            pl = fftwf_plan_guru_dft_c2r(2, dims, 1, &many, cx, re, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
        }
        pthread_mutex_unlock(&fftw_lock);
    }
    fftwf_free(re);
    fftwf_free(cx);
    return pl;
}

/* r2c: each group of G channels is gathered into a per-thread [H][W][G]
 * buffer (the layouts keep a channel's pixels far apart), transformed, and
 * written straight into the spectrum tensor. */
int pm_nn__lower_fft(pm_nn_plan *p, const nn_op *op)
{
    int src = op->src;
    pm_nn__fix_default(p, src);
    pm_nn_view vi, vo;
    if (pm_nn_view_from_md(&vi, &p->t[src].md))
        return p->err = pm_errorf(PM_EUNSUPPORTED, "%s: FFT input layout not supported", op->name);
    dnnl_memory_desc_t omd;
    dnnl_dims_t od = {1, p->t[op->dst].c, p->t[op->dst].h, p->t[op->dst].w};
    dnnl_memory_desc_init_by_tag(&omd, 4, od, dnnl_f32, complex_tag(&vi));
    pm_nn__fix(p, op->dst, &omd);
    pm_nn_view_from_md(&vo, &omd);

    int C = vi.c, H = vi.h, W = vi.w;
    int blocks[2] = {vi.blk, vo.blk > 1 ? vo.blk / 2 : 1};
    int G = group_size(C, blocks, 2);
    int tmp = scratch_tensor(p, chunk_floats((size_t)H * W * G));
    if (tmp < 0)
        return p->err;
    nn_step *s = pm_nn__new_step(p, ST_RFFT, op->name);
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    snprintf(s->impl, sizeof s->impl, "fftw r2c %dx%d x%d", H, W, G);
    s->t_src = src;
    s->t_dst = op->dst;
    s->t_tmp = tmp;
    s->gsize = G;
    s->groups = C / G;
    unsigned extra = 0;
    for (int g = 0; g < s->groups; g++)
        if (pm_nn_view_off(&vo, 2 * g * G, 0, 0) % 4 != 0)
            extra = FFTW_UNALIGNED;
    s->fplan = plan_fft(H, W, G, &vo, p->t[op->dst].bytes, extra);
    s->flops = 2.5 * C * H * W * __builtin_log2((double)H * W);
    if (!s->fplan)
        return p->err = pm_errorf(PM_EINTERNAL, "FFTW could not plan a %dx%d real FFT for %s", W, H, op->name);
    return 0;
}

/* c2r: each group's spectrum is gathered into a per-thread [H][W/2+1][G]
 * buffer, transformed into a [H][W][G] buffer, scaled, added to `add` and
 * written out (converting to bf16 when asked). */
int pm_nn__lower_ifft(pm_nn_plan *p, const nn_op *op)
{
    int freq = op->src, add = op->add;
    pm_nn_view vf, va, vd;
    if (!p->t[add].fixed) {
        dnnl_memory_desc_t md;
        pm_nn__md_like(&md, NULL, p->t[add].c, p->t[add].h, p->t[add].w, p->t[add].dt);
        pm_nn__fix(p, add, &md);
    }
    if (p->t[add].dt != PM_NN_F32)
        return p->err = pm_errorf(PM_EINTERNAL, "%s: the addend of an inverse FFT must be f32", op->name);
    if (pm_nn_view_from_md(&vf, &p->t[freq].md) || !complex_ok(&vf) || pm_nn_view_from_md(&va, &p->t[add].md))
        return p->err = pm_errorf(PM_EUNSUPPORTED, "%s: inverse FFT layout not supported", op->name);
    dnnl_memory_desc_t dmd;
    if (pm_nn__md_like(&dmd, &p->t[add].md, p->t[op->dst].c, p->t[op->dst].h, p->t[op->dst].w, op->out_dt))
        return p->err = PM_EINTERNAL;
    pm_nn__fix(p, op->dst, &dmd);
    pm_nn_view_from_md(&vd, &dmd);

    int C = va.c, H = va.h, W = va.w, wf = W / 2 + 1;
    int blocks[3] = {vf.blk > 1 ? vf.blk / 2 : 1, va.blk, vd.blk};
    int G = group_size(C, blocks, 3);
    int tmp = scratch_tensor(p, chunk_floats((size_t)H * wf * G * 2) + chunk_floats((size_t)H * W * G));
    if (tmp < 0)
        return p->err;
    nn_step *s = pm_nn__new_step(p, ST_IRFFT, op->name);
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    snprintf(s->impl, sizeof s->impl, "fftw c2r %dx%d x%d", H, W, G);
    s->t_src = freq;
    s->t_add = add;
    s->t_dst = op->dst;
    s->t_tmp = tmp;
    s->gsize = G;
    s->groups = C / G;
    s->scale = op->scale;
    s->fplan = plan_fft(H, W, G, NULL, 0, 0);
    s->flops = 2.5 * C * H * W * __builtin_log2((double)H * W);
    if (!s->fplan)
        return p->err = pm_errorf(PM_EINTERNAL, "FFTW could not plan a %dx%d inverse FFT for %s", W, H, op->name);
    return 0;
}

static void zero_tensor(pm_nn_plan *p, int t, uint8_t *arena)
{
    memset(arena + p->t[t].off, 0, p->t[t].bytes);
}

static int run_rfft(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    pm_nn_view vi, vo;
    int rc;
    if ((rc = view_of(p, s->t_src, arena, &vi)) || (rc = view_of(p, s->t_dst, arena, &vo)))
        return rc;
    if (padded(p, s->t_dst))
        zero_tensor(p, s->t_dst, arena);
    int G = s->gsize, ng = s->groups, nt = p->threads, H = vi.h, W = vi.w;
    size_t chunk = chunk_floats((size_t)H * W * G);
    float *tmp_all = (float *)(arena + p->t[s->t_tmp].off);
    ptrdiff_t gi = vi.blk > 1 ? 1 : vi.sc;
    fftwf_plan plan = s->fplan;
    PM_OMP_FOR(nt)
    for (int g = 0; g < ng; g++) {
        float *tmp = tmp_all + (size_t)thread_index() * chunk;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float *a = (const float *)vi.data + pm_nn_view_off(&vi, g * G, y, x);
                float *t = tmp + ((size_t)y * W + x) * G;
                if (gi == 1)
                    memcpy(t, a, (size_t)G * sizeof(float));
                else
                    for (int j = 0; j < G; j++)
                        t[j] = a[j * gi];
            }
        fftwf_complex *out = (fftwf_complex *)((float *)vo.data + pm_nn_view_off(&vo, 2 * g * G, 0, 0));
        fftwf_execute_dft_r2c(plan, tmp, out);
    }
    return 0;
}

static int run_irfft(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    pm_nn_view vf, va, vd;
    int rc;
    if ((rc = view_of(p, s->t_src, arena, &vf)) || (rc = view_of(p, s->t_add, arena, &va)) ||
        (rc = view_of(p, s->t_dst, arena, &vd)))
        return rc;
    if (padded(p, s->t_dst))
        zero_tensor(p, s->t_dst, arena);
    int G = s->gsize, ng = s->groups, nt = p->threads, H = va.h, W = va.w, wf = W / 2 + 1;
    size_t cchunk = chunk_floats((size_t)H * wf * G * 2), chunk = cchunk + chunk_floats((size_t)H * W * G);
    float scale = s->scale;
    float *tmp_all = (float *)(arena + p->t[s->t_tmp].off);
    fftwf_plan plan = s->fplan;
    ptrdiff_t ga = va.blk > 1 ? 1 : va.sc, gd = vd.blk > 1 ? 1 : vd.sc;
    PM_OMP_FOR(nt)
    for (int g = 0; g < ng; g++) {
        float *ctmp = tmp_all + (size_t)thread_index() * chunk;
        float *tmp = ctmp + cchunk;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < wf; x++)
                memcpy(ctmp + ((size_t)y * wf + x) * 2 * G,
                       (const float *)vf.data + pm_nn_view_off(&vf, 2 * g * G, y, x), (size_t)2 * G * sizeof(float));
        fftwf_execute_dft_c2r(plan, (fftwf_complex *)ctmp, tmp);
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                const float *t = tmp + ((size_t)y * W + x) * G;
                const float *a = (const float *)va.data + pm_nn_view_off(&va, g * G, y, x);
                if (vd.dt == PM_NN_F32) {
                    float *d = (float *)vd.data + pm_nn_view_off(&vd, g * G, y, x);
                    for (int j = 0; j < G; j++)
                        d[j * gd] = a[j * ga] + scale * t[j];
                } else {
                    uint16_t *d = (uint16_t *)vd.data + pm_nn_view_off(&vd, g * G, y, x);
                    for (int j = 0; j < G; j++)
                        d[j * gd] = pm_nn_f32_to_bf16(a[j * ga] + scale * t[j]);
                }
            }
        }
    }
    return 0;
}

int pm_nn__run_custom(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    switch (s->kind) {
    case ST_PAD:
        return run_pad(p, s, arena);
    case ST_ADD:
        return run_add(p, s, arena);
    case ST_RFFT:
        return run_rfft(p, s, arena);
    case ST_IRFFT:
        return run_irfft(p, s, arena);
    case ST_INTERLEAVE:
        return run_interleave(p, s, arena);
    case ST_BORDER:
        return run_border(p, s, arena);
    case ST_ELT:
        return pm_nn__run_elt(p, s, arena);
    case ST_SMALLCONV:
        return pm_nn__run_smallconv(p, s, arena);
    default:
        return 0;
    }
}

void pm_nn__free_custom(nn_step *s)
{
    if (s->fplan) {
        pthread_mutex_lock(&fftw_lock);
        fftwf_destroy_plan(s->fplan);
        pthread_mutex_unlock(&fftw_lock);
        s->fplan = NULL;
    }
}
