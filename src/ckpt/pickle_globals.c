/* The globals a checkpoint pickle may name: the torch rebuild functions,
 * storage types and dtypes the pickle machine understands, and the rules
 * that refuse a pickle naming something no checkpoint needs (a shell, the
 * file system, eval) -- pixmend never calls anything from a pickle, but such
 * a file is hostile and is refused with a message that says so. */
#include "ckpt/ckpt_internal.h"

#include <string.h>

static int eq(const char *a, size_t an, const char *b)
{
    return strlen(b) == an && memcmp(a, b, an) == 0;
}

/* Is module m[0, mn) `pkg` or inside it ("os", "os.path")? */
static int in_pkg(const char *m, size_t mn, const char *pkg)
{
    size_t k = strlen(pkg);
    return mn >= k && memcmp(m, pkg, k) == 0 && (mn == k || m[k] == '.');
}

static const struct { const char *name; int dtype; int size; } storage_types[] = {
    {"FloatStorage", PM_DT_F32, 4}, {"HalfStorage", PM_DT_F16, 2}, {"BFloat16Storage", PM_DT_BF16, 2},
    {"DoubleStorage", PM_DT_F64, 8}, {"LongStorage", PM_DT_I64, 8}, {"IntStorage", PM_DT_I32, 4},
    {"ShortStorage", PM_DT_I16, 2}, {"CharStorage", PM_DT_I8, 1}, {"ByteStorage", PM_DT_U8, 1},
    {"BoolStorage", PM_DT_BOOL, 1}, {"UntypedStorage", PM_DT_U8, 1},
    /* sized (so that a legacy file can be walked past them) but not read */
    {"ComplexFloatStorage", -1, 8}, {"ComplexDoubleStorage", -1, 16}, {"QInt8Storage", -1, 1},
    {"QUInt8Storage", -1, 1}, {"QInt32Storage", -1, 4}, {"ComplexHalfStorage", -1, 4},
};

static const struct { const char *name; int dtype; } torch_dtypes[] = {
    {"float32", PM_DT_F32}, {"float", PM_DT_F32}, {"float16", PM_DT_F16}, {"half", PM_DT_F16},
    {"bfloat16", PM_DT_BF16}, {"float64", PM_DT_F64}, {"double", PM_DT_F64},
    {"int64", PM_DT_I64}, {"long", PM_DT_I64}, {"int32", PM_DT_I32}, {"int", PM_DT_I32},
    {"int16", PM_DT_I16}, {"short", PM_DT_I16}, {"int8", PM_DT_I8}, {"uint8", PM_DT_U8}, {"bool", PM_DT_BOOL},
};

void pm_pickle_classify(pm_pv *g)
{
    const char *m = g->u.glob.mod, *n = g->u.glob.name;
    size_t mn = g->u.glob.mod_n, nn = g->u.glob.name_n;
    g->u.glob.fn = FN_UNKNOWN;
    g->u.glob.dtype = -1;
    g->u.glob.size = 0;
    if ((eq(m, mn, "collections") && eq(n, nn, "OrderedDict")) ||
        ((eq(m, mn, "builtins") || eq(m, mn, "__builtin__")) && eq(n, nn, "dict"))) {
        g->u.glob.fn = FN_ORDERED_DICT;
    } else if (eq(m, mn, "torch._utils")) {
        if (eq(n, nn, "_rebuild_tensor"))
            g->u.glob.fn = FN_REBUILD_TENSOR;
        else if (eq(n, nn, "_rebuild_tensor_v2"))
            g->u.glob.fn = FN_REBUILD_TENSOR_V2;
        else if (eq(n, nn, "_rebuild_tensor_v3"))
            g->u.glob.fn = FN_REBUILD_TENSOR_V3;
        else if (eq(n, nn, "_rebuild_parameter") || eq(n, nn, "_rebuild_parameter_with_state"))
            g->u.glob.fn = FN_REBUILD_PARAMETER;
    } else if (eq(m, mn, "torch._tensor") && eq(n, nn, "_rebuild_from_type_v2")) {
        g->u.glob.fn = FN_REBUILD_FROM_TYPE;
    } else if (eq(m, mn, "torch")) {
        if (nn > 7 && memcmp(n + nn - 7, "Storage", 7) == 0) {
            g->u.glob.fn = FN_STORAGE_TYPE;
            for (size_t i = 0; i < sizeof storage_types / sizeof *storage_types; i++)
                if (eq(n, nn, storage_types[i].name)) {
                    g->u.glob.dtype = storage_types[i].dtype;
                    g->u.glob.size = storage_types[i].size;
                }
        } else {
            for (size_t i = 0; i < sizeof torch_dtypes / sizeof *torch_dtypes; i++)
                if (eq(n, nn, torch_dtypes[i].name)) {
                    g->u.glob.fn = FN_TORCH_DTYPE;
                    g->u.glob.dtype = torch_dtypes[i].dtype;
                }
        }
    }
}

/* Modules whose every name runs code or reaches the system. */
static const char *const denied_modules[] = {
    "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy", "pty", "ctypes",
    "pickle", "_pickle", "marshal", "code", "codeop", "webbrowser", "multiprocessing", "asyncio", "signal",
    "commands", "popen2", "platform", "tempfile", "urllib", "http", "ftplib", "smtplib", "telnetlib",
};

/* Builtins that evaluate code, import, open files or reach attributes. */
static const char *const denied_builtins[] = {
    "eval", "exec", "execfile", "compile", "open", "file", "__import__", "getattr", "setattr", "delattr",
    "globals", "locals", "vars", "input", "raw_input", "breakpoint", "apply", "reload", "exit", "quit", "help",
};

const char *pm_pickle_refused(const pm_pv *g, int strict)
{
    const char *m = g->u.glob.mod, *n = g->u.glob.name;
    size_t mn = g->u.glob.mod_n, nn = g->u.glob.name_n;
    for (size_t i = 0; i < sizeof denied_modules / sizeof *denied_modules; i++)
        if (in_pkg(m, mn, denied_modules[i]))
            return "no checkpoint needs it (it reaches the operating system or runs code)";
    if (eq(m, mn, "builtins") || eq(m, mn, "__builtin__"))
        for (size_t i = 0; i < sizeof denied_builtins / sizeof *denied_builtins; i++)
            if (eq(n, nn, denied_builtins[i]))
                return "no checkpoint needs it (it runs code or reaches attributes and files)";
    if (eq(m, mn, "operator") && (eq(n, nn, "attrgetter") || eq(n, nn, "methodcaller")))
        return "no checkpoint needs it (it reaches attributes and methods)";
    if (!strict)
        return NULL;
    /* A TorchScript module tree names its own classes (__torch__.*), torch's
     * rebuild functions, storage types and dtypes, and plain containers. */
    if (in_pkg(m, mn, "__torch__") || in_pkg(m, mn, "torch") || g->u.glob.fn == FN_ORDERED_DICT)
        return NULL;
    if ((eq(m, mn, "builtins") || eq(m, mn, "__builtin__")) &&
        (eq(n, nn, "set") || eq(n, nn, "list") || eq(n, nn, "tuple") || eq(n, nn, "frozenset")))
        return NULL;
    return "a TorchScript module tree names only __torch__ classes, torch functions and containers";
}
