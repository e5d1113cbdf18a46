/* Checkpoint reader tests. One run of tests/ckpt/gen_fixtures.py (real
 * torch.save output, hand-laid safetensors, re-packed and hostile archives)
 * writes the fixtures and a manifest of the values Python saw; every tensor
 * the reader returns is compared byte for byte with them. Damaged inputs
 * (truncations at many offsets, random byte flips, hostile pickles) must
 * give errors, never crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/python.h"
#include "ckpt/ckpt.h"
#include "ckpt/ckpt_internal.h"
#include "monitor/monitor.h"
#include "support/tmpfiles.h"

/* ------------------------------------------------------------ fixtures */

typedef struct ref_tensor {
    char name[256];
    char dtype[16];
    int ndim;
    int64_t shape[PM_MAX_DIMS];
    char blob[128];
    long raw_off, raw_len, f32_off;
} ref_tensor;

typedef struct ref_file {
    char fixture[128];
    char prefix[64]; /* "" = none */
    int count;
    ref_tensor *t;
    int nt;
} ref_file;

typedef struct ref_bad {
    char fixture[128];
    char err[32];
    char text[200];
} ref_bad;

static char fxdir[512];
static ref_file files[64];
static int nfiles;
static ref_bad bads[64];
static int nbads;

static void fx_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%.400s/%.250s", fxdir, name);
}

/* Reads a whole file into a malloc'ed buffer of exactly its size (so ASan
 * sees any read past the end). Caller frees. */
static uint8_t *slurp(const char *name, size_t *len)
{
    char p[700];
    fx_path(p, sizeof p, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int parse_manifest(void)
{
    char p[700];
    fx_path(p, sizeof p, "manifest.txt");
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    char line[2048];
    ref_file *cur = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "file ", 5) == 0) {
            if (nfiles == 64)
                return -1;
            cur = &files[nfiles++];
            if (sscanf(line + 5, "%127s %63s %d", cur->fixture, cur->prefix, &cur->count) != 3)
                return -1;
            if (strcmp(cur->prefix, "-") == 0)
                cur->prefix[0] = '\0';
            cur->t = calloc((size_t)cur->count + 1, sizeof *cur->t);
        } else if (strncmp(line, "t ", 2) == 0) {
            if (!cur || cur->nt >= cur->count)
                return -1;
            ref_tensor *t = &cur->t[cur->nt++];
            char *s = line + 2;
            int k;
            if (sscanf(s, "%255s %15s %d%n", t->name, t->dtype, &t->ndim, &k) != 3)
                return -1;
            s += k;
            for (int d = 0; d < t->ndim; d++) {
                long long v;
                if (sscanf(s, "%lld%n", &v, &k) != 1)
                    return -1;
                t->shape[d] = v;
                s += k;
            }
            if (sscanf(s, "%127s %ld %ld %ld", t->blob, &t->raw_off, &t->raw_len, &t->f32_off) != 4)
                return -1;
        } else if (strncmp(line, "bad ", 4) == 0) {
            ref_bad *b = &bads[nbads++];
            int k;
            if (sscanf(line + 4, "%127s %31s %n", b->fixture, b->err, &k) != 2)
                return -1;
            snprintf(b->text, sizeof b->text, "%s", line + 4 + k);
        }
    }
    fclose(f);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    const char *src = getenv("PM_SOURCE_DIR");
    if (!src)
        src = PM_SOURCE_DIR;
    snprintf(fxdir, sizeof fxdir, "/tmp/pm_test_ckpt_XXXXXX");
    if (!mkdtemp(fxdir)) {
        fprintf(stderr, "cannot create a temporary directory\n");
        return -1;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/ckpt/gen_fixtures.py' '%s'", src, fxdir);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "the fixture generator failed (%s: status %d); it needs /usr/bin/python3 with torch and numpy\n",
                cmd, st);
        return -1;
    }
    if (parse_manifest() != 0 || nfiles < 10 || nbads < 10) {
        fprintf(stderr, "cannot read %s/manifest.txt (files %d, bad %d)\n", fxdir, nfiles, nbads);
        return -1;
    }
    return 0;
}

