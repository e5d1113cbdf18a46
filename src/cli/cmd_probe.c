/* pixmend probe: what this machine has. */
#include "cli/cli.h"

#include <stdio.h>

static const pm_optdef opts[] = {{"json", 0, 0}, {0}};

static double gib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}

/* Prints a JSON string literal with the characters JSON requires escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_json(const pm_sysinfo *s)
{
    printf("{\"cpu\":{\"model\":");
    json_str(s->cpu_model);
    printf(",\"avx2\":%s,\"avx512f\":%s,\"avx512_bf16\":%s,\"logical_cores\":%d,\"physical_cores\":%d},",
           s->has_avx2 ? "true" : "false", s->has_avx512f ? "true" : "false",
           s->has_avx512_bf16 ? "true" : "false", s->logical_cores, s->physical_cores);
    printf("\"memory\":{\"total_bytes\":%llu,\"available_bytes\":%llu},",
           (unsigned long long)s->mem_total, (unsigned long long)s->mem_available);
    if (s->has_cgroup_limit)
        printf("\"cgroup\":{\"memory_max_bytes\":%llu,\"memory_current_bytes\":%llu},",
               (unsigned long long)s->cgroup_mem_max, (unsigned long long)s->cgroup_mem_current);
    else
        printf("\"cgroup\":{\"memory_max_bytes\":null,\"memory_current_bytes\":%llu},",
               (unsigned long long)s->cgroup_mem_current);
    printf("\"gpus\":[");
    for (int i = 0; i < s->gpu_count; i++) {
        printf("%s{\"index\":%d,\"name\":", i ? "," : "", i);
        json_str(s->gpus[i].name);
        printf(",\"memory_total_bytes\":%llu,\"memory_used_bytes\":%llu,\"utilization_percent\":%u}",
               (unsigned long long)s->gpus[i].mem_total, (unsigned long long)s->gpus[i].mem_used,
               s->gpus[i].util_percent);
    }
    printf("],\"gpu_status\":");
    json_str(s->gpu_count ? "ok" : s->nvml_status);
    printf("}\n");
}

static void print_text(const pm_sysinfo *s)
{
    printf("CPU:      %s\n", s->cpu_model);
    printf("ISA:      avx2 %s, avx512f %s, avx512_bf16 %s\n", s->has_avx2 ? "yes" : "no",
           s->has_avx512f ? "yes" : "no", s->has_avx512_bf16 ? "yes" : "no");
    printf("Cores:    %d logical, %d physical\n", s->logical_cores, s->physical_cores);
    printf("Memory:   %.1f GiB total, %.1f GiB available\n", gib(s->mem_total), gib(s->mem_available));
    if (s->has_cgroup_limit)
        printf("cgroup:   memory limit %.1f GiB, %.2f GiB in use\n", gib(s->cgroup_mem_max),
               gib(s->cgroup_mem_current));
    else
        printf("cgroup:   no memory limit\n");
    if (s->gpu_count == 0)
        printf("GPU:      no NVIDIA GPU (%s)\n", s->nvml_status);
    for (int i = 0; i < s->gpu_count; i++)
        printf("GPU %d:    %s, %.1f GiB, %.1f GiB used, %u %% busy\n", i, s->gpus[i].name,
               gib(s->gpus[i].mem_total), gib(s->gpus[i].mem_used), s->gpus[i].util_percent);
}

static int run(int argc, char **argv)
{
    pm_args a;
    int rc = pm_cli_parse(&pm_cmd_probe, opts, 0, 0, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    pm_sysinfo s;
    pm_sysinfo_read(&s);
    if (pm_cli_get(opts, &a, "json"))
        print_json(&s);
    else
        print_text(&s);
    return 0;
}

const pm_command pm_cmd_probe = {
    "probe", "show what this machine has: CPU, ISA, cores, memory, cgroup limit, GPUs",
    "usage: pixmend probe [--json]\n\n"
    "Prints the CPU model and ISA extensions (avx2, avx512f, avx512_bf16), logical and\n"
    "physical cores, host memory, the cgroup v2 memory limit if any, and NVIDIA GPUs\n"
    "(through NVML, loaded at run time; set PIXMEND_NVML_LIBRARY to use another path).\n\n"
    "  --json   one JSON object instead of text\n",
    run,
};
