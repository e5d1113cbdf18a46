"""LaMa benchmark: pixmend (fp32 and bf16) against PyTorch, same weights
(a random big-lama checkpoint, ngf 64, 18 blocks), same thread count, side by
side in one run. Each engine runs in its own process and reports its peak
RSS (VmHWM) twice: while loading the checkpoint, and during the forward
passes alone (VmHWM reset after loading); the process peak is the larger.
(wait4()'s ru_maxrss is not used: it counts the forked Python parent.)

    /usr/bin/python3 bench/lama/bench_lama.py --bin build/bench/lama/bench_lama \
        [--sizes 512 1024] [--threads 2] [--runs 3] [--work DIR]

Prints one table per size with time and memory ratios, and the load average
before and after each measurement (the machine may be shared).
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "..", "tests", "golden")

TORCH_SIDE = r'''
import os, sys, time, statistics, torch
sys.path.insert(0, sys.argv[1])
import lama_ref
ckpt, size, threads, runs, warm = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
t0 = time.time()
m = lama_ref.load_checkpoint(ckpt)
load_s = time.time() - t0
def hwm():
    for l in open("/proc/self/status"):
        if l.startswith("VmHWM:"):
            return float(l.split()[1]) / 1024
load_peak = hwm()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
g = torch.Generator().manual_seed(0)
x = torch.rand(1, 4, size, size, generator=g)
x[:, 3] = (x[:, 3] > 0.5).float()
ts = []
with torch.no_grad():
    for i in range(warm + runs):
        t = time.time()
        m(x)
        if i >= warm:
            ts.append(time.time() - t)
print("median_s=%.4f min_s=%.4f max_s=%.4f load_s=%.3f load_peak_mb=%.1f run_peak_mb=%.1f"
      % (statistics.median(ts), min(ts), max(ts), load_s, load_peak, hwm()))
'''


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run_measured(cmd):
    """Runs one engine; returns its key=value figures and the load average
    before and after."""
    before = loadavg()
    r = subprocess.run(cmd, capture_output=True, text=True)
    after = loadavg()
    if r.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(cmd), r.returncode, r.stderr))
    line = r.stdout.strip().splitlines()[-1]
    kv = {k: float(v) for k, v in (item.split("=") for item in line.split())}
    kv["peak_mb"] = max(kv["load_peak_mb"], kv["run_peak_mb"])
    return kv, before, after


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-side":
        # Used by `pixmend bench lama --torch`: CKPT SIZE THREADS RUNS WARM; prints one key=value line.
        sys.argv = ["-c", GOLDEN] + sys.argv[2:]
        exec(compile(TORCH_SIDE, "torch_side", "exec"), {"__name__": "torch_side"})
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="build/bench/lama/bench_lama")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="timed forward passes per engine (after one warm-up)")
    ap.add_argument("--torch-runs-1024", type=int, default=1,
                    help="timed PyTorch passes at sizes >= 1024 (no warm-up): it is slow")
    ap.add_argument("--work", default=os.path.join(os.getcwd(), "bench-lama-work"))
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    ckpt = os.path.join(args.work, "big-lama-random.ckpt")
    if not os.path.exists(ckpt):
        sys.path.insert(0, GOLDEN)
        import lama_ref
        print("writing a random big-lama checkpoint (ngf 64, 18 blocks) to", ckpt, flush=True)
        lama_ref.save_checkpoint(lama_ref.make_model(64, 18, 0), ckpt, 0)
    print("threads %d, torch threads set to the same; cpu: %s" % (args.threads, cpu_name()), flush=True)
    for size in args.sizes:
        rows = []
        for name, extra in (("pixmend fp32", []), ("pixmend bf16", ["--bf16"])):
            kv, b, a = run_measured([args.bin, ckpt, "--size", str(size), "--runs", str(args.runs),
                                     "--threads", str(args.threads)] + extra)
            rows.append((name, kv, b, a))
            report_row(size, name, kv, b, a)
        if not args.skip_torch:
            big = size >= 1024
            runs, warm = (args.torch_runs_1024, 0) if big else (args.runs, 1)
            kv, b, a = run_measured(["/usr/bin/python3", "-c", TORCH_SIDE, GOLDEN, ckpt, str(size),
                                     str(args.threads), str(runs), str(warm)])
            rows.append(("pytorch fp32", kv, b, a))
            report_row(size, "pytorch fp32", kv, b, a)
            t = kv
            for name, kv, _, _ in rows[:-1]:
                print("  %dx%d %s vs PyTorch: %.2fx faster (median), peak RSS %.2fx (with loading), "
                      "%.2fx (forward passes only)"
                      % (size, size, name, t["median_s"] / kv["median_s"], kv["peak_mb"] / t["peak_mb"],
                         kv["run_peak_mb"] / t["run_peak_mb"]), flush=True)


def report_row(size, name, kv, before, after):
    print("%dx%d %-13s median %7.3f s (min %.3f, max %.3f)  peak RSS %7.1f MB (loading %.1f, forward %.1f)  "
          "load avg %.2f -> %.2f"
          % (size, size, name, kv["median_s"], kv["min_s"], kv["max_s"], kv["peak_mb"], kv["load_peak_mb"],
             kv["run_peak_mb"], before, after), flush=True)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    main()
