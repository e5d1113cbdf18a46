/* API keys (see auth.h).
 *
 * The entries (hash, name slot, admin) of the current file live in one
 * array that a reload replaces under the write lock. Names map to slots
 * that outlive reloads, so a name's bucket and counters survive a rotation;
 * slots are never freed (bounded by PM_AUTH_MAX_NAMES). */
#include "server/auth.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX (1 << 20) /* bytes a key file may have */
#define KEY_MIN_LEN 16

typedef struct entry {
    uint8_t hash[32];
    int slot;
    int admin;
} entry;

typedef struct slot {
    char name[PM_KEY_NAME_MAX];
    int live;                       /* 1 while the current file names it */
    double tokens, last;            /* the bucket; guarded by bucket_lock */
    pthread_mutex_t submit_lock;
    atomic_ullong counters[PM_AUTH_NCOUNTERS];
} slot;

struct pm_auth {
    char *path;                     /* owned */
    double rate, burst;
    pthread_rwlock_t lock;          /* guards entries, nentries and slot names/live */
    entry *entries;                 /* owned */
    int nentries;
    slot *slots;                    /* owned; PM_AUTH_MAX_NAMES, nslots used */
    int nslots;
    pthread_mutex_t bucket_lock;
    atomic_ullong failures;
};

void pm_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 32;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
        memset(out, 0, 32); /* cannot match a real key's hash in practice; never seen with libcrypto */
}

int pm_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    unsigned diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned)(a[i] ^ b[i]);
    /* diff is 0..255: (diff - 1) >> 8 is all ones only when diff == 0 */
    return (int)(((diff - 1u) >> 8) & 1u);
}

static int key_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '~' || c == '-';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Reads the whole file after checking its mode. Caller owns *out (pm_free). */
static int read_key_file(const char *path, char **out, size_t *out_len)
{
    int rc;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pm_errorf(PM_EIO, "--api-keys %s: cannot open it: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = pm_errorf(PM_EINVAL, "--api-keys %s is not a regular file", path);
        goto close_fd;
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        rc = pm_errorf(PM_EINVAL,
                       "--api-keys %s may be %s by every user on this machine (mode %04o); "
                       "run `chmod 600 %s` (or 640 with the service's group) and start again",
                       path, st.st_mode & S_IROTH ? "read" : "changed", (unsigned)(st.st_mode & 07777), path);
        goto close_fd;
    }
    if (st.st_size > KEY_FILE_MAX) {
        rc = pm_errorf(PM_ETOOBIG, "--api-keys %s is %lld bytes; a key file may have at most 1 MiB", path,
                       (long long)st.st_size);
        goto close_fd;
    }
    char *buf = pm_malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = pm_errorf(PM_ENOMEM, "out of memory reading --api-keys %s", path);
        goto close_fd;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    rc = 0;
close_fd:
    close(fd);
    return rc;
}

/* Slot of `name`, adding it when new; -1 when the table is full. Write lock held. */
static int slot_of_locked(pm_auth *a, const char *name)
{
    for (int i = 0; i < a->nslots; i++)
        if (strcmp(a->slots[i].name, name) == 0)
            return i;
    if (a->nslots >= PM_AUTH_MAX_NAMES)
        return -1;
    slot *s = &a->slots[a->nslots];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->tokens = a->burst;
    s->last = pm_now();
    return a->nslots++;
}

/* Parses one line (NUL-terminated, trimmed, not a comment) into e, with the
 * name in name[]. On error returns PM_EINVAL with the reason in why[]. */
