/* libFuzzer target: how `pixmend report` reads a server's answers (with
 * --url the server is anyone's): the HTTP answer split, then the JSON field
 * readers on the body with the keys the report asks for. */
#include <stdlib.h>
#include <string.h>

#include "cli/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"state", "id", "wall_s", "peak_bytes", "rss_bytes", "p50", "source",
                                       "a_bytes", "submitted", "pm_mem_peak"};
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    rp_resp r = {0};
    if (rp_parse_response(buf, size, &r) != 0)
        return 0;
    if (r.len > size || r.body[r.len] != '\0')
        __builtin_trap();
    char out[64];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        (void)rp_json_num(r.body, keys[i], -1);
        rp_json_str(r.body, keys[i], out, sizeof out);
        if (strlen(out) >= sizeof out)
            __builtin_trap();
    }
    rp_resp_free(&r);
    return 0;
}
