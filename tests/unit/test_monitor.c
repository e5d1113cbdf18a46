/* Sampler, histogram and the hysteresis gate; GPUs through the fake NVML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "monitor/monitor.h"
#include "monitor/sampler.h"
#include "sched/gate.h"

static void write_script(const char *path, unsigned count, unsigned long long used, unsigned long long total,
                         unsigned util)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%u %llu %llu %u\n", count, used, total, util);
    fclose(f);
}

static void burn_cpu(double seconds)
{
    double end = (double)clock() / CLOCKS_PER_SEC + seconds;
    volatile double x = 0;
    while ((double)clock() / CLOCKS_PER_SEC < end)
        x = x + 1.0;
    assert_true(x > 0);
}

static void test_sampler_reads_machine(void **st)
{
    (void)st;
    setenv("PIXMEND_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    pm_sampler *s;
    /* A long period: only the explicit polls below sample, so the interval is known. */
    assert_int_equal(pm_sampler_start(&s, 10.0, 8, NULL, NULL), 0);
    burn_cpu(0.15);
    assert_int_equal(pm_sampler_poll(s), 0);
    pm_sample x;
    assert_int_equal(pm_sampler_latest(s, &x), 0);
    assert_true(x.ncpu >= 1);
    assert_int_equal(x.ncpu, sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(x.rss > 1024 * 1024);
    assert_true(x.host_total > x.host_available);
    assert_int_equal(x.ngpu, 0);
    /* the process burned CPU in the last period */
    assert_true(x.process_cpu_percent > 2.0f); /* 0.15 s of CPU burned; generous for a loaded machine */
    assert_true(x.cpu_total_percent > 0.0f && x.cpu_total_percent <= 100.0f);
    for (int i = 0; i < x.ncpu; i++)
        assert_true(x.cpu_percent[i] >= 0.0f && x.cpu_percent[i] <= 100.0f);
    pm_sampler_stop(s);
    assert_int_equal(pm_sampler_start(&s, 0.05, 8, NULL, NULL), 0);
    usleep(300 * 1000); /* the thread keeps sampling */
    pm_sample hist[8];
    int n = pm_sampler_history(s, hist, 8);
    assert_true(n >= 4);
    for (int i = 1; i < n; i++)
        assert_true(hist[i].time >= hist[i - 1].time);
    pm_sampler_stop(s);
}

static void test_sampler_gpu_and_gate(void **st)
{
    (void)st;
    const char *fake = getenv("PM_FAKE_NVML");
    assert_non_null(fake);
    char script[] = "/tmp/pm_nvml_XXXXXX";
    int fd = mkstemp(script);
    assert_true(fd >= 0);
    close(fd);
    setenv("PIXMEND_NVML_LIBRARY", fake, 1);
    setenv("PM_FAKE_NVML_FILE", script, 1);
    const unsigned long long total = 16ull << 30;
    write_script(script, 1, total / 10, total, 30);
    pm_sampler *s;
    assert_int_equal(pm_sampler_start(&s, 10.0, 4, NULL, NULL), 0);
    pm_gate g;
    assert_int_equal(pm_gate_init(&g, 0.85, 0.75), 0);
    /* usage climbs to 90 % of the GPU: pause; 80 %: still paused; 70 %: resume */
    const double steps[] = {0.10, 0.84, 0.90, 0.86, 0.80, 0.76, 0.70, 0.80, 0.87};
    const int expect[] = {0, 0, 1, 0, 0, 0, -1, 0, 1};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        write_script(script, 1, (unsigned long long)(steps[i] * (double)total), total, 50);
        assert_int_equal(pm_sampler_poll(s), 0);
        pm_sample x;
        assert_int_equal(pm_sampler_latest(s, &x), 0);
        assert_int_equal(x.ngpu, 1);
        assert_int_equal(x.gpu[0].util_percent, 50);
        const char *src;
        double u = pm_gate_usage(&x, &src);
        if (steps[i] > 0.5) {
            assert_string_equal(src, "gpu0");
            assert_true(u > steps[i] - 0.001 && u < steps[i] + 0.001);
        }
        assert_int_equal(pm_gate_update(&g, u, src), expect[i]);
    }
    assert_int_equal(g.pauses, 2);
    assert_int_equal(g.resumes, 1);
    assert_true(g.paused);
    pm_sampler_stop(s);
    unlink(script);
    unsetenv("PM_FAKE_NVML_FILE");
}

static void test_gate_usage_sources(void **st)
{
    (void)st;
    pm_sample x;
    memset(&x, 0, sizeof x);
    x.host_total = 1000;
    x.host_available = 600;
    const char *src;
    assert_true(pm_gate_usage(&x, &src) > 0.399 && pm_gate_usage(&x, &src) < 0.401);
    assert_string_equal(src, "host");
    x.has_cgroup_limit = 1;
    x.cgroup_max = 100;
    x.cgroup_current = 95;
    assert_true(pm_gate_usage(&x, &src) > 0.949);
    assert_string_equal(src, "cgroup");
    pm_gate g;
    assert_int_equal(pm_gate_init(&g, 0.75, 0.85), PM_EINVAL);
    assert_int_equal(pm_gate_init(&g, 1.5, 0.5), PM_EINVAL);
}

static void test_histogram(void **st)
{
    (void)st;
    const double b[] = {0.1, 0.5, 1, 5};
    pm_hist h;
    pm_hist_init(&h, b, 4);
    for (int i = 0; i < 100; i++)
        pm_hist_observe(&h, i < 90 ? 0.05 : 2.0);
    assert_int_equal(h.count, 100);
    assert_int_equal(h.counts[0], 90);
    assert_int_equal(h.counts[3], 10);
    assert_true(h.sum > 24.49 && h.sum < 24.51);
    assert_true(pm_hist_quantile(&h, 0.5) <= 0.1);
    double p95 = pm_hist_quantile(&h, 0.95);
    assert_true(p95 > 1.0 && p95 <= 5.0);
    pm_hist_observe(&h, 100);
    assert_int_equal(h.counts[4], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampler_reads_machine),
        cmocka_unit_test(test_sampler_gpu_and_gate),
        cmocka_unit_test(test_gate_usage_sources),
        cmocka_unit_test(test_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
