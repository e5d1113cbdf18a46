/* pixmend version */
#include "cli/cli.h"

#include <dnnl.h>
#include <fftw3.h>
#include <spng.h>
#include <stdio.h>
#include <webp/decode.h>

static const pm_optdef opts[] = {{0}};

static int run(int argc, char **argv)
{
    pm_args a;
    int rc = pm_cli_parse(&pm_cmd_version, opts, 0, 0, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    const dnnl_version_t *dv = dnnl_version();
    int wv = WebPGetDecoderVersion();
    printf("pixmend %s\n", PM_VERSION_STRING);
    printf("oneDNN %d.%d.%d, %s, libspng %s, libwebp %d.%d.%d\n", dv->major, dv->minor, dv->patch,
           fftwf_version, spng_version_string(), (wv >> 16) & 0xff, (wv >> 8) & 0xff, wv & 0xff);
    return 0;
}

const pm_command pm_cmd_version = {
    "version", "print the version of pixmend and its libraries",
    "usage: pixmend version\n\nPrints the version of pixmend and of the libraries it was built with.\n",
    run,
};