/* Removes the (flat) fixture directory. */
static void remove_fixtures(void)
{
    DIR *d = opendir(fxdir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", fxdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(fxdir);
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < nfiles; i++)
        free(files[i].t);
    if (fxdir[0] && !getenv("PM_KEEP_FIXTURES"))
        remove_fixtures();
    return 0;
}

/* -------------------------------------------------------------- checks */

/* Compares every tensor of an opened checkpoint with the manifest. */
static void check_against(const pm_ckpt *ck, const ref_file *rf)
{
    assert_int_equal(pm_ckpt_count(ck), rf->count);
    for (int i = 0; i < rf->nt; i++) {
        const ref_tensor *t = &rf->t[i];
        const pm_tensor_ref *r = pm_ckpt_find(ck, t->name);
        if (!r)
            fail_msg("%s: tensor %s not found", rf->fixture, t->name);
        assert_string_equal(r->name, t->name);
        assert_string_equal(pm_dtype_name(r->dtype), t->dtype);
        assert_int_equal(r->ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++)
            assert_int_equal(r->shape[d], t->shape[d]);
        assert_int_equal(r->nbytes, (size_t)t->raw_len);
        if ((uintptr_t)r->data % pm_dtype_size(r->dtype))
            fail_msg("%s: tensor %s is misaligned (%p)", rf->fixture, t->name, r->data);
        size_t blen;
        uint8_t *blob = slurp(t->blob, &blen);
        assert_non_null(blob);
        assert_true((size_t)(t->raw_off + t->raw_len) <= blen);
        if (t->raw_len && memcmp(r->data, blob + t->raw_off, (size_t)t->raw_len) != 0)
            fail_msg("%s: tensor %s differs from what torch saved", rf->fixture, t->name);
        size_t n = t->raw_len / pm_dtype_size(r->dtype);
        float *f = malloc((n + 1) * sizeof *f);
        int rc = pm_ckpt_get_f32(ck, t->name, t->ndim, t->shape, f);
        if (t->f32_off >= 0) {
            if (rc != 0)
                fail_msg("%s: get_f32(%s): %s", rf->fixture, t->name, pm_error_detail());
            if (n && memcmp(f, blob + t->f32_off, n * 4) != 0)
                fail_msg("%s: tensor %s as float32 differs from torch's .float()", rf->fixture, t->name);
        } else {
            assert_int_equal(rc, PM_ECHECKPOINT);
            assert_non_null(strstr(pm_error_detail(), "expected a floating-point tensor"));
        }
        free(f);
        free(blob);
    }
    /* at() walks the same set: every entry findable, names distinct */
    for (int i = 0; i < pm_ckpt_count(ck); i++) {
        const pm_tensor_ref *r = pm_ckpt_at(ck, i);
        assert_non_null(r);
        assert_ptr_equal(pm_ckpt_find(ck, r->name), r);
    }
    assert_null(pm_ckpt_at(ck, pm_ckpt_count(ck)));
    assert_null(pm_ckpt_at(ck, -1));
}

static void test_fixture_values(void **state)
{
    (void)state;
    for (int i = 0; i < nfiles; i++) {
        const ref_file *rf = &files[i];
        char p[700];
        fx_path(p, sizeof p, rf->fixture);
        pm_ckpt *ck = NULL;
        size_t before = pm_mem_in_use();
        int rc = pm_ckpt_open(p, rf->prefix[0] ? rf->prefix : NULL, &ck);
        if (rc)
            fail_msg("%s: %s (%s)", rf->fixture, pm_strerror(rc), pm_error_detail());
        check_against(ck, rf);
        pm_ckpt_close(ck);
        /* everything the table owned went back */
        assert_int_equal(pm_mem_in_use(), before);
    }
}

/* The same bytes from memory give the same table. */
static void test_open_mem(void **state)
{
    (void)state;
    for (int i = 0; i < nfiles; i++) {
        const ref_file *rf = &files[i];
        size_t len;
        uint8_t *b = slurp(rf->fixture, &len);
        assert_non_null(b);
        pm_ckpt *ck = NULL;
        int rc = pm_ckpt_open_mem(b, len, rf->fixture, rf->prefix[0] ? rf->prefix : NULL, &ck);
        if (rc)
            fail_msg("%s: %s", rf->fixture, pm_error_detail());
        check_against(ck, rf);
        pm_ckpt_close(ck);
        free(b);
    }
}

