#!/usr/bin/python3
"""DDColor: pixmend against PyTorch on the same weights, side by side.

  run_bench.py --bin PM_BENCH_DDCOLOR --work DIR [--variants L,T] [--size 512]
               [--threads 2] [--runs 3] [--torch-runs N] [--mem-law] [--quick]
               [--precision fp32|bf16]

For each variant a random checkpoint with the official shapes and key layout
is written once (DDColor-L 912 MiB, DDColor-T 220 MiB; tests/golden_ddcolor/
ddcolor_ref.py, seed fixed) and reused. Then, in separate processes, one after
the other on the same input:
  - pixmend: load, one warm-up run (builds the plan), --runs timed runs;
  - PyTorch 1.13 (/usr/bin/python3): the model built and loaded as DDColor's
    own inference code does (construct, torch.load(...)['params'],
    load_state_dict, eval, no_grad), torch.set_num_threads(--threads), one
    warm-up run, --torch-runs timed runs.
Reported: median run time, peak RSS of each process (its own VmHWM), the ratios
(speed-up = PyTorch median / pixmend median; RSS ratio = pixmend / PyTorch),
the largest |ab| difference between the two, and the load average (uptime)
next to each figure: the machine is shared.

--mem-law: peak working memory of pm_colorize_run (RSS high-water mark minus
RSS before the run, the weights already resident) for several image sizes at
input size 512, a least-squares
fit a + b * pixels, and pixmend's own estimate for the same sizes.
--precision bf16: pixmend in bf16 (the PyTorch side stays fp32; the
max |ab| difference then shows bf16's rounding, not an error).
--quick: a reduced configuration at 64 x 64, one run each (a smoke test for
CTest; its timings mean nothing).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REF_DIR = os.path.join(HERE, "..", "..", "tests", "golden_ddcolor")


def load_avg():
    with open("/proc/loadavg") as f:
        return "load %s" % " ".join(f.read().split()[:3])


def hwm_bytes():
    """This process's peak RSS (VmHWM; unlike wait4's ru_maxrss it does not count
    what a child shared with its parent before exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def run_measured(args):
    """Runs a process; returns (returncode, stdout, stderr)."""
    import tempfile
    with tempfile.TemporaryFile("w+") as errf:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=errf, text=True)
        errf.seek(0)
        err = errf.read()
    return p.returncode, p.stdout, err


def parse_kv(text):
    kv = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            kv.setdefault(parts[0], []).append(float(parts[1]))
    return kv


def make_checkpoint(cfg_name, path, seed):
    sys.path.insert(0, REF_DIR)
    import torch
    import ddcolor_ref as ref
    torch.set_num_threads(2)
    cfg = {"L": ref.CONFIG_L, "T": ref.CONFIG_T, "quick": QUICK_CFG}[cfg_name]
    m = ref.random_model(cfg, seed=seed)
    tmp = path + ".tmp"
    ref.save_checkpoints(m, tmp)
    os.replace(tmp, path)


QUICK_CFG = dict(depths=(1, 1, 2, 1), dims=(16, 24, 32, 48), nf=32, hidden=64, queries=6, scales=3, layers=3,
                 ffn=96, heads=8)


def make_input(path, size):
    import numpy as np
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    g = 0.5 + 0.3 * np.sin(xx * 0.05) * np.cos(yy * 0.07) + rng.normal(0, 0.02, (size, size))
    x = np.stack([g, g, g], 0).clip(0, 1).astype(np.float32)
    x.tofile(path)


def torch_worker(a):
    """Runs in its own process: the PyTorch side of one measurement."""
    import numpy as np
    import torch
    sys.path.insert(0, REF_DIR)
    import ddcolor_ref as ref
    torch.set_num_threads(a.threads)
    cfg = {"L": ref.CONFIG_L, "T": ref.CONFIG_T, "quick": QUICK_CFG}[a.variant]
    t = time.time()
    model = ref.DDColor(cfg)
    model.load_state_dict(torch.load(a.ckpt, map_location="cpu")["params"], strict=False)
    model.eval()
    print("load_s %.4f" % (time.time() - t), flush=True)
    x = torch.from_numpy(np.fromfile(a.input, np.float32).reshape(1, 3, a.size, a.size))
    with torch.no_grad():
        for r in range(a.runs + 1):
            t = time.time()
            y = model(x)
            print("%s %.4f" % ("warmup_s" if r == 0 else "run_s", time.time() - t), flush=True)
    y[0].numpy().astype(np.float32).tofile(a.out)
    print("rss_hwm_bytes %d" % hwm_bytes())


