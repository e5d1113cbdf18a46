/* libFuzzer target for the checkpoint readers: the input is a whole file
 * (zip + pickle or safetensors), opened from memory; every tensor of a
 * table that opens is read in full and converted to float32.
 *
 * Built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, the zip reader does not
 * reject entries whose CRC differs, so mutations reach the pickle machine.
 * Not part of the CMake build (fuzz/ belongs to the lead); build and run:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
 *     -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
 *     tests/ckpt/fuzz_ckpt.c src/ckpt/[a-z]*.c src/base/[a-z]*.c -lz -lm -lpthread -o /tmp/fuzz_ckpt
 *   /tmp/fuzz_ckpt -max_total_time=300 CORPUS_DIR SEED_DIR
 * Seeds: the small fixtures tests/ckpt/gen_fixtures.py writes (ema.pth,
 * pytorch_model.bin, the hostile *.pth, a small safetensors file). */
#include "ckpt/ckpt.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        pm_log_setup(PM_LOG_OFF, PM_LOG_TEXT, NULL);
        quiet = 1;
    }
    pm_ckpt *ck;
    if (pm_ckpt_open_mem(data, size, "fuzz.ckpt", NULL, &ck) != 0)
        return 0;
    for (int i = 0; i < pm_ckpt_count(ck); i++) {
        const pm_tensor_ref *r = pm_ckpt_at(ck, i);
        volatile uint8_t sink = 0;
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
    return 0;
}