static int err_code(const char *name)
{
    static const struct { const char *n; int c; } codes[] = {
        {"PM_EFORMAT", PM_EFORMAT}, {"PM_ECORRUPT", PM_ECORRUPT}, {"PM_ETRUNCATED", PM_ETRUNCATED},
        {"PM_EEMPTY", PM_EEMPTY}, {"PM_EUNSUPPORTED", PM_EUNSUPPORTED}, {"PM_ECHECKPOINT", PM_ECHECKPOINT},
    };
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (strcmp(codes[i].n, name) == 0)
            return codes[i].c;
    return 1;
}

static void test_bad_files(void **state)
{
    (void)state;
    for (int i = 0; i < nbads; i++) {
        const ref_bad *b = &bads[i];
        char p[700];
        fx_path(p, sizeof p, b->fixture);
        pm_ckpt *ck = (pm_ckpt *)0x1;
        pm_error_clear();
        size_t before = pm_mem_in_use();
        int rc = pm_ckpt_open(p, NULL, &ck);
        assert_int_equal(pm_mem_in_use(), before);
        if (rc != err_code(b->err))
            fail_msg("%s: expected %s, got %d (%s): %s", b->fixture, b->err, rc, pm_strerror(rc), pm_error_detail());
        assert_null(ck);
        if (!strstr(pm_error_detail(), b->text))
            fail_msg("%s: message \"%s\" lacks \"%s\"", b->fixture, pm_error_detail(), b->text);
        /* every message names the file */
        assert_non_null(strstr(pm_error_detail(), b->fixture));
    }
}

/* The fuzzing flag lets a CRC mismatch through, and nothing else. */
static void test_no_crc_flag(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = slurp("flipped.pth", &len);
    assert_non_null(b);
    pm_ckpt *ck;
    assert_int_equal(pm_ckpt_open_mem(b, len, "flipped.pth", NULL, &ck), PM_ECORRUPT);
    assert_int_equal(pm_ckpt_open_mem_flags(b, len, "flipped.pth", NULL, PM_CKPT_NO_CRC, &ck), 0);
    assert_int_equal(pm_ckpt_count(ck), 11);
    pm_ckpt_close(ck);
    free(b);
    b = slurp("oob.pth", &len);
    assert_int_equal(pm_ckpt_open_mem_flags(b, len, "oob.pth", NULL, PM_CKPT_NO_CRC, &ck), PM_ECORRUPT);
    free(b);
}

