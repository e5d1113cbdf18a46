/* libFuzzer target: the PNG decoder through pm_image_decode.
 * Mutations almost always break a chunk CRC, which the chunk walk rejects
 * before libspng sees the data; so each input is also tried a second time
 * with every CRC recomputed, to reach the decoder proper. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_fuzz_one(data, size, PM_FMT_PNG, "fuzz.png");
    if (size < 8 || size > (1u << 20))
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    int changed = 0;
    size_t pos = 8;
    while (size - pos >= 12) {
        uint32_t n = be32(copy + pos);
        if (n > size - pos - 12)
            break;
        uint32_t crc = (uint32_t)crc32(0L, copy + pos + 4, n + 4);
        uint8_t *c = copy + pos + 8 + n;
        if (be32(c) != crc) {
            c[0] = (uint8_t)(crc >> 24);
            c[1] = (uint8_t)(crc >> 16);
            c[2] = (uint8_t)(crc >> 8);
            c[3] = (uint8_t)crc;
            changed = 1;
        }
        pos += 12 + (size_t)n;
    }
    if (changed)
        pm_fuzz_one(copy, size, PM_FMT_PNG, "fuzz.png");
    free(copy);
    return 0;
}
