/* pixmend serve --models: the weights found on this machine, loaded (auto)
 * or only listed, in the log and on /api/v1/models. */
#include "cli/cli.h"
#include "models/discover.h"
#include "sched/sched.h"
#include "server/sb.h"
#include "server/server.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Do two paths name the same file? */
static int same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb))
        return strcmp(a, b) == 0;
    return strcmp(ra, rb) == 0;
}

int pm_cli_serve_models(pm_sched *sched, pm_server *srv, int load, const char *const *given, int ngiven,
                        char *names, size_t names_len)
{
    char buf[PM_DISCOVER_MAX_DIRS][4096];
    const char *dirs[PM_DISCOVER_MAX_DIRS];
    int ndirs = 0, n = 0;
    pm_found *f = NULL;
    if (pm_cli_discover(0, NULL, buf, dirs, &ndirs, &f, &n))
        return -1;
    int *loaded = pm_calloc(n ? (size_t)n : 1, sizeof *loaded);
    if (!loaded) {
        pm_free(f);
        return pm_errorf(PM_ENOMEM, "out of memory");
    }
    static const char *const tasks[] = {"lama", "ddcolor"};
    for (int t = 0; t < 2; t++) {
        const char *file = NULL;
        for (int g = 0; g < ngiven; g++) /* NAME=FILE, checked by serve */
            if (strncmp(given[g], tasks[t], strlen(tasks[t])) == 0 && given[g][strlen(tasks[t])] == '=')
                file = given[g] + strlen(tasks[t]) + 1;
        for (int i = 0; file && i < n; i++)
            loaded[i] |= strcmp(f[i].model, tasks[t]) == 0 && same_file(f[i].path, file);
        int best = pm_discover_best(f, n, tasks[t]);
        if (file || !load || best < 0)
            continue;
        if (pm_sched_load_model(sched, tasks[t], f[best].path)) {
            pm_warn("models_auto", "found %s at %s (%s, %s) but cannot load it: %s", tasks[t], f[best].path,
                    f[best].format, f[best].variant, pm_error_detail());
            continue;
        }
        loaded[best] = 1;
        pm_info("models_auto", "loaded %s from %s (%s, %s)", tasks[t], f[best].path, f[best].format, f[best].variant);
        size_t used = strlen(names);
        if (used < names_len)
            snprintf(names + used, names_len - used, ", %s", tasks[t]);
    }
    for (int i = 0; i < n; i++)
        if (!loaded[i])
            pm_info("model_found", "found %s at %s (%s, %s), not loaded: %s --model %s=%s", f[i].model, f[i].path,
                    f[i].format, f[i].variant, load ? "one per task is; to use this one, give" : "to use it, start with --models auto or",
                    f[i].model, f[i].path);
    if (n == 0)
        pm_info("model_found", "no LaMa or DDColor weights in %s, %s or %s", dirs[0], ndirs > 1 ? dirs[1] : "",
                ndirs > 2 ? dirs[2] : "");
    pm_sb sb;
    pm_sb_init(&sb);
    pm_cli_found_json(&sb, dirs, ndirs, f, n, loaded);
    int rc = sb.failed ? pm_errorf(PM_ENOMEM, "out of memory") : pm_server_set_found(srv, pm_sb_str(&sb));
    pm_sb_free(&sb);
    pm_free(loaded);
    pm_free(f);
    return rc;
}
