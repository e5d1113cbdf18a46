/* The time of an API key check (server/auth.c) must not depend on whether
 * or where the key is in the file. This writes a key file of KEYS lines,
 * then times pm_auth_check in interleaved rounds for three keys of the same
 * length: the first line's, the last line's, and one that is not there;
 * it prints the median of each and their ratios to the absent key's. */
#include "base/base.h"
#include "server/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH 64 /* checks per timed sample */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void key_of(int i, char *out)
{
    snprintf(out, 40, "benchkey-%030d", i);
}

int main(int argc, char **argv)
{
    int nkeys = argc > 1 ? atoi(argv[1]) : 100;
    int rounds = argc > 2 ? atoi(argv[2]) : 2000;
    if (nkeys < 2 || rounds < 10) {
        fprintf(stderr, "usage: bench_auth [KEYS >= 2] [ROUNDS >= 10]\n");
        return 2;
    }
    char dir[] = "/tmp/pm-bench-auth-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[128];
    snprintf(path, sizeof path, "%s/keys", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    for (int i = 0; i < nkeys; i++) {
        char k[40];
        key_of(i, k);
        fprintf(f, "user%d:%s\n", i, k);
    }
    fclose(f);
    chmod(path, 0600);
    pm_auth *a = NULL;
    int rc = pm_auth_create(path, 0, &a);
    unlink(path);
    rmdir(dir);
    if (rc) {
        fprintf(stderr, "%s\n", pm_error_detail());
        return 1;
    }
    char keys[3][48];
    key_of(0, keys[0]);
    key_of(nkeys - 1, keys[1]);
    key_of(nkeys + 7, keys[2]); /* same length, not in the file */
    double *t[3];
    for (int k = 0; k < 3; k++)
        t[k] = malloc((size_t)rounds * sizeof *t[k]);
    int expect[3] = {0, 0, PM_EINVAL};
    pm_identity who;
    for (int r = 0; r < rounds; r++)
        for (int k0 = 0; k0 < 3; k0++) {
            int k = (k0 + r) % 3; /* rotate the order: no key always runs first */
            double t0 = pm_now();
            for (int b = 0; b < BATCH; b++)
                if (pm_auth_check(a, keys[k], 1, &who) != expect[k])
                    return 1;
            t[k][r] = (pm_now() - t0) / BATCH;
        }
    const char *names[3] = {"first line", "last line", "absent"};
    double med[3];
    for (int k = 0; k < 3; k++) {
        qsort(t[k], (size_t)rounds, sizeof *t[k], cmp_double);
        med[k] = t[k][rounds / 2];
    }
    printf("pm_auth_check, %d keys in the file, %d rounds of %d checks (median per check)\n", nkeys, rounds, BATCH);
    for (int k = 0; k < 3; k++)
        printf("  %-10s  %8.2f us  ratio to absent %.3f\n", names[k], med[k] * 1e6, med[k] / med[2]);
    for (int k = 0; k < 3; k++)
        free(t[k]);
    pm_auth_destroy(a);
    return 0;
}