static void test_messages(void **state)
{
    (void)state;
    char p[700];
    fx_path(p, sizeof p, "best.ckpt");
    pm_ckpt *ck;
    assert_int_equal(pm_ckpt_open(p, "generator.", &ck), 0);
    assert_int_equal(pm_ckpt_set_hint(ck, "big-lama"), 0);
    float *buf = malloc(64 * 4 * 7 * 7 * sizeof *buf);

    const int64_t want[] = {64, 4, 7, 7};
    assert_int_equal(pm_ckpt_get_f32(ck, "generator.model.1.ffc.convl2l.weight", 4, want, buf), PM_ECHECKPOINT);
    assert_string_equal(pm_error_detail(),
                        "checkpoint best.ckpt: tensor generator.model.1.ffc.convl2l.weight has shape [64,3,7,7]; expected [64,4,7,7]");
    const int64_t want3[] = {64, 3, 7};
    assert_int_equal(pm_ckpt_get_f32(ck, "generator.model.1.ffc.convl2l.weight", 3, want3, buf), PM_ECHECKPOINT);
    assert_string_equal(pm_error_detail(),
                        "checkpoint best.ckpt: tensor generator.model.1.ffc.convl2l.weight has shape [64,3,7,7]; expected [64,3,7]");
    assert_int_equal(pm_ckpt_get_f32(ck, "generator.model.5.conv1.ffc.convl2l.weight", 4, want, buf), PM_ECHECKPOINT);
    assert_string_equal(pm_error_detail(),
                        "checkpoint best.ckpt has no tensor 'generator.model.5.conv1.ffc.convl2l.weight' (it holds 12 generator tensors; is this a big-lama checkpoint?)");
    /* the prefix filter really drops the evaluator */
    assert_null(pm_ckpt_find(ck, "evaluator.loss_fn.net.conv1.weight"));
    const int64_t s0[1] = {0};
    assert_int_equal(pm_ckpt_get_f32(ck, "generator.model.1.bn_l.num_batches_tracked", 0, s0, buf), PM_ECHECKPOINT);
    assert_string_equal(pm_error_detail(),
                        "checkpoint best.ckpt: tensor generator.model.1.bn_l.num_batches_tracked is int64; expected a floating-point tensor (float32, float16, bfloat16 or float64)");
    assert_int_equal(pm_ckpt_get_f32(ck, "generator.model.24.bias", 1, NULL, buf), PM_EINVAL);
    assert_int_equal(pm_ckpt_get_f32(ck, "generator.model.24.bias", 9, want, buf), PM_EINVAL);
    pm_ckpt_close(ck);

    /* another model's file: the message shows what it holds instead */
    fx_path(p, sizeof p, "ddcolor.pth");
    assert_int_equal(pm_ckpt_open(p, "generator.", &ck), 0);
    assert_int_equal(pm_ckpt_count(ck), 0);
    assert_int_equal(pm_ckpt_set_hint(ck, "big-lama"), 0);
    assert_int_equal(pm_ckpt_get_f32(ck, "generator.model.1.ffc.convl2l.weight", 4, want, buf), PM_ECHECKPOINT);
    assert_string_equal(pm_error_detail(),
                        "checkpoint ddcolor.pth has no tensor 'generator.model.1.ffc.convl2l.weight' (it holds no generator tensors; its 11 tensors have names like 'encoder.arch.stages.0.0.gamma'; is this a big-lama checkpoint?)");
    pm_ckpt_close(ck);

    /* a key under another prefix is pointed out */
    fx_path(p, sizeof p, "pytorch_model.bin");
    assert_int_equal(pm_ckpt_open(p, NULL, &ck), 0);
    assert_int_equal(pm_ckpt_get_f32(ck, "module.block.w", 0, NULL, buf), PM_ECHECKPOINT);
    assert_string_equal(pm_error_detail(),
                        "checkpoint pytorch_model.bin has no tensor 'module.block.w' (it holds 24 tensors; it has 'block.w', so the keys may carry another prefix)");
    /* the later of two equal names wins, as in the Python dict */
    const pm_tensor_ref *r = pm_ckpt_find(ck, "dup.x");
    assert_non_null(r);
    float two[2];
    const int64_t s2[] = {2};
    assert_int_equal(pm_ckpt_get_f32(ck, "dup.x", 1, s2, two), 0);
    assert_true(two[0] == 7.0f && two[1] == 7.0f);
    pm_ckpt_close(ck);
    free(buf);
}

static void test_open_errors(void **state)
{
    (void)state;
    pm_ckpt *ck = (pm_ckpt *)0x1;
    assert_int_equal(pm_ckpt_open("/nonexistent/dir/best.ckpt", NULL, &ck), PM_ENOENT);
    assert_null(ck);
    assert_non_null(strstr(pm_error_detail(), "/nonexistent/dir/best.ckpt does not exist"));
    assert_int_equal(pm_ckpt_open(fxdir, NULL, &ck), PM_EINVAL);
    assert_non_null(strstr(pm_error_detail(), "is a directory"));
    assert_int_equal(pm_ckpt_open(NULL, NULL, &ck), PM_EINVAL);
    assert_int_equal(pm_ckpt_open_mem("", 0, "empty.bin", NULL, &ck), PM_EEMPTY);
    assert_string_equal(pm_error_detail(), "checkpoint empty.bin is empty (0 bytes); download or copy it again");
    pm_ckpt_close(NULL);
    assert_int_equal(pm_ckpt_count(NULL), 0);
    assert_null(pm_ckpt_find(NULL, "x"));
    /* a safetensors file cut inside its header */
    size_t len;
    uint8_t *b = slurp("model.safetensors", &len);
    assert_non_null(b);
    assert_int_equal(pm_ckpt_open_mem(b, 100, "model.safetensors", NULL, &ck), PM_ETRUNCATED);
    assert_non_null(strstr(pm_error_detail(), "header claims"));
    free(b);
}

