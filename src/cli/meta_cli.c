/* The file-keeping options shared by inpaint and colorize (and their batch
 * modes): --strip-metadata, --strip-gps, --jpeg-reencode, and the --verbose
 * notes about what the output format could not hold. */
#include "cli/meta_cli.h"

#include <stdio.h>

pm_meta_policy pm_cli_meta_policy(const pm_optdef *defs, const pm_args *a)
{
    pm_meta_policy p = {0, 0, 0};
    p.strip_metadata = pm_cli_get(defs, a, "strip-metadata") != NULL;
    p.strip_gps = pm_cli_get(defs, a, "strip-gps") != NULL;
    /* An explicit -q asks for that quality: the whole image is encoded at it. */
    p.jpeg_reencode = pm_cli_get(defs, a, "jpeg-reencode") != NULL || pm_cli_get(defs, a, "quality") != NULL;
    return p;
}

void pm_cli_meta_notes(const pm_command *cmd, const pm_optdef *defs, const pm_args *a, const char *out_path,
                       const pm_encode_report *r)
{
    if (!pm_cli_get(defs, a, "verbose"))
        return;
    for (int i = 0; i < r->nwhy; i++)
        fprintf(stderr, "pixmend %s: note: %s: %s\n", cmd->name, out_path, r->why[i]);
    if (r->gps_removed)
        fprintf(stderr, "pixmend %s: note: %s: the location (GPS) was removed\n", cmd->name, out_path);
    if (r->kept & PM_KEEP_BLOCKS)
        fprintf(stderr, "pixmend %s: note: %s: kept %d of %d JPEG blocks as they were; re-encoded %d around the "
                        "repair (--jpeg-reencode encodes the whole image)\n",
                cmd->name, out_path, r->blocks_total - r->blocks_encoded, r->blocks_total, r->blocks_encoded);
}
