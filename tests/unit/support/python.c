/* See python.h. */
#include "python.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int fx_require_python(const char *test, const char *modules)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import %s' >/dev/null 2>&1", modules);
    int st = system(cmd);
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    printf("%s: skipped: its fixtures need /usr/bin/python3 with %s (scripts/install-deps test installs them)\n",
           test, modules);
    fflush(stdout);
    exit(PM_TEST_SKIP);
}
