/*
 * pixmend — self-hosted image restoration.
 *
 * The public C API of libpixmend. Every function that can fail returns 0 on
 * success or a negative PM_E* code; pm_strerror() names the code and
 * pm_error_detail() returns the sentence that says what exactly was wrong and
 * what to do (kept per thread, overwritten by the next failure on that thread).
 *
 * Ownership is stated on each function: "caller owns" means the caller must
 * release the result with the matching *_free / *_close function.
 */
#ifndef PIXMEND_H
#define PIXMEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* PM_VERSION_MAJOR, _MINOR, _PATCH and PM_VERSION_STRING, written by CMake
 * from project(VERSION) in CMakeLists.txt: the one place the version is set
 * (the Debian package takes it from there too). */
#include "pixmend_version.h"

/* ---------------------------------------------------------------- errors */

enum pm_error {
    PM_OK = 0,
    PM_ENOMEM = -1,       /* out of memory */
    PM_EINVAL = -2,       /* invalid argument or option */
    PM_EIO = -3,          /* read or write failed */
    PM_ENOENT = -4,       /* file or object not found */
    PM_ETOOBIG = -5,      /* exceeds a configured limit (pixels, side, bytes) */
    PM_EFORMAT = -6,      /* not a supported image format (wrong magic) */
    PM_ECORRUPT = -7,     /* damaged data: bad CRC, bad stream */
    PM_ETRUNCATED = -8,   /* the data ends early */
    PM_EEMPTY = -9,       /* zero bytes */
    PM_EEXTENSION = -10,  /* the file name's extension contradicts its content */
    PM_EUNSUPPORTED = -11,/* valid but not supported by this build / machine */
    PM_ECHECKPOINT = -12, /* checkpoint missing a tensor, wrong shape or dtype */
    PM_ECANCELLED = -13,  /* stopped by a cancel request */
    PM_EBUSY = -14,       /* no capacity now; try again later */
    PM_EMISMATCH = -15,   /* two inputs disagree (mask size vs image size) */
    PM_ENOSOURCE = -16,   /* nothing left to copy from (mask covers everything) */
    PM_ETIMEOUT = -17,    /* took longer than allowed */
    PM_EINTERNAL = -18,   /* a bug: an invariant did not hold */
    PM_EMASKEMPTY = -19,  /* the mask selects nothing (no pixel to fill) */
    PM_EUNAVAIL = -20,    /* a service it depends on (the fleet's Redis) is unreachable */
    PM_ERROR_MIN = -20
};

/* Short, static name of a code ("image too large"). Never NULL. */
const char *pm_strerror(int code);

/* The last failure's full sentence on this thread; "" if none. Points to
 * thread-local storage valid until the next pm_* failure on this thread. */
const char *pm_error_detail(void);

/* Records a detailed message for the current thread and returns `code`, so a
 * failing function can `return pm_errorf(PM_ETOOBIG, "image is %dx%d ...")`. */
int pm_errorf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears this thread's detail message. */
void pm_error_clear(void);

/* --------------------------------------------------------------- logging */

enum pm_log_level { PM_LOG_DEBUG = 0, PM_LOG_INFO, PM_LOG_WARN, PM_LOG_ERROR, PM_LOG_OFF };
enum pm_log_format { PM_LOG_TEXT = 0, PM_LOG_JSON };

/* Configures the process-wide logger. `path` NULL logs to stderr; otherwise
 * the file is opened for append and reopened after SIGHUP (for logrotate).
 * Returns 0 or PM_EIO if the file cannot be opened. */
int pm_log_setup(enum pm_log_level level, enum pm_log_format format, const char *path);

/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int pm_log_level_parse(const char *s);

/* Installs a SIGHUP handler that makes the logger reopen its file. */
void pm_log_install_sighup(void);

/* Closes the log file (if any) and returns to stderr. */
void pm_log_shutdown(void);

/* One log line. `event` is a short machine-readable name ("intake_paused");
 * `kv` is an optional list of key/value pairs as alternating const char*,
 * terminated by NULL, emitted as JSON fields or as key=value in text. */
