/* A stand-in for libnvidia-ml.so.1 used by the tests: it exports the NVML
 * entry points pixmend loads with dlopen and answers from a script file.
 * $PM_FAKE_NVML_FILE holds one line "COUNT USED_BYTES TOTAL_BYTES UTIL_PERCENT"
 * and is read again at every query, so a test can move the values while the
 * program runs. Without the file: one GPU, 1 GiB of 8 GiB used, 5 % busy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { unsigned long long total, free, used; } nvml_memory;
typedef struct { unsigned int gpu, memory; } nvml_utilization;

struct script {
    unsigned count;
    unsigned long long used, total;
    unsigned util;
};

static struct script read_script(void)
{
    struct script s = {1, 1ull << 30, 8ull << 30, 5};
    const char *path = getenv("PM_FAKE_NVML_FILE");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (f) {
        if (fscanf(f, "%u %llu %llu %u", &s.count, &s.used, &s.total, &s.util) != 4)
            s.count = 0;
        fclose(f);
    }
    return s;
}

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int rc) { return rc ? "fake error" : "success"; }

int nvmlDeviceGetCount_v2(unsigned int *count)
{
    *count = read_script().count;
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **dev)
{
    if (i >= read_script().count)
        return 2; /* NVML_ERROR_INVALID_ARGUMENT */
    *dev = (void *)(unsigned long)(i + 1);
    return 0;
}

int nvmlDeviceGetName(void *dev, char *name, unsigned int len)
{
    snprintf(name, len, "Fake GPU %lu", (unsigned long)dev - 1);
    return 0;
}

int nvmlDeviceGetMemoryInfo(void *dev, nvml_memory *m)
{
    (void)dev;
    struct script s = read_script();
    m->total = s.total;
    m->used = s.used;
    m->free = s.total - s.used;
    return 0;
}

int nvmlDeviceGetUtilizationRates(void *dev, nvml_utilization *u)
{
    (void)dev;
    u->gpu = read_script().util;
    u->memory = 0;
    return 0;
}