static int parse_line(char *line, entry *e, char *name, char *why, size_t whylen)
{
    char *f[5];
    int nf = 0;
    for (char *p = line; nf < 5;) {
        f[nf++] = p;
        char *c = strchr(p, ':');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    memset(e, 0, sizeof *e);
    if (nf >= 2 && strcmp(f[nf - 1], "admin") == 0 && nf >= 3) {
        e->admin = 1;
        nf--;
    }
    size_t nl = strlen(f[0]);
    if (nf < 2 || nl == 0) {
        snprintf(why, whylen, "expected NAME:KEY or NAME:sha256:HEX (optionally followed by :admin)");
        return PM_EINVAL;
    }
    static const char name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
    if (nl >= PM_KEY_NAME_MAX || strspn(f[0], name_chars) != nl) {
        snprintf(why, whylen, "the name must be 1-%d of A-Z a-z 0-9 _ . -", PM_KEY_NAME_MAX - 1);
        return PM_EINVAL;
    }
    memcpy(name, f[0], nl + 1);
    if (nf == 3 && strcmp(f[1], "sha256") == 0) {
        if (strlen(f[2]) != 64) {
            snprintf(why, whylen, "a sha256 entry needs 64 hex digits (printf %%s KEY | sha256sum)");
            return PM_EINVAL;
        }
        for (int i = 0; i < 32; i++) {
            int hi = hexval(f[2][2 * i]), lo = hexval(f[2][2 * i + 1]);
            if (hi < 0 || lo < 0) {
                snprintf(why, whylen, "a sha256 entry needs 64 hex digits (printf %%s KEY | sha256sum)");
                return PM_EINVAL;
            }
            e->hash[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
    }
    if (nf != 2) {
        snprintf(why, whylen,
                 "expected NAME:KEY or NAME:sha256:HEX, optionally followed by :admin (a key holds no ':')");
        return PM_EINVAL;
    }
    size_t kl = strlen(f[1]);
    int ok = kl >= KEY_MIN_LEN && kl <= PM_KEY_MAX_LEN;
    for (size_t i = 0; ok && i < kl; i++)
        ok = key_char((unsigned char)f[1][i]);
    if (!ok) {
        snprintf(why, whylen, "a key must be %d-%d of A-Z a-z 0-9 . _ ~ - (make one with `openssl rand -hex 32`)",
                 KEY_MIN_LEN, PM_KEY_MAX_LEN);
        return PM_EINVAL;
    }
    pm_sha256(f[1], kl, e->hash);
    return 0;
}

/* Parses the file into a new entry array and marks the names it has live.
 * Write lock held. On success the old entries are freed. */
static int load_locked(pm_auth *a)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_key_file(a->path, &text, &len);
    if (rc)
        return rc;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    entry *es = pm_calloc(lines, sizeof *es);
    int *slots_seen = pm_calloc(PM_AUTH_MAX_NAMES, sizeof *slots_seen);
    if (!es || !slots_seen) {
        rc = pm_errorf(PM_ENOMEM, "out of memory reading --api-keys %s", a->path);
        goto free_all;
    }
    int n = 0, lineno = 0;
    for (char *p = text, *next; p && *p; p = next) {
        lineno++;
        char *nlp = strchr(p, '\n');
        next = nlp ? nlp + 1 : NULL;
        if (nlp)
            *nlp = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        size_t l = strlen(p);
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\r'))
            p[--l] = '\0';
        if (!*p || *p == '#')
            continue;
        char name[PM_KEY_NAME_MAX], why[160];
        if (parse_line(p, &es[n], name, why, sizeof why)) {
            rc = pm_errorf(PM_EINVAL, "--api-keys %s line %d: %s", a->path, lineno, why);
            goto free_all;
        }
        int s = slot_of_locked(a, name);
        if (s < 0) {
            rc = pm_errorf(PM_EINVAL, "--api-keys %s: more than %d different names since the server started",
                           a->path, PM_AUTH_MAX_NAMES);
            goto free_all;
        }
        es[n].slot = s;
        slots_seen[s] = 1;
        n++;
    }
    if (n == 0) {
        rc = pm_errorf(PM_EINVAL, "--api-keys %s holds no key; add lines NAME:KEY (see docs/operations.md)", a->path);
        goto free_all;
    }
    for (int i = 0; i < a->nslots; i++)
        a->slots[i].live = slots_seen[i];
    pm_free(a->entries);
    a->entries = es;
    a->nentries = n;
    es = NULL;
    rc = 0;
free_all:
    pm_free(slots_seen);
    if (es) {
        memset(es, 0, lines * sizeof *es);
        pm_free(es);
    }
    memset(text, 0, len); /* the file may hold keys */
    pm_free(text);
    return rc;
}

int pm_auth_create(const char *path, double rate, pm_auth **out)
{
    int rc;
    *out = NULL;
    pm_auth *a = pm_calloc(1, sizeof *a);
    if (!a)
        return pm_errorf(PM_ENOMEM, "out of memory reading --api-keys");
    a->path = pm_strdup(path);
    a->slots = pm_calloc(PM_AUTH_MAX_NAMES, sizeof *a->slots);
    if (!a->path || !a->slots) {
        rc = pm_errorf(PM_ENOMEM, "out of memory reading --api-keys");
        goto free_auth;
    }
    a->rate = rate > 0 ? rate : 0;
    a->burst = 2 * a->rate < 1 ? 1 : 2 * a->rate;
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->bucket_lock, NULL);
    for (int i = 0; i < PM_AUTH_MAX_NAMES; i++)
        pthread_mutex_init(&a->slots[i].submit_lock, NULL);
    if ((rc = load_locked(a))) {
        pm_auth_destroy(a);
        return rc;
    }
    *out = a;
    return 0;

free_auth:
    pm_free(a->path);
    pm_free(a->slots);
    pm_free(a);
    return rc;
}

void pm_auth_destroy(pm_auth *a)
{
    if (!a)
        return;
    for (int i = 0; i < PM_AUTH_MAX_NAMES; i++)
        pthread_mutex_destroy(&a->slots[i].submit_lock);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->bucket_lock);
    if (a->entries)
        memset(a->entries, 0, (size_t)a->nentries * sizeof *a->entries);
    pm_free(a->entries);
    pm_free(a->slots);
    pm_free(a->path);
    pm_free(a);
}

