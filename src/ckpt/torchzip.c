/* PyTorch archives (torch.save since 1.6, PyTorch Lightning .ckpt, and
 * torch.jit.save's TorchScript archives): <prefix>/data.pkl holds the
 * pickle, <prefix>/data/<key> each storage's bytes; TorchScript adds
 * constants.pkl and code/. What the pickle holds is turned into the table
 * by pm_torch_collect (torchtree.c). */
#include "ckpt/ckpt_internal.h"

#include <stdio.h>
#include <string.h>

/* pm_storage_fn for archives: the bytes of entry <zpfx>data/<key>. */
static int zip_storage(pm_ckpt *ck, void *user, const char *name, const pm_pv *st, const uint8_t **bytes, size_t *len)
{
    const char *zpfx = user;
    size_t zn = strlen(zpfx);
    size_t en = zn + 5 + st->u.storage.key_n;
    char *ename = pm_malloc(en + 1);
    if (!ename)
        return pm_errorf(PM_ENOMEM, "%s: out of memory", ck->what);
    memcpy(ename, zpfx, zn);
    memcpy(ename + zn, "data/", 5);
    memcpy(ename + zn + 5, st->u.storage.key, st->u.storage.key_n);
    ename[en] = '\0';
    pm_zip_entry *e = pm_zip_find(&ck->zip, ename, en);
    if (!e) {
        int rc = pm_errorf(PM_ECORRUPT, "%s: tensor %s is stored in %s, which the archive lacks; the file is damaged or incomplete",
                           ck->what, name, ename);
        pm_free(ename);
        return rc;
    }
    pm_free(ename);
    return pm_zip_read(&ck->zip, e, ck->what, bytes, len);
}

/* The zip directory and inflated entries end up in ck->zip (freed by
 * pm_ckpt_close); the pickle's values are freed before returning, the
 * table's names being copies. */
int pm_torchzip_load(pm_ckpt *ck)
{
    int rc = pm_zip_open(&ck->zip, ck->base, ck->size, ck->what);
    if (rc)
        return rc;
    ck->zip.skip_crc = (ck->flags & PM_CKPT_NO_CRC) != 0;
    ck->zip.release = ck->map != NULL; /* opening reads the whole file once */
    pm_zip_entry *pkl = pm_zip_find_base(&ck->zip, "data.pkl");
    if (!pkl)
        return pm_errorf(PM_EFORMAT, "%s is a zip archive without a data.pkl entry, so not a PyTorch checkpoint (torch.save writes <name>/data.pkl and <name>/data/<n>)",
                         ck->what);
    char zpfx[256];
    size_t zn = pkl->name_len - strlen("data.pkl");
    if (zn >= sizeof zpfx)
        return pm_errorf(PM_EUNSUPPORTED, "%s: the archive's folder name is %zu bytes long; pixmend accepts up to 255", ck->what, zn);
    memcpy(zpfx, pkl->name, zn);
    zpfx[zn] = '\0';

    /* Newer torch records the byte order; only little-endian is read. */
    char probe[300];
    snprintf(probe, sizeof probe, "%sbyteorder", zpfx);
    pm_zip_entry *bo = pm_zip_find(&ck->zip, probe, strlen(probe));
    if (bo) {
        const uint8_t *b;
        size_t bl;
        if ((rc = pm_zip_read(&ck->zip, bo, ck->what, &b, &bl)))
            return rc;
        if (bl >= 3 && memcmp(b, "big", 3) == 0)
            return pm_errorf(PM_EUNSUPPORTED, "%s was written on a big-endian machine; pixmend reads little-endian checkpoints only (load and re-save it on x86 or ARM)",
                             ck->what);
    }
    snprintf(probe, sizeof probe, "%sconstants.pkl", zpfx);
    int torchscript = pm_zip_find(&ck->zip, probe, strlen(probe)) != NULL;

    const uint8_t *pb;
    size_t plen;
    if ((rc = pm_zip_read(&ck->zip, pkl, ck->what, &pb, &plen)))
        return rc;
    pm_pickle *pk;
    pm_pv *root;
    ck->format = torchscript ? "TorchScript" : "PyTorch zip";
    if ((rc = pm_pickle_run_ex(pb, plen, ck->what, "data.pkl", torchscript ? PM_PICKLE_STRICT : 0, &pk, &root, NULL)))
        return rc;
    rc = pm_torch_collect(ck, root, torchscript, zip_storage, zpfx);
    pm_pickle_free(pk);
    return rc;
}