static void test_dtype_names(void **state)
{
    (void)state;
    assert_string_equal(pm_dtype_name(PM_DT_BF16), "bfloat16");
    assert_int_equal(pm_dtype_size(PM_DT_BF16), 2);
    assert_int_equal(pm_dtype_size(PM_DT_F64), 8);
    assert_int_equal(pm_dtype_size(PM_DT_I64), 8);
    assert_int_equal(pm_dtype_size(PM_DT_BOOL), 1);
    assert_int_equal(pm_dtype_size(PM_DT_I32), 4);
}

/* The pickle machine's view of the Lightning checkpoint: scalars, strings,
 * containers as Python has them; foreign classes as opaque objects. */
static const pm_pv *dget(const pm_pv *d, const char *key)
{
    assert_int_equal(d->kind, PV_DICT);
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const pm_pv *k = d->u.dict.k[i];
        if (k->kind == PV_STR && k->u.s.n == strlen(key) && memcmp(k->u.s.p, key, k->u.s.n) == 0)
            return d->u.dict.v[i];
    }
    fail_msg("no key %s", key);
    return NULL;
}

static int global_is(const pm_pv *g, const char *mod, const char *name)
{
    return g && g->kind == PV_GLOBAL && g->u.glob.mod_n == strlen(mod) && memcmp(g->u.glob.mod, mod, g->u.glob.mod_n) == 0 &&
           g->u.glob.name_n == strlen(name) && memcmp(g->u.glob.name, name, g->u.glob.name_n) == 0;
}

static void test_pickle_values(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = slurp("best.data.pkl", &len);
    assert_non_null(b);
    pm_pickle *pk;
    pm_pv *root;
    assert_int_equal(pm_pickle_run(b, len, "test", &pk, &root), 0);
    assert_int_equal(dget(root, "epoch")->u.i, 41);
    assert_int_equal(dget(root, "global_step")->u.i, 123456);
    const pm_pv *v = dget(root, "pytorch-lightning_version");
    assert_int_equal(v->kind, PV_STR);
    assert_memory_equal(v->u.s.p, "1.2.9", 5);
    const pm_pv *hp = dget(root, "hyper_parameters");
    assert_true(dget(hp, "lr")->kind == PV_FLOAT && dget(hp, "lr")->u.f == 1e-3);
    assert_int_equal(dget(hp, "neg")->u.i, -5);
    assert_int_equal(dget(hp, "neg_big")->u.i, -(INT64_C(1) << 40));
    assert_int_equal(dget(hp, "big_int")->kind, PV_BIGINT);
    assert_int_equal(dget(hp, "nothing")->kind, PV_NONE);
    assert_true(dget(hp, "flag")->kind == PV_BOOL && dget(hp, "flag")->u.i == 1);
    v = dget(hp, "betas");
    assert_true(v->kind == PV_LIST && v->u.seq.n == 2 && v->u.seq.v[1]->u.f == 0.999);
    v = dget(hp, "tuple");
    assert_true(v->kind == PV_TUPLE && v->u.seq.n == 4 && v->u.seq.v[3]->u.f == 2.5);
    v = dget(hp, "ünïcode");
    assert_true(v->kind == PV_STR && v->u.s.n == 2 && memcmp(v->u.s.p, "ß", 2) == 0);
    v = dget(hp, "config");
    assert_int_equal(v->kind, PV_OBJECT);
    assert_true(global_is(v->u.obj.cls, "omegaconf.dictconfig", "DictConfig"));
    assert_true(global_is(dget(hp, "path")->u.obj.cls, "pathlib", "PosixPath"));
    assert_int_equal(dget(hp, "np_array")->kind, PV_OBJECT);
    assert_int_equal(dget(hp, "module")->kind, PV_OBJECT);
    assert_int_equal(dget(hp, "attrs")->kind, PV_OBJECT);
    assert_int_equal(dget(hp, "set")->kind, PV_OBJECT); /* protocol 2: builtins.set via REDUCE */
    const pm_pv *sd = dget(root, "state_dict");
    assert_int_equal(sd->kind, PV_DICT);
    assert_int_equal(sd->u.dict.n, 16);
    v = dget(sd, "generator.model.18.weight");
    assert_int_equal(v->kind, PV_TENSOR);
    assert_int_equal(v->u.t->ndim, 4);
    assert_int_equal(v->u.t->shape[1], 256);
    assert_int_equal(v->u.t->stride[0], 256 * 9);
    assert_int_equal(v->u.t->dtype, PM_DT_F32);
    v = dget(dget(dget(root, "optimizer_states")->u.seq.v[0], "param_groups")->u.seq.v[0], "lr");
    assert_true(v->u.f == 0.001);
    pm_pickle_free(pk);
    free(b);
}