int pm_auth_reload(pm_auth *a)
{
    pthread_rwlock_wrlock(&a->lock);
    int rc = load_locked(a);
    pthread_rwlock_unlock(&a->lock);
    return rc;
}

void pm_auth_counts(pm_auth *a, int *keys, int *names)
{
    pthread_rwlock_rdlock(&a->lock);
    *keys = a->nentries;
    int live = 0;
    for (int i = 0; i < a->nslots; i++)
        live += a->slots[i].live;
    *names = live;
    pthread_rwlock_unlock(&a->lock);
}

int pm_auth_check(pm_auth *a, const char *header, int is_token, pm_identity *who)
{
    memset(who, 0, sizeof *who);
    who->slot = -1;
    if (!header)
        return PM_ENOENT;
    const char *key = header;
    if (!is_token) {
        while (*key == ' ' || *key == '\t')
            key++;
        if (strncasecmp(key, "Bearer", 6) != 0 || (key[6] != ' ' && key[6] != '\t'))
            return *key ? PM_EINVAL : PM_ENOENT;
        key += 6;
        while (*key == ' ' || *key == '\t')
            key++;
    }
    size_t kl = strnlen(key, PM_KEY_MAX_LEN + 1);
    while (kl > 0 && (key[kl - 1] == ' ' || key[kl - 1] == '\t'))
        kl--;
    if (kl == 0)
        return PM_ENOENT;
    if (kl > PM_KEY_MAX_LEN)
        return PM_EINVAL;
    uint8_t h[32];
    pm_sha256(key, kl, h);
    return pm_auth_lookup(a, h, who);
}

