/* Checkpoint loading figures, side by side in one run: pixmend's open
 * (zip directory, pickle, CRC of the generator's storages) and open plus
 * get_f32 of every 'generator.' tensor, against zlib's crc32 alone over the
 * same bytes and torch.load of the same file (a child /usr/bin/python3).
 *
 *   cmake --build build --target bench_ckpt
 *   /usr/bin/python3 tests/ckpt/gen_big.py /tmp/big.ckpt
 *   build/bench/ckpt/bench_ckpt /tmp/big.ckpt
 */
#include "base/base.h"
#include "ckpt/ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CHECKPOINT (see tests/ckpt/gen_big.py)\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    double best_open = 1e9, best_all = 1e9;
    size_t total = 0;
    int ntensors = 0;
    float *dst = NULL;
    size_t dst_cap = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = pm_now();
        pm_ckpt *ck;
        if (pm_ckpt_open(path, "generator.", &ck)) {
            fprintf(stderr, "%s\n", pm_error_detail());
            return 1;
        }
        double t1 = pm_now();
        total = 0;
        ntensors = pm_ckpt_count(ck);
        for (int i = 0; i < ntensors; i++) {
            const pm_tensor_ref *r = pm_ckpt_at(ck, i);
            if (r->dtype != PM_DT_F32 && r->dtype != PM_DT_F16 && r->dtype != PM_DT_BF16 && r->dtype != PM_DT_F64)
                continue; /* BatchNorm's num_batches_tracked (int64) */
            if (r->nbytes > dst_cap) {
                free(dst);
                dst_cap = r->nbytes;
                dst = malloc(dst_cap);
            }
            if (pm_ckpt_get_f32(ck, r->name, r->ndim, r->shape, dst)) {
                fprintf(stderr, "%s\n", pm_error_detail());
                return 1;
            }
            total += r->nbytes;
        }
        double t2 = pm_now();
        pm_ckpt_close(ck);
        if (t1 - t0 < best_open)
            best_open = t1 - t0;
        if (t2 - t0 < best_all)
            best_all = t2 - t0;
    }
    unsigned char *buf = malloc(total);
    for (size_t i = 0; i < total; i++)
        buf[i] = (unsigned char)(i * 31);
    double best_crc = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = pm_now();
        volatile unsigned long c = crc32_z(0, buf, total);
        (void)c;
        double t = pm_now() - t0;
        if (t < best_crc)
            best_crc = t;
    }
    free(buf);
    free(dst);

    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import sys,time,torch\n"
             "b=1e9\n"
             "for i in range(3):\n"
             "  t=time.perf_counter(); c=torch.load(sys.argv[1],map_location='cpu'); "
             "g={k:v for k,v in c['state_dict'].items() if k.startswith('generator.')}; b=min(b,time.perf_counter()-t); del c,g\n"
             "print(b)\" '%s'", path);
    double torch_s = -1;
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%lf", &torch_s) != 1)
            torch_s = -1;
        pclose(p);
    }
    printf("checkpoint %s: %d generator tensors, %.1f MiB (best of 5 runs each)\n", path, ntensors, total / 1048576.0);
    printf("  pixmend open (directory, pickle, CRC):   %.3f s\n", best_open);
    printf("  pixmend open + get_f32 of all tensors:   %.3f s\n", best_all);
    printf("  zlib crc32 alone over those bytes:       %.3f s (%.2f GB/s)\n", best_crc, total / best_crc / 1e9);
    if (torch_s > 0)
        printf("  torch.load (whole file, best of 3):      %.3f s; pixmend open+get_f32 / torch.load = %.2f\n",
               torch_s, best_all / torch_s);
    return 0;
}