/* ------------------------------------------------------------- damage */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Opens a damaged copy of b[0, len) placed at the very end of `scratch`
 * (cap bytes from malloc), so that ASan reports any read past its end. On
 * success every tensor must be readable in full. */
static int open_damaged(const uint8_t *b, size_t len, uint8_t *scratch, size_t cap, const char *name)
{
    uint8_t *copy = scratch + (cap - len);
    memcpy(copy, b, len);
    pm_ckpt *ck = NULL;
    int rc = pm_ckpt_open_mem(copy, len, name, NULL, &ck);
    if (rc == 0) {
        unsigned sum = 0;
        for (int i = 0; i < pm_ckpt_count(ck); i++) {
            const pm_tensor_ref *r = pm_ckpt_at(ck, i);
            const uint8_t *d = r->data;
            for (size_t k = 0; k < r->nbytes; k++)
                sum += d[k];
            int64_t numel = pm_shape_numel(r->ndim, r->shape);
            assert_true(numel >= 0 && (size_t)numel * pm_dtype_size(r->dtype) == r->nbytes);
            float *f = malloc((size_t)numel * 4 + 4);
            int g = pm_ckpt_get_f32(ck, r->name, r->ndim, r->shape, f);
            assert_true(g == 0 || g == PM_ECHECKPOINT);
            free(f);
        }
        (void)sum;
        pm_ckpt_close(ck);
    } else {
        assert_true(rc < 0 && rc >= PM_ERROR_MIN);
        assert_null(ck);
        assert_true(strlen(pm_error_detail()) > 10);
    }
    return rc;
}

/* Every cut of a file fails (all-offsets for small files, a spread plus the
 * whole tail, where the zip directory lives, for bigger ones). */
static void test_truncated(void **state)
{
    (void)state;
    static const char *const names[] = {"pytorch_model.bin", "ddcolor.pth", "deflated.bin", "zip64.pth",
                                        "model.safetensors", "best.ckpt", "ema.pth"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t len;
        uint8_t *b = slurp(names[i], &len);
        assert_non_null(b);
        uint8_t *scratch = malloc(len);
        size_t tail = len > 1000000 ? 600 : 1500;
        size_t step = len <= 20000 ? 1 : len / 500;
        for (size_t cut = 0; cut < len; cut += (len - cut <= tail ? 1 : step)) {
            int rc = open_damaged(b, cut, scratch, len, names[i]);
            if (rc == 0)
                fail_msg("%s cut to %zu of %zu bytes opened without an error", names[i], cut, len);
        }
        free(scratch);
        free(b);
    }
}

/* Random byte changes anywhere: any result but a crash. The zip's CRCs
 * catch most changes to data; the directory and headers are not covered by
 * any CRC, so changes there test the bounds checks. */
static void test_flipped(void **state)
{
    (void)state;
    static const char *const names[] = {"pytorch_model.bin", "deflated.bin", "zip64.pth", "ema.pth",
                                        "model.safetensors", "restored.bin"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t len;
        uint8_t *b = slurp(names[i], &len);
        assert_non_null(b);
        uint8_t *m = malloc(len), *scratch = malloc(len);
        int failures = 0;
        for (int iter = 0; iter < 600; iter++) {
            memcpy(m, b, len);
            int flips = 1 + (int)(rnd() % 6);
            for (int k = 0; k < flips; k++) {
                size_t at;
                uint64_t where = rnd() % 4;
                if (where == 0 || len < 2048)
                    at = rnd() % len;
                else if (where == 1)
                    at = rnd() % 512; /* headers */
                else
                    at = len - 1 - rnd() % 2048; /* central directory / last entries */
                if (rnd() % 3 == 0)
                    m[at] = (uint8_t)(rnd() % 3 == 0 ? 0xff : 0);
                else
                    m[at] ^= (uint8_t)(1u << (rnd() % 8));
            }
            failures += open_damaged(m, len, scratch, len, names[i]) != 0;
        }
        /* most damage is detected */
        assert_true(failures > 100);
        free(scratch);
        free(m);
        free(b);
    }
}