int pm_auth_lookup(pm_auth *a, const uint8_t h[32], pm_identity *who)
{
    /* Every entry is compared; the match is selected without a branch. */
    unsigned found = 0, slot = 0, admin = 0;
    pthread_rwlock_rdlock(&a->lock);
    for (int i = 0; i < a->nentries; i++) {
        unsigned eq = (unsigned)pm_ct_equal(h, a->entries[i].hash, 32);
        unsigned m = 0u - (eq & ~found); /* all ones for the first match only */
        slot |= m & (unsigned)a->entries[i].slot;
        admin |= m & (unsigned)a->entries[i].admin;
        found |= eq;
    }
    /* The same work whether found or not (slot is 0 when not found). */
    unsigned keep = 0u - found;
    memcpy(who->name, a->slots[slot].name, sizeof who->name);
    for (size_t i = 0; i < sizeof who->name; i++)
        who->name[i] = (char)((unsigned char)who->name[i] & keep);
    for (size_t i = 0; i < sizeof who->hash; i++)
        who->hash[i] = (uint8_t)(h[i] & keep);
    who->slot = (int)((slot & keep) | (~keep & ~0u));
    who->admin = (int)(admin & keep);
    pthread_rwlock_unlock(&a->lock);
    return found ? 0 : PM_EINVAL;
}

int pm_auth_take(pm_auth *a, const pm_identity *who)
{
    if (a->rate <= 0 || who->slot < 0)
        return 0;
    slot *s = &a->slots[who->slot];
    double now = pm_now();
    int wait = 0;
    pthread_mutex_lock(&a->bucket_lock);
    s->tokens += (now - s->last) * a->rate;
    if (s->tokens > a->burst)
        s->tokens = a->burst;
    s->last = now;
    if (s->tokens >= 1) {
        s->tokens -= 1;
    } else {
        double need = (1 - s->tokens) / a->rate;
        wait = (int)need + ((double)(int)need < need);
        if (wait < 1)
            wait = 1;
    }
    pthread_mutex_unlock(&a->bucket_lock);
    return wait;
}

void pm_auth_submit_lock(pm_auth *a, const pm_identity *who)
{
    if (who->slot >= 0)
        pthread_mutex_lock(&a->slots[who->slot].submit_lock);
}

void pm_auth_submit_unlock(pm_auth *a, const pm_identity *who)
{
    if (who->slot >= 0)
        pthread_mutex_unlock(&a->slots[who->slot].submit_lock);
}

void pm_auth_count(pm_auth *a, const pm_identity *who, pm_auth_counter c)
{
    if (who->slot >= 0 && c < PM_AUTH_NCOUNTERS)
        atomic_fetch_add(&a->slots[who->slot].counters[c], 1);
}

void pm_auth_count_failure(pm_auth *a)
{
    atomic_fetch_add(&a->failures, 1);
}

void pm_auth_metrics(pm_auth *a, pm_sb *sb)
{
    static const struct {
        const char *name, *help;
    } m[PM_AUTH_NCOUNTERS] = {
        {"pixmend_key_requests_total", "API requests made with each key (by the name in the key file)"},
        {"pixmend_key_rate_limited_total", "API requests refused with 429 for --key-rate"},
        {"pixmend_key_quota_rejected_total", "submissions refused with 429 for --key-max-queued"},
        {"pixmend_key_jobs_submitted_total", "jobs accepted from each key"},
    };
    pthread_rwlock_rdlock(&a->lock);
    for (int c = 0; c < PM_AUTH_NCOUNTERS; c++) {
        pm_sb_printf(sb, "# HELP %s %s\n# TYPE %s counter\n", m[c].name, m[c].help, m[c].name);
        for (int i = 0; i < a->nslots; i++)
            pm_sb_printf(sb, "%s{key=\"%s\"} %llu\n", m[c].name, a->slots[i].name,
                         (unsigned long long)atomic_load(&a->slots[i].counters[c]));
    }
    int live = 0;
    for (int i = 0; i < a->nslots; i++)
        live += a->slots[i].live;
    pm_sb_printf(sb,
                 "# HELP pixmend_auth_failures_total API requests refused with 401 (no key or a wrong key)\n"
                 "# TYPE pixmend_auth_failures_total counter\npixmend_auth_failures_total %llu\n"
                 "# HELP pixmend_api_keys Keys and names in the key file\n# TYPE pixmend_api_keys gauge\n"
                 "pixmend_api_keys{kind=\"keys\"} %d\npixmend_api_keys{kind=\"names\"} %d\n",
                 (unsigned long long)atomic_load(&a->failures), a->nentries, live);
    pthread_rwlock_unlock(&a->lock);
}
