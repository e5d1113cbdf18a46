/* Readings of the machine and of this process: /proc, cgroup v2, NVML. */
#ifndef PM_MONITOR_H
#define PM_MONITOR_H

#include "pixmend.h"

/* NVML, loaded with dlopen so that pixmend runs where no NVIDIA driver exists.
 * The library path is $PIXMEND_NVML_LIBRARY when set, else libnvidia-ml.so.1. */
typedef struct pm_nvml pm_nvml;

/* Opens NVML. On failure returns PM_EUNSUPPORTED and writes the reason
 * ("no NVIDIA driver (libnvidia-ml.so.1 not found)") into why; that is not an
 * error for callers, just "no GPU". Caller owns *out (pm_nvml_close). */
int pm_nvml_open(pm_nvml **out, char *why, size_t why_len);
int pm_nvml_device_count(const pm_nvml *n);
/* Reads name, memory and utilisation of device i. */
int pm_nvml_read(pm_nvml *n, int i, pm_gpu_info *out);
void pm_nvml_close(pm_nvml *n);

/* Host memory from /proc/meminfo, in bytes. */
int pm_read_meminfo(uint64_t *total, uint64_t *available);
/* cgroup memory of this process (v2, or the v1 memory controller): the tightest memory.max on the path from
 * its cgroup to the root (0 and *has_limit = 0 when unlimited), and
 * memory.current of its own cgroup (0 when unreadable). */
int pm_read_cgroup_memory(int *has_limit, uint64_t *max, uint64_t *current);
/* `share` (0..1) of the smaller of host memory and the cgroup v2 limit, in
 * bytes; 0 when host memory is unreadable. The default memory budget of
 * serve and batch runs, and what "N%" means for --mem-budget. */
uint64_t pm_memory_share(double share);
/* The default --mem-budget of serve, worker and batch runs: this share. */
#define PM_DEFAULT_BUDGET_SHARE 0.7
/* Resident set size of this process, in bytes (from /proc/self/statm). */
uint64_t pm_read_rss(void);
/* Peak resident set size (VmHWM), in bytes. */
uint64_t pm_read_peak_rss(void);
/* Resets VmHWM to the current RSS (through /proc/self/clear_refs, Linux >= 4.0)
 * so that a later peak can be told from earlier ones; 1 when the kernel
 * allowed it, 0 otherwise. */
int pm_reset_peak_rss(void);

#endif
