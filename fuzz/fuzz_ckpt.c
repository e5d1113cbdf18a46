/* libFuzzer target for the checkpoint readers: the input is a whole file
 * (zip + pickle, TorchScript, legacy stream or safetensors), opened from
 * memory three times: as pixmend opens files, with PM_CKPT_NO_CRC so that
 * mutations of the pickle and the storages get past the zip's CRCs, and
 * rooted as LaMa opens its checkpoint. Every tensor of a table that opens is
 * read in full and converted to float32.
 *
 * Built with the other targets (fuzz/CMakeLists.txt) and run by fuzz/run.sh.
 * Seeds: the small fixtures tests/ckpt/gen_fixtures.py writes (ema.pth,
 * pytorch_model.bin, the hostile *.pth, a small safetensors file, small
 * TorchScript archives ts_*.pt, legacy streams legacy*.pt). */
#include "ckpt/ckpt_internal.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void use_table(pm_ckpt *ck)
{
    for (int i = 0; i < pm_ckpt_count(ck); i++) {
        const pm_tensor_ref *r = pm_ckpt_at(ck, i);
        for (size_t k = 0; k < r->nbytes; k++)
            sink ^= ((const uint8_t *)r->data)[k];
        size_t n = r->nbytes / pm_dtype_size(r->dtype);
        float *f = malloc(n * sizeof *f + 1);
        if (f) {
            pm_ckpt_get_f32(ck, r->name, r->ndim, r->shape, f);
            free(f);
        }
    }
    pm_ckpt_close(ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        pm_log_setup(PM_LOG_OFF, PM_LOG_TEXT, NULL);
        quiet = 1;
    }
    pm_ckpt *ck;
    if (pm_ckpt_open_mem(data, size, "fuzz.ckpt", NULL, &ck) == 0)
        use_table(ck);
    if (pm_ckpt_open_mem_flags(data, size, "fuzz.ckpt", NULL, PM_CKPT_NO_CRC, &ck) == 0)
        use_table(ck);
    /* rooted, as LaMa opens: every name under the shortest root of a
     * "*.weight" is renamed "g.*" */
    if (pm_ckpt_open_mem_rooted(data, size, "fuzz.ckpt", "g.", "weight", PM_CKPT_NO_CRC, &ck) == 0)
        use_table(ck);
    return 0;
}
