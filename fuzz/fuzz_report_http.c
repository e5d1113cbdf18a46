/* libFuzzer target: how `pixmend report` reads a server's answers (with
 * --url the server is anyone's): the HTTP answer split, then the JSON field
 * readers on the body with the keys the report asks for, and report_api.c's
 * readers of jobs, /api/v1/stats and /metrics. */
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
    /* The field readers of report_api.c, each on the same body. */
    rp_job j;
    memset(&j, 0, sizeof j);
    rp_api_job_id(r.body, out, sizeof out);
    if (rp_api_job(r.body, &j) == 0 && strlen(j.state) >= sizeof j.state)
        __builtin_trap();
    (void)rp_api_job_final(&j);
    rp_srv_stats st;
    if (rp_api_stats(r.body, &st) == 0) {
        if (st.nlaws < 0 || st.nlaws > RP_MAX_LAWS)
            __builtin_trap();
        for (int i = 0; i < st.nlaws; i++)
            if (rp_api_law(&st, st.laws[i].name) == NULL)
                __builtin_trap();
    }
    (void)rp_api_gpu_peak_since(r.body, 1.0);
    (void)rp_api_metric(r.body, "pixmend_disk_write_seconds_sum", -1);
    (void)rp_api_metric(r.body, "pixmend_jobs_running", -1);
    rp_resp_free(&r);
    return 0;
}