/* pm_ckpt_release gives back the resident pages of a tensor read from the
 * file's mapping: the process's RSS falls by about the tensor's size, and the
 * tensor still reads the same afterwards. */
/* Rooted opens: every tensor under the root holding `anchor` reads as
 * prefix+rest with the same bytes; the others are dropped. */
static void check_rooted(const char *fixture, const char *root, const char *prefix, const char *anchor, int expect)
{
    char p[700];
    fx_path(p, sizeof p, fixture);
    pm_ckpt *all = NULL, *ck = NULL;
    assert_int_equal(pm_ckpt_open(p, NULL, &all), 0);
    assert_int_equal(pm_ckpt_open_rooted(p, prefix, anchor, &ck), 0);
    assert_int_equal(pm_ckpt_count(ck), expect);
    size_t rn = strlen(root);
    int under = 0;
    for (int i = 0; i < pm_ckpt_count(all); i++) {
        const pm_tensor_ref *r = pm_ckpt_at(all, i);
        if (strncmp(r->name, root, rn) != 0)
            continue;
        under++;
        char name[300];
        snprintf(name, sizeof name, "%s%s", prefix, r->name + rn);
        const pm_tensor_ref *q = pm_ckpt_find(ck, name);
        if (!q)
            fail_msg("%s: rooted open lacks %s (from %s)", fixture, name, r->name);
        assert_int_equal(q->nbytes, r->nbytes);
        assert_int_equal(q->ndim, r->ndim);
        assert_memory_equal(q->data, r->data, r->nbytes);
    }
    assert_int_equal(under, expect);
    pm_ckpt_close(ck);
    pm_ckpt_close(all);
}

static void test_rooted(void **state)
{
    (void)state;
    /* a TorchScript wrapper (IOPaint's layout): the network under generator. */
    check_rooted("ts_wrapped.pt", "generator.", "net.", "body.0.weight", 10);
    /* a TorchScript module that is the network itself */
    check_rooted("ts_gen.pt", "", "net.", "body.0.weight", 10);
    /* names already under the prefix: filtered as pm_ckpt_open does */
    check_rooted("legacy_sd.pt", "nested.", "nested.", "x", 2);
    /* no anchor anywhere: the prefix filter alone, with its message */
    char p[700];
    fx_path(p, sizeof p, "ts_gen.pt");
    pm_ckpt *ck = NULL;
    assert_int_equal(pm_ckpt_open_rooted(p, "generator.", "model.1.ffc.convl2l.weight", &ck), 0);
    assert_int_equal(pm_ckpt_count(ck), 0);
    assert_string_equal(pm_ckpt_format(ck), "TorchScript");
    float f;
    int64_t one = 1;
    assert_int_equal(pm_ckpt_get_f32(ck, "generator.model.1.ffc.convl2l.weight", 1, &one, &f), PM_ECHECKPOINT);
    assert_non_null(strstr(pm_error_detail(), "it holds no generator tensors; its 10 tensors have names like '"));
    pm_ckpt_close(ck);
}

