/* libFuzzer target: the JPEG decoder through pm_image_decode. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return pm_fuzz_one(data, size, PM_FMT_JPEG, "fuzz.jpeg");
}