def bench_variant(a, variant, size):
    import numpy as np
    ckpt = os.path.join(a.work, "ddcolor_%s_random.pth" % variant)
    if not os.path.exists(ckpt):
        print("writing a random %s checkpoint to %s ..." % (variant, ckpt), flush=True)
        make_checkpoint(variant, ckpt, seed={"L": 21, "T": 22, "quick": 23}[variant])
    inp = os.path.join(a.work, "input_%d.f32" % size)
    if not os.path.exists(inp):
        make_input(inp, size)
    out_pm, out_pt = os.path.join(a.work, "ab_pm_%s.f32" % variant), os.path.join(a.work, "ab_pt_%s.f32" % variant)

    load_pm = load_avg()
    rc, out, err = run_measured([a.bin, "ab", ckpt, inp, str(size), str(a.threads), str(a.runs), out_pm])
    if rc:
        sys.exit("pixmend failed: " + err)
    kv_pm = parse_kv(out)
    rss_pm = kv_pm["rss_hwm_bytes"][0]
    load_pm += " -> " + load_avg()
    print("  pixmend %s: warm-up %.2f s, runs %s s, peak RSS %.0f MiB, workspace %.0f MiB (%s)" % (
        variant, kv_pm["warmup_s"][0], " ".join("%.2f" % v for v in kv_pm["run_s"]), rss_pm / 2**20,
        kv_pm["workspace_bytes"][0] / 2**20, load_pm), flush=True)

    load_pt = load_avg()
    rc, out, err = run_measured([sys.executable, os.path.abspath(__file__), "--torch-worker", "--variant",
                                         variant, "--ckpt", ckpt, "--input", inp, "--size", str(size),
                                         "--threads", str(a.threads), "--runs", str(a.torch_runs), "--out", out_pt])
    if rc:
        sys.exit("PyTorch failed: " + err)
    kv_pt = parse_kv(out)
    rss_pt = kv_pt["rss_hwm_bytes"][0]
    load_pt += " -> " + load_avg()
    print("  PyTorch %s: warm-up %.2f s, runs %s s, peak RSS %.0f MiB (%s)" % (
        variant, kv_pt["warmup_s"][0], " ".join("%.2f" % v for v in kv_pt["run_s"]), rss_pt / 2**20, load_pt),
        flush=True)

    ab_pm = np.fromfile(out_pm, np.float32)
    ab_pt = np.fromfile(out_pt, np.float32)
    med_pm, med_pt = statistics.median(kv_pm["run_s"]), statistics.median(kv_pt["run_s"])
    return dict(variant=variant, pm=med_pm, pt=med_pt, rss_pm=rss_pm, rss_pt=rss_pt,
                diff=float(np.abs(ab_pm - ab_pt).max()), load_pm=load_pm, load_pt=load_pt)


def mem_law(a):
    import numpy as np
    ckpt = os.path.join(a.work, "ddcolor_%s_random.pth" % ("quick" if a.quick else "L"))
    sizes = [(64, 48), (256, 256)] if a.quick else [(512, 512), (1024, 768), (2048, 1536), (4000, 3000)]
    S = 64 if a.quick else 512
    px, used, est = [], [], []
    print("mem law (input size %d), %s:" % (S, os.path.basename(ckpt)))
    for w, h in sizes:
        rc, out, err = run_measured([a.bin, "pipe", ckpt, str(w), str(h), str(S), str(a.threads)])
        if rc:
            sys.exit("pixmend pipe failed: " + err)
        kv = parse_kv(out)
        u = kv["rss_hwm_bytes"][0] - kv["rss_before_bytes"][0]
        px.append(w * h)
        used.append(u)
        est.append(kv["mem_estimate_bytes"][0])
        print("  %5dx%-5d %6.1f MP: run peak %7.1f MiB over the warm model, heap %7.1f MiB, estimate %7.1f MiB, "
              "%.2f s (%s)" % (w, h, w * h / 1e6, u / 2**20, kv["heap_run_peak_bytes"][0] / 2**20, est[-1] / 2**20,
                              kv["pipe_s"][0], load_avg()), flush=True)
    b, a0 = np.polyfit(np.array(px, float), np.array(used, float), 1)
    print("  fit: %.1f MiB + %.2f bytes/pixel; estimate >= measured everywhere: %s" % (
        a0 / 2**20, b, all(e >= u for e, u in zip(est, used))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--work", default="/tmp/pm_bench_ddcolor")
    ap.add_argument("--variants", default="L,T")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--torch-runs", type=int, default=None)
    ap.add_argument("--mem-law", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    # internal: the PyTorch process
    ap.add_argument("--torch-worker", action="store_true")
    ap.add_argument("--variant")
    ap.add_argument("--ckpt")
    ap.add_argument("--input")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.torch_worker:
        torch_worker(a)
        return
    os.environ["PM_BENCH_PRECISION"] = a.precision
    if not a.bin:
        sys.exit("--bin PM_BENCH_DDCOLOR is required")
    os.makedirs(a.work, exist_ok=True)
    if a.quick:
        a.variants, a.size, a.runs, a.torch_runs = "quick", 64, 1, 1
    if a.torch_runs is None:
        a.torch_runs = a.runs
    print("DDColor at %dx%d, %d threads each, pixmend (%s) %d runs, PyTorch %d runs (after one warm-up each)" % (
        a.size, a.size, a.threads, a.precision, a.runs, a.torch_runs), flush=True)
    results = []
    for v in filter(None, a.variants.split(",")):
        results.append(bench_variant(a, v, a.size))
    print()
    if results:
        print("%-8s %12s %12s %9s %12s %12s %9s %10s" % ("variant", "pixmend s", "PyTorch s", "speed-up", "pixmend RSS",
                                                       "PyTorch RSS", "RSS ratio", "max |dab|"))
    for r in results:
        print("%-8s %12.2f %12.2f %8.1fx %8.0f MiB %8.0f MiB %9.2f %10.2e" % (
            r["variant"], r["pm"], r["pt"], r["pt"] / r["pm"], r["rss_pm"] / 2**20, r["rss_pt"] / 2**20,
            r["rss_pm"] / r["rss_pt"], r["diff"]))
        print("         loads: pixmend %s; PyTorch %s" % (r["load_pm"], r["load_pt"]))
    if a.mem_law:
        print()
        mem_law(a)
    if a.quick and any(r["diff"] > 1e-3 for r in results):
        sys.exit("pixmend and PyTorch disagree")


if __name__ == "__main__":
    main()