static void test_release_pages(void **state)
{
    (void)state;
    enum { N = 4 << 20 }; /* floats: 16 MiB */
    char *dir = fx_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    char hdr[160];
    int hn = snprintf(hdr, sizeof hdr, "{\"w\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[0,%zu]}}", N,
                      (size_t)N * sizeof(float));
    while (hn % 8)
        hdr[hn++] = ' ';
    size_t len = 8 + (size_t)hn + (size_t)N * sizeof(float);
    uint8_t *file = malloc(len);
    assert_non_null(file);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    memcpy(file + 8, hdr, (size_t)hn);
    float *v = (float *)(file + 8 + hn);
    for (int i = 0; i < N; i++)
        v[i] = (float)(i % 1000);
    fx_write(path, file, len);
    free(file);

    pm_ckpt *ck;
    assert_int_equal(pm_ckpt_open(path, NULL, &ck), 0);
    const pm_tensor_ref *r = pm_ckpt_find(ck, "w");
    assert_non_null(r);
    assert_int_equal(r->nbytes, (size_t)N * sizeof(float));
    double sum = 0;
    for (int i = 0; i < N; i++)
        sum += ((const float *)r->data)[i];
    uint64_t touched = pm_read_rss();
    pm_ckpt_release(ck, r);
    uint64_t released = pm_read_rss();
    assert_true(touched > released);
    assert_true(touched - released >= (uint64_t)N * sizeof(float) * 3 / 4);
    double again = 0;
    for (int i = 0; i < N; i++)
        again += ((const float *)r->data)[i];
    assert_true(again == sum);
    pm_ckpt_release(ck, NULL);
    pm_ckpt_close(ck);
    fx_rmtree(dir);
    free(dir);
}

/* Collections built from a MARK on an empty stack (the stack is not even
 * allocated yet): valid pickles whose root is an empty list, tuple or dict.
 * The fuzzer found that these did pointer arithmetic on a NULL stack. */
static void test_pickle_empty_stack(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        enum pm_pv_kind kind;
    } cases[] = {
        {"(l.", PV_LIST},
        {"(t.", PV_TUPLE},
        {"(d.", PV_DICT},
        {"\x80\x02(t.", PV_TUPLE},
        {"\x80\x02).", PV_TUPLE},
        {"\x80\x02\x85.", PV_TUPLE}, /* TUPLE1 with nothing to take: damaged */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pm_pickle *pk = NULL;
        pm_pv *root = NULL;
        int rc = pm_pickle_run((const uint8_t *)cases[i].bytes, strlen(cases[i].bytes), "empty", &pk, &root);
        if (i == 5) {
            assert_true(rc < 0);
            assert_null(pk);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_non_null(root);
        assert_int_equal(root->kind, cases[i].kind);
        if (root->kind == PV_DICT)
            assert_int_equal(root->u.dict.n, 0);
        else
            assert_int_equal(root->u.seq.n, 0);
        pm_pickle_free(pk);
    }
}

/* The pickle machine alone: every cut fails, random changes never crash. */
static void test_pickle_damage(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = slurp("best.data.pkl", &len);
    assert_non_null(b);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b, cut);
        pm_pickle *pk = NULL;
        pm_pv *root = NULL;
        int rc = pm_pickle_run(c, cut, "cut", &pk, &root);
        if (rc == 0)
            fail_msg("a pickle cut to %zu of %zu bytes ran to a STOP", cut, len);
        assert_null(pk);
        free(c);
    }
    uint8_t *m = malloc(len);
    int ok = 0;
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(m, b, len);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = rnd() % len;
            switch (rnd() % 3) {
            case 0: m[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
            case 1: m[at] = (uint8_t)rnd(); break;
            default: {
                static const char ops[] = "(tQRbsuhqjre)}]\x85\x86\x87\x88\x89\x8a\x8c\x93\x94\x95.0";
                m[at] = (uint8_t)ops[rnd() % (sizeof ops - 1)];
                break;
            }
            }
        }
        pm_pickle *pk = NULL;
        pm_pv *root = NULL;
        if (pm_pickle_run(m, len, "flipped", &pk, &root) == 0) {
            assert_non_null(root);
            ok++;
            pm_pickle_free(pk);
        }
    }
    (void)ok;
    free(m);
    free(b);
}

int main(void)
{
    fx_require_python("test_ckpt", "torch, numpy");
    pm_log_setup(PM_LOG_ERROR, PM_LOG_TEXT, NULL); /* skipped-tensor warnings are expected */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_fixture_values),
        cmocka_unit_test(test_open_mem),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_no_crc_flag),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_pickle_values),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_flipped),
        cmocka_unit_test(test_pickle_damage),
        cmocka_unit_test(test_pickle_empty_stack),
        cmocka_unit_test(test_release_pages),
        cmocka_unit_test(test_rooted),
    };
    if (getenv("PM_TEST_FILTER")) /* e.g. PM_TEST_FILTER=test_flipped */
        cmocka_set_test_filter(getenv("PM_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
