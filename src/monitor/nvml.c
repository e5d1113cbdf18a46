/* NVML through dlopen: GPU name, memory and utilisation without a link-time
 * dependency on the NVIDIA driver. Only the few entry points used are
 * declared here, with the layouts of the public NVML API. */
#include "monitor/monitor.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *nvml_device;
typedef struct { unsigned long long total, free, used; } nvml_memory;
typedef struct { unsigned int gpu, memory; } nvml_utilization;

struct pm_nvml {
    void *lib; /* dlopen handle, owned */
    int count;
    int (*init)(void);
    int (*shutdown)(void);
    int (*get_count)(unsigned int *);
    int (*get_handle)(unsigned int, nvml_device *);
    int (*get_name)(nvml_device, char *, unsigned int);
    int (*get_memory)(nvml_device, nvml_memory *);
    int (*get_util)(nvml_device, nvml_utilization *);
    const char *(*error_string)(int);
};

static void *sym(void *lib, const char *a, const char *b)
{
    void *p = dlsym(lib, a);
    if (!p && b)
        p = dlsym(lib, b);
    return p;
}

/* Caller owns *out on success. */
int pm_nvml_open(pm_nvml **out, char *why, size_t why_len)
{
    *out = NULL;
    const char *path = getenv("PIXMEND_NVML_LIBRARY");
    if (!path || !*path)
        path = "libnvidia-ml.so.1";
    pm_nvml *n = pm_calloc(1, sizeof *n);
    if (!n)
        return PM_ENOMEM;
    n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        snprintf(why, why_len, "%s not found: no NVIDIA driver installed", path);
        goto free_struct;
    }
    n->init = (int (*)(void))sym(n->lib, "nvmlInit_v2", "nvmlInit");
    n->shutdown = (int (*)(void))sym(n->lib, "nvmlShutdown", NULL);
    n->get_count = (int (*)(unsigned int *))sym(n->lib, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    n->get_handle = (int (*)(unsigned int, nvml_device *))sym(n->lib, "nvmlDeviceGetHandleByIndex_v2",
                                                             "nvmlDeviceGetHandleByIndex");
    n->get_name = (int (*)(nvml_device, char *, unsigned int))sym(n->lib, "nvmlDeviceGetName", NULL);
    n->get_memory = (int (*)(nvml_device, nvml_memory *))sym(n->lib, "nvmlDeviceGetMemoryInfo", NULL);
    n->get_util = (int (*)(nvml_device, nvml_utilization *))sym(n->lib, "nvmlDeviceGetUtilizationRates", NULL);
    n->error_string = (const char *(*)(int))sym(n->lib, "nvmlErrorString", NULL);
    if (!n->init || !n->shutdown || !n->get_count || !n->get_handle || !n->get_memory) {
        snprintf(why, why_len, "%s lacks the NVML entry points pixmend needs", path);
        goto close_lib;
    }
    int rc = n->init();
    if (rc != 0) {
        snprintf(why, why_len, "NVML did not start: %s", n->error_string ? n->error_string(rc) : "error");
        goto close_lib;
    }
    unsigned int count = 0;
    rc = n->get_count(&count);
    if (rc != 0) {
        snprintf(why, why_len, "NVML could not count devices: %s",
                 n->error_string ? n->error_string(rc) : "error");
        goto shutdown_nvml;
    }
    n->count = count > PM_MAX_GPUS ? PM_MAX_GPUS : (int)count;
    if (n->count == 0)
        snprintf(why, why_len, "NVML found no NVIDIA GPU");
    *out = n;
    return 0;

shutdown_nvml:
    n->shutdown();
close_lib:
    dlclose(n->lib);
free_struct:
    pm_free(n);
    return PM_EUNSUPPORTED;
}

int pm_nvml_device_count(const pm_nvml *n)
{
    return n ? n->count : 0;
}

int pm_nvml_read(pm_nvml *n, int i, pm_gpu_info *out)
{
    memset(out, 0, sizeof *out);
    if (!n || i < 0 || i >= n->count)
        return pm_errorf(PM_EINVAL, "no GPU number %d", i);
    nvml_device dev;
    if (n->get_handle((unsigned)i, &dev) != 0)
        return pm_errorf(PM_EIO, "NVML could not open GPU %d", i);
    if (!n->get_name || n->get_name(dev, out->name, sizeof out->name) != 0)
        snprintf(out->name, sizeof out->name, "GPU %d", i);
    nvml_memory mem;
    if (n->get_memory(dev, &mem) != 0)
        return pm_errorf(PM_EIO, "NVML could not read the memory of GPU %d", i);
    out->mem_total = mem.total;
    out->mem_used = mem.used;
    nvml_utilization u;
    if (n->get_util && n->get_util(dev, &u) == 0)
        out->util_percent = u.gpu;
    return 0;
}

void pm_nvml_close(pm_nvml *n)
{
    if (!n)
        return;
    n->shutdown();
    dlclose(n->lib);
    pm_free(n);
}
