/* pixmend models: the LaMa and DDColor weights already on this machine. */
#include "cli/cli.h"
#include "models/discover.h"
#include "server/sb.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const pm_optdef opts[] = {{"json", 0, 0}, {0}};

void pm_cli_found_json(pm_sb *sb, const char *const *dirs, int ndirs, const pm_found *f, int n, const int *loaded)
{
    pm_sb_puts(sb, "{\"searched\":[");
    for (int i = 0; i < ndirs; i++) {
        struct stat st;
        pm_sb_puts(sb, i ? ",{\"dir\":" : "{\"dir\":");
        pm_sb_json_str(sb, dirs[i]);
        pm_sb_printf(sb, ",\"exists\":%s}", stat(dirs[i], &st) == 0 ? "true" : "false");
    }
    pm_sb_puts(sb, "],\"models\":[");
    for (int i = 0; i < n; i++) {
        char serve[4200];
        snprintf(serve, sizeof serve, "%s=%s", f[i].model, f[i].path);
        pm_sb_printf(sb, "%s{\"model\":", i ? "," : "");
        pm_sb_json_str(sb, f[i].model);
        pm_sb_puts(sb, ",\"variant\":");
        pm_sb_json_str(sb, f[i].variant);
        pm_sb_puts(sb, ",\"format\":");
        pm_sb_json_str(sb, f[i].format);
        pm_sb_printf(sb, ",\"size_bytes\":%llu,\"path\":", (unsigned long long)f[i].size);
        pm_sb_json_str(sb, f[i].path);
        pm_sb_puts(sb, ",\"model_arg\":");
        pm_sb_json_str(sb, f[i].path);
        pm_sb_puts(sb, ",\"serve_arg\":");
        pm_sb_json_str(sb, serve);
        if (loaded)
            pm_sb_printf(sb, ",\"loaded\":%s", loaded[i] ? "true" : "false");
        pm_sb_puts(sb, "}");
    }
    pm_sb_puts(sb, "]}");
}

int pm_cli_discover(int ndirs_given, const char *const *given, char (*buf)[4096], const char **dirs, int *ndirs,
                    pm_found **found, int *nfound)
{
    int n = 0;
    if (ndirs_given == 0) {
        n = pm_discover_default_dirs(buf, PM_DISCOVER_MAX_DIRS);
        for (int i = 0; i < n; i++)
            dirs[i] = buf[i];
    } else {
        for (int i = 0; i < ndirs_given && i < PM_DISCOVER_MAX_DIRS; i++)
            dirs[n++] = given[i];
    }
    *ndirs = n;
    return pm_discover(dirs, n, found, nfound);
}

static void print_text(const char *const *dirs, int ndirs, const pm_found *f, int n)
{
    if (n == 0) {
        printf("No LaMa or DDColor weights found.\n");
    } else {
        printf("%-8s %-30s %-15s %10s  %s\n", "MODEL", "VARIANT", "FORMAT", "SIZE", "USE WITH");
        for (int i = 0; i < n; i++)
            printf("%-8s %-30s %-15s %8.1f MB  --model %s\n", f[i].model, f[i].variant, f[i].format,
                   (double)f[i].size / 1e6, f[i].path);
        printf("\npixmend inpaint and colorize take --model FILE; pixmend serve takes --model lama=FILE,\n"
               "--model ddcolor=FILE, or --models auto (the largest of each).\n");
    }
    printf("Searched:");
    for (int i = 0; i < ndirs; i++) {
        struct stat st;
        printf("%s %s%s", i ? "," : "", dirs[i], stat(dirs[i], &st) == 0 ? "" : " (absent)");
    }
    printf("\n");
    if (n == 0)
        printf("To add one: download big-lama.pt (IOPaint's TorchScript LaMa) into the torch hub folder above,\n"
               "or a DDColor model from the Hugging Face or ModelScope hub, or give any folder: pixmend models DIR.\n");
}

static int run(int argc, char **argv)
{
    pm_args a;
    int rc = pm_cli_parse(&pm_cmd_models, opts, 0, PM_CLI_MAX_POS, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    /* files that are no model (or hold a tensor pixmend skips) are passed
     * over quietly: only what is listed matters here */
    pm_log_setup(PM_LOG_ERROR, PM_LOG_TEXT, NULL);
    char buf[PM_DISCOVER_MAX_DIRS][4096];
    const char *dirs[PM_DISCOVER_MAX_DIRS];
    int ndirs = 0, n = 0;
    pm_found *f = NULL;
    for (int i = 0; i < a.npos; i++) {
        struct stat st;
        if (stat(a.pos[i], &st) != 0) {
            pm_cli_error(&pm_cmd_models, "%s does not exist; give folders or files to search", a.pos[i]);
            return 2;
        }
    }
    if (pm_cli_discover(a.npos, a.pos, buf, dirs, &ndirs, &f, &n)) {
        pm_cli_error(&pm_cmd_models, "%s", pm_error_detail());
        return 1;
    }
    if (pm_cli_get(opts, &a, "json")) {
        pm_sb sb;
        pm_sb_init(&sb);
        pm_cli_found_json(&sb, dirs, ndirs, f, n, NULL);
        printf("%s\n", pm_sb_str(&sb));
        pm_sb_free(&sb);
    } else {
        print_text(dirs, ndirs, f, n);
    }
    pm_free(f);
    return 0;
}

const pm_command pm_cmd_models = {
    "models", "list the LaMa and DDColor weights on this machine (torch hub, Hugging Face, ModelScope caches)",
    "usage: pixmend models [--json] [DIR|FILE ...]\n\n"
    "Lists every LaMa generator and DDColor model found, recognised by its content\n"
    "(tensor names and shapes), not its name: PyTorch checkpoints (.ckpt, .pth, .bin),\n"
    "TorchScript archives (IOPaint's big-lama.pt), legacy PyTorch files and safetensors.\n"
    "With no DIR it searches $XDG_CACHE_HOME (default ~/.cache): torch/hub/checkpoints\n"
    "($TORCH_HOME), huggingface/hub ($HF_HUB_CACHE, $HF_HOME) and modelscope/hub\n"
    "($MODELSCOPE_CACHE). For each: model, variant, format, size and the --model\n"
    "argument that uses it.\n\n"
    "  --json   one JSON object: {\"searched\": [...], \"models\": [...]}\n",
    run,
};