void pm_log(enum pm_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pm_logkv(enum pm_log_level level, const char *event, const char *msg, ...);

#define pm_debug(ev, ...) pm_log(PM_LOG_DEBUG, ev, __VA_ARGS__)
#define pm_info(ev, ...) pm_log(PM_LOG_INFO, ev, __VA_ARGS__)
#define pm_warn(ev, ...) pm_log(PM_LOG_WARN, ev, __VA_ARGS__)
#define pm_error(ev, ...) pm_log(PM_LOG_ERROR, ev, __VA_ARGS__)

/* ------------------------------------------------------ counting allocator */

/* Allocations that count towards pm_mem_in_use(); free with pm_free().
 * These are what the resource monitor reports as "pixmend heap". */
void *pm_malloc(size_t n);
void *pm_calloc(size_t count, size_t size);
void *pm_realloc(void *p, size_t n);
void pm_free(void *p);
/* strdup through the counting allocator; free with pm_free(). */
char *pm_strdup(const char *s);

/* 64-byte aligned allocation (for SIMD and oneDNN buffers); free with pm_free_aligned(). */
void *pm_malloc_aligned(size_t n);
void pm_free_aligned(void *p);

size_t pm_mem_in_use(void);   /* bytes currently allocated through pm_* */
size_t pm_mem_peak(void);     /* high-water mark since start or last reset */
void pm_mem_reset_peak(void); /* sets the peak to the current use */
/* For long-running processes (serve, worker): blocks of 128 KiB and more are
 * mapped on their own and given back to the system when freed, so that a
 * finished job's image buffers leave the RSS instead of staying in glibc's
 * arenas (whose dynamic threshold otherwise grows to 32 MiB). */
void pm_mem_return_large_blocks(void);

/* Per-thread accounting: between begin and end, the pm_* allocations made by
 * the calling thread are also counted in *s (and their frees on the same
 * thread while the scope is open). s->peak is then the most this thread held
 * at once, above what it held before begin. The scope belongs to the caller
 * and must stay valid until pm_mem_scope_end on the same thread. Allocations
 * made by other threads (e.g. an engine's helper threads) are not counted. */
typedef struct pm_mem_scope {
    unsigned long long id;
    size_t in_use, peak;
} pm_mem_scope;
void pm_mem_scope_begin(pm_mem_scope *s);
void pm_mem_scope_end(pm_mem_scope *s);

/* ------------------------------------------------------------------ images */

/* An 8-bit image, rows packed (stride == width * channels).
 * channels: 1 = gray, 3 = RGB, 4 = RGBA. */
typedef struct pm_image {
    int width;
    int height;
    int channels;
    uint8_t *data; /* owned by the image; freed by pm_image_free() */
} pm_image;

/* Allocates a zero-filled image; caller owns *out (pm_image_free).
 * Fails with PM_EINVAL on bad sizes, PM_ENOMEM. */
int pm_image_alloc(pm_image *out, int width, int height, int channels);
/* Frees the pixels and zeroes the struct; safe on a zeroed struct. */
void pm_image_free(pm_image *img);
/* Deep copy; caller owns *dst. */
int pm_image_clone(pm_image *dst, const pm_image *src);
/* A copy with `channels` channels (gray<->RGB<->RGBA); alpha added as 255,
 * dropped when going to 1 or 3; RGB->gray uses BT.601 luma. Caller owns *dst. */
int pm_image_convert(pm_image *dst, const pm_image *src, int channels);

enum pm_format { PM_FMT_UNKNOWN = 0, PM_FMT_PNG, PM_FMT_JPEG, PM_FMT_WEBP };

/* Limits checked from the file's header before any pixel buffer exists.
 * A zero field means the default, never "unlimited"; hard caps of 1,000,000 px
 * a side and 2^30 pixels apply always. */
typedef struct pm_limits {
    uint64_t max_pixels;     /* default 16 000 000 (16 MP) */
    uint32_t max_side;       /* default 8192 */
    uint64_t max_file_bytes; /* default 64 MiB */
} pm_limits;

/* Returns the default limits. */
pm_limits pm_default_limits(void);

/* Image format named by the bytes' magic, or PM_FMT_UNKNOWN. */
enum pm_format pm_format_sniff(const uint8_t *data, size_t len);
/* Format named by a file name's extension (.png .jpg .jpeg .webp), or UNKNOWN. */
enum pm_format pm_format_from_name(const char *path);
/* "PNG", "JPEG", "WebP", "unknown": the name in sentences. */
const char *pm_format_name(enum pm_format f);
/* The formats in one table (format.c): the i-th format (0, 1, ...), and
 * PM_FMT_UNKNOWN past the last. */
enum pm_format pm_format_at(int i);
/* "png", "jpeg", "webp" (the `format` the API, the CLI and the job JSON
 * use), or NULL for PM_FMT_UNKNOWN. */
const char *pm_format_id(enum pm_format f);
/* A format's id or file extension ("jpg"), any case -> the format; UNKNOWN otherwise. */
enum pm_format pm_format_parse(const char *s);
/* The extension results are written with, without the dot ("png", "jpg",
 * "webp"), and the media type ("image/png", ...); PNG's for UNKNOWN. */
const char *pm_format_ext(enum pm_format f);
const char *pm_format_mime(enum pm_format f);

/* Header facts, read without decoding pixels. */
typedef struct pm_image_info {
    enum pm_format format;
    int width, height;   /* as displayed (after EXIF rotation for JPEG) */
    int channels;        /* what pm_image_decode will produce: 1, 3 or 4 */
    int orientation;     /* EXIF orientation 1..8 (1 when absent) */
} pm_image_info;

/* Reads the header of an encoded image and checks it against `lim` (NULL =
 * defaults). Errors: PM_EEMPTY, PM_EFORMAT, PM_ETRUNCATED, PM_ECORRUPT, PM_ETOOBIG. */
int pm_image_probe(const uint8_t *data, size_t len, const pm_limits *lim, pm_image_info *info);
/* pm_image_probe that also checks the file name `name` (may be NULL) as
 * pm_image_decode does: PM_EEXTENSION when its extension names another format.
 * Everything pm_image_decode refuses from the header, this refuses with the
 * same code and sentence; damage inside the pixel data shows only in a decode. */
int pm_image_probe_named(const uint8_t *data, size_t len, const pm_limits *lim, const char *name,
                         pm_image_info *info);

/* Decodes PNG, JPEG or WebP from memory into *out (caller owns; pm_image_free).
 * PNG 16-bit is reduced to 8; palette expands to RGB(A); gray+alpha becomes RGBA;
 * JPEG CMYK becomes RGB and EXIF orientation is applied. Limits are checked
 * from the header first. `name` (may be NULL) is the file name the bytes came
 * from: if its extension names a different image format than the content,
 * PM_EEXTENSION is returned. On failure *out is left zeroed. */
int pm_image_decode(const uint8_t *data, size_t len, const pm_limits *lim,
                    const char *name, pm_image *out);

/* Reads and decodes a file. The size limit is checked with stat() before reading. */
int pm_image_load(const char *path, const pm_limits *lim, pm_image *out);

#define PM_QUALITY_MIN 1
#define PM_QUALITY_MAX 100
#define PM_QUALITY_DEFAULT 92 /* when neither the job nor a JPEG input gives one */

typedef struct pm_encode_opts {
    enum pm_format format;
    int quality;   /* JPEG and lossy WebP, PM_QUALITY_MIN..MAX; default PM_QUALITY_DEFAULT */
    int lossless;  /* WebP: 1 = lossless */
} pm_encode_opts;

pm_encode_opts pm_default_encode_opts(enum pm_format f);

/* The IJG quality (1..100) whose scaled standard tables are nearest to the
 * quantisation tables of the JPEG in `data` (exact for files libjpeg wrote).
 * Errors: PM_EFORMAT (not a JPEG), PM_ECORRUPT, PM_ETRUNCATED. */
int pm_jpeg_estimate_quality(const uint8_t *data, size_t len, int *quality);

/* Options that encode a result like the input `data`: its format; for JPEG
 * the estimated quality; for WebP lossless when the input is. PM_EFORMAT
 * when `data` is not PNG, JPEG or WebP. */
int pm_encode_opts_like(const uint8_t *data, size_t len, pm_encode_opts *out);

/* Encodes into a new buffer; caller owns *out_data (pm_free). JPEG drops alpha. */
int pm_image_encode(const pm_image *img, const pm_encode_opts *opts,
                    uint8_t **out_data, size_t *out_len);

/* Encodes and writes atomically: a temporary file in the same directory is
 * written, fsync'ed and renamed over `path`. Nothing is left behind on
 * failure. `opts` NULL = format from the extension with default quality.
 * A name with no extension at all is written in opts->format. */
int pm_image_save(const char *path, const pm_image *img, const pm_encode_opts *opts);

/* Writes `len` bytes to `path` atomically (temporary file + fsync + rename). */
int pm_write_file_atomic(const char *path, const void *data, size_t len);

/* Reads a whole file into a new buffer (caller owns; pm_free). Fails with
 * PM_ETOOBIG if it is larger than max_bytes (0 = no limit), PM_ENOENT, PM_EIO. */
int pm_read_file(const char *path, size_t max_bytes, uint8_t **out_data, size_t *out_len);

/* --------------------------------------------------------------- progress */

/* Progress of a long operation: `value` of `max` steps done. Returning non-zero
 * asks the operation to stop; it then fails with PM_ECANCELLED. */
typedef int (*pm_progress_fn)(void *user, int value, int max);

/* ------------------------------------------------------------------ probe */

typedef struct pm_gpu_info {
    char name[96];
    uint64_t mem_total, mem_used;
    unsigned util_percent; /* GPU utilisation, 0..100 */
} pm_gpu_info;

#define PM_MAX_GPUS 16

typedef struct pm_sysinfo {
    char cpu_model[128];
    int has_avx2, has_avx512f, has_avx512_bf16;
    int logical_cores, physical_cores;
    uint64_t mem_total, mem_available;     /* host, bytes */
    int has_cgroup_limit;
    uint64_t cgroup_mem_max, cgroup_mem_current;
    int gpu_count;                         /* 0 = no NVIDIA GPU */
    char nvml_status[128];                 /* why no GPUs, if none */
    pm_gpu_info gpus[PM_MAX_GPUS];
} pm_sysinfo;

/* Fills *out with what this machine has. Never fails for a missing GPU or
 * cgroup: those are reported as absent. Returns 0. */
int pm_sysinfo_read(pm_sysinfo *out);

#ifdef __cplusplus
}
#endif
#endif /* PIXMEND_H */
