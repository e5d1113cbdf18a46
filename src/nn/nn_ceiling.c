/* The machine's own ceiling: one convolution of the dominant shape of the
 * networks (LaMa's residual blocks: 3x3, 384 -> 384 channels on 64x64),
 * run alone through the same plan machinery the models use, and the work
 * a plan does, so that a model's speed can be printed against it. */
#include "nn/nn_internal.h"

#include "base/base.h"


double pm_nn_plan_gflop(const pm_nn_plan *p)
{
    double f = 0;
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].kind == ST_PRIM || p->steps[i].kind == ST_SMALLCONV)
            f += p->steps[i].flops;
    return f / 1e9;
}

int pm_nn_ceiling(pm_nn_ctx *ctx, pm_nn_dt dt, int threads, int runs, double *gflops)
{
    enum { C = 384, H = 64 };
    *gflops = 0;
    float *wt = pm_malloc((size_t)C * C * 9 * sizeof(float));
    if (!wt)
        return pm_errorf(PM_ENOMEM, "out of memory for the ceiling measurement");
    uint32_t r = 12345u;
    for (size_t i = 0; i < (size_t)C * C * 9; i++) {
        r = r * 1664525u + 1013904223u;
        wt[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.05f;
    }
    pm_nn_conv_desc d = {.ic = C, .oc = C, .kh = 3, .kw = 3, .stride = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1,
                         .pad_r = 1, .dt = dt, .ref_h = H, .ref_w = H, .groups = 1};
    pm_nn_weights w;
    pm_nn_plan *p = NULL;
    int rc = pm_nn_weights_init(ctx, &w, &d, wt, NULL);
    pm_free(wt);
    if (rc)
        return rc;
    if ((rc = pm_nn_plan_begin(ctx, threads, &p)))
        goto free_weights;
    pm_nn_plan_set_layout(p, PM_NN_LAYOUT_NHWC);
    pm_nn_t in = pm_nn_input(p, C, H, H, dt);
    pm_nn_output(p, pm_nn_conv(p, "ceiling", in, &w, 0, -1, dt, 1.0f));
    if ((rc = pm_nn_plan_finish(p)) || (rc = pm_nn_plan_run(p, NULL)))
        goto free_plan;
    pm_nn_plan_profile(p, 1);
    /* the median of the runs (the machine may be shared) */
    double g[64];
    int n = runs < 1 ? 1 : runs > 64 ? 64 : runs;
    for (int i = 0; i < n && !rc; i++) {
        rc = pm_nn_plan_run(p, NULL);
        g[i] = 0;
        for (int s = 0; s < p->nsteps; s++)
            if (p->steps[s].kind == ST_PRIM && p->steps[s].flops > 0 && p->steps[s].seconds > 0) {
                g[i] = p->steps[s].flops / p->steps[s].seconds / 1e9;
                p->steps[s].seconds = 0;
            }
        for (int j = i; j > 0 && g[j] < g[j - 1]; j--) {
            double t = g[j];
            g[j] = g[j - 1];
            g[j - 1] = t;
        }
    }
    if (!rc)
        *gflops = n % 2 ? g[n / 2] : 0.5 * (g[n / 2 - 1] + g[n / 2]);
free_plan:
    pm_nn_plan_free(p);
free_weights:
    pm_nn_weights_free(&w);
    return rc;
}

size_t pm_nn_plan_weight_bytes(const pm_nn_plan *p)
{
    return p->owned_bytes;
}
