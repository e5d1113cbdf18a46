/* What this machine has: CPU model and ISA, cores, memory, cgroup limit, GPUs. */
#include "monitor/monitor.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pm_read_meminfo(uint64_t *total, uint64_t *available)
{
    *total = *available = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return pm_errorf(PM_EIO, "cannot read /proc/meminfo");
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            *total = kb * 1024ull;
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            *available = kb * 1024ull;
    }
    fclose(f);
    return 0;
}

/* Reads one number (or "max") from a cgroup file. Returns 1 if a number was read. */
static int read_cg_value(const char *path, uint64_t *v)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[64] = {0};
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok || strncmp(buf, "max", 3) == 0)
        return 0;
    char *end;
    unsigned long long x = strtoull(buf, &end, 10);
    if (end == buf)
        return 0;
    *v = x;
    return 1;
}

/* Finds this process's cgroup path for the v2 hierarchy ("0::/x") or, on a
 * v1 host, for the memory controller ("N:memory:/x"). Returns 2, 1 or 0. */
static int cgroup_path(char *rel, size_t len)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return 0;
    char line[4096];
    int version = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        if (strncmp(line, "0::", 3) == 0 && version == 0) {
            snprintf(rel, len, "%s", c2 + 1);
            version = 2;
        } else if (strncmp(c1, ":memory:", 8) == 0) {
            snprintf(rel, len, "%s", c2 + 1);
            version = 1;
        }
    }
    fclose(f);
    return version;
}

/* Smallest limit found in `file` from `dir` up to `root` (inclusive). */
static void tightest_limit(char *dir, const char *root, const char *file, int *has_limit, uint64_t *max)
{
    char path[4400];
    for (;;) {
        uint64_t v;
        snprintf(path, sizeof path, "%s/%s", dir, file);
        /* v1 reports "no limit" as a huge page-rounded number. */
        if (read_cg_value(path, &v) && v < (1ull << 62) && (!*has_limit || v < *max)) {
            *max = v;
            *has_limit = 1;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || strlen(dir) <= strlen(root))
            break;
        *slash = '\0';
    }
}

int pm_read_cgroup_memory(int *has_limit, uint64_t *max, uint64_t *current)
{
    *has_limit = 0;
    *max = *current = 0;
    char rel[4096] = "/";
    int version = cgroup_path(rel, sizeof rel);
    int v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    const char *root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
    const char *limit_file = v2 ? "memory.max" : "memory.limit_in_bytes";
    const char *usage_file = v2 ? "memory.current" : "memory.usage_in_bytes";
    char dir[4200], path[4400];
    /* Inside a container the hierarchy is often mounted at the container's own
     * cgroup, so the host path from /proc/self/cgroup may not exist: fall back to the root. */
    snprintf(dir, sizeof dir, "%s%s", root, (version && strcmp(rel, "/") != 0) ? rel : "");
    if (access(dir, F_OK) != 0)
        snprintf(dir, sizeof dir, "%s", root);
    snprintf(path, sizeof path, "%s/%s", dir, usage_file);
    read_cg_value(path, current);
    tightest_limit(dir, root, limit_file, has_limit, max);
    return 0;
}

uint64_t pm_read_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long long size, resident;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return n == 2 ? resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

uint64_t pm_read_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
            v = kb * 1024ull;
    }
    fclose(f);
    return v;
}

int pm_reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return 0;
    int ok = fputs("5", f) >= 0;
    ok = fclose(f) == 0 && ok;
    return ok;
}

static int has_flag(const char *flags, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)) != NULL; p += n) {
        int start_ok = p == flags || p[-1] == ' ' || p[-1] == '\t';
        int end_ok = p[n] == ' ' || p[n] == '\n' || p[n] == '\0';
        if (start_ok && end_ok)
            return 1;
    }
    return 0;
}

static void read_cpu(pm_sysinfo *s)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    static char line[8192];
    int got_flags = 0;
    while (fgets(line, sizeof line, f)) {
        if (!s->cpu_model[0] && strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ')
                    c++;
                snprintf(s->cpu_model, sizeof s->cpu_model, "%s", c);
                s->cpu_model[strcspn(s->cpu_model, "\n")] = '\0';
            }
        } else if (!got_flags && strncmp(line, "flags", 5) == 0) {
            got_flags = 1;
            s->has_avx2 = has_flag(line, "avx2");
            s->has_avx512f = has_flag(line, "avx512f");
            s->has_avx512_bf16 = has_flag(line, "avx512_bf16");
        }
    }
    fclose(f);
    if (!s->cpu_model[0])
        snprintf(s->cpu_model, sizeof s->cpu_model, "unknown CPU");
}

/* Physical cores = distinct (package, core) pairs among online CPUs. */
static int count_physical_cores(int logical)
{
    int pairs[1024][2];
    int n = 0;
    for (int cpu = 0; cpu < 1024; cpu++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int core = -1, pkg = 0;
        if (fscanf(f, "%d", &core) != 1)
            core = -1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &pkg) != 1)
                pkg = 0;
            fclose(f);
        }
        if (core < 0)
            continue;
        int seen = 0;
        for (int i = 0; i < n; i++)
            if (pairs[i][0] == pkg && pairs[i][1] == core)
                seen = 1;
        if (!seen) {
            pairs[n][0] = pkg;
            pairs[n][1] = core;
            n++;
        }
    }
    return n > 0 && n <= logical ? n : logical;
}

int pm_sysinfo_read(pm_sysinfo *s)
{
    memset(s, 0, sizeof *s);
    read_cpu(s);
    long lc = sysconf(_SC_NPROCESSORS_ONLN);
    s->logical_cores = lc > 0 ? (int)lc : 1;
    s->physical_cores = count_physical_cores(s->logical_cores);
    pm_read_meminfo(&s->mem_total, &s->mem_available);
    pm_read_cgroup_memory(&s->has_cgroup_limit, &s->cgroup_mem_max, &s->cgroup_mem_current);

    pm_nvml *nv = NULL;
    if (pm_nvml_open(&nv, s->nvml_status, sizeof s->nvml_status) == 0) {
        s->gpu_count = pm_nvml_device_count(nv);
        for (int i = 0; i < s->gpu_count; i++)
            pm_nvml_read(nv, i, &s->gpus[i]);
        pm_nvml_close(nv);
    }
    return 0;
}

uint64_t pm_memory_share(double share)
{
    uint64_t total = 0, avail = 0, cg_max = 0, cg_cur = 0;
    int limited = 0;
    pm_read_meminfo(&total, &avail);
    pm_read_cgroup_memory(&limited, &cg_max, &cg_cur);
    uint64_t base = total;
    if (limited && cg_max > 0 && (base == 0 || cg_max < base))
        base = cg_max;
    return (uint64_t)((double)base * share);
}
