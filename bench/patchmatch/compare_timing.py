#!/usr/bin/python3
"""Timing of two builds of the PatchMatch inpainter side by side: runs A and
B in turn on the bench's timing inputs (motorcycle_left at 1280x960 with a
10 % blob hole through pm_bench_patchmatch, and at 2560x1920 with an 8 % hole
through `pixmend inpaint --hd-strategy crop`), so that both see the same
machine load, and prints the medians and the ratios B / A of wall and CPU
time. Use it to compare a change with the engine before it on a shared
machine, where absolute times drift with the load.

Usage:
  /usr/bin/python3 bench/patchmatch/compare_timing.py --bin-a OLD/pm_bench_patchmatch --cli-a OLD/pixmend \\
      --bin-b build/bench/patchmatch/pm_bench_patchmatch --cli-b build/pixmend [--rounds 5] [--threads 2]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench as rb  # noqa: E402


def inputs(work):
    """The timing inputs of run_bench.py, written to `work`."""
    big = rb.load_png("motorcycle_left.png")
    h0, w0 = big.shape[:2]
    cw = min(w0, h0 * 4 // 3)
    ch = cw * 3 // 4
    x0, y0 = (w0 - cw) // 2, (h0 - ch) // 2
    big = cv2.resize(np.ascontiguousarray(big[y0:y0 + ch, x0:x0 + cw]), (1280, 960), interpolation=cv2.INTER_CUBIC)
    m = rb.make_mask("blobs", 0.10, 960, 1280, 424242)
    holed = big.copy()
    holed[m > 0] = 0
    rb.write_pnm(os.path.join(work, "t1280.ppm"), holed)
    rb.write_pnm(os.path.join(work, "t1280.pgm"), m)
    hd = cv2.resize(big, (2560, 1920), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(os.path.join(work, "hd.png"), cv2.cvtColor(hd, cv2.COLOR_RGB2BGR))
    cv2.imwrite(os.path.join(work, "hd_mask.png"), rb.make_mask("blobs", 0.08, 1920, 2560, 8080))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for k in ("a", "b"):
        ap.add_argument("--bin-" + k, required=True, help="pm_bench_patchmatch of build " + k.upper())
        ap.add_argument("--cli-" + k, required=True, help="pixmend of build " + k.upper())
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/pm_compare_timing")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    inputs(args.work)
    w, t = args.work, str(args.threads)
    res = {k: {"wall_1280": [], "cpu_1280": [], "wall_hd": [], "cpu_hd": []} for k in "ab"}
    load0 = os.getloadavg()
    for _ in range(args.rounds):
        for k in "ab":
            for case, cmd in (("1280", [getattr(args, "bin_" + k), w + "/t1280.ppm", w + "/t1280.pgm",
                                        w + "/out.ppm", "--threads", t]),
                              ("hd", [getattr(args, "cli_" + k), "inpaint", w + "/hd.png", w + "/hd_mask.png", "-o",
                                      w + "/out.png", "--hd-strategy", "crop", "-t", t, "--quiet"])):
                c0, t0 = os.times(), time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                c1 = os.times()
                res[k]["wall_" + case].append(time.perf_counter() - t0)
                res[k]["cpu_" + case].append(c1.children_user - c0.children_user +
                                             c1.children_system - c0.children_system)
    print("load average before %.2f %.2f %.2f, after %.2f %.2f %.2f" % (*load0, *os.getloadavg()))
    for key in ("wall_1280", "cpu_1280", "wall_hd", "cpu_hd"):
        a, b = statistics.median(res["a"][key]), statistics.median(res["b"][key])
        print("%-9s A %.2f s  B %.2f s  B / A %.3f" % (key, a, b, b / a))


if __name__ == "__main__":
    main()
