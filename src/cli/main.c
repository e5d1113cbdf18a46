/* pixmend: the command-line entry point and the table of sub-commands. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const pm_command *const commands[] = {
    &pm_cmd_version,
    &pm_cmd_probe,
    &pm_cmd_inpaint,
    &pm_cmd_colorize,
    &pm_cmd_serve,
    &pm_cmd_worker,
    &pm_cmd_bench,
    &pm_cmd_calibrate,
    &pm_cmd_report,
    &pm_cmd_models,
};

int main(int argc, char **argv)
{
    return pm_cli_dispatch(commands, sizeof commands / sizeof commands[0], argc, argv);
}
