#!/usr/bin/python3
"""Builds docs/gallery/*.png: side-by-side crops of a few benchmark cases
(original, input with the hole in black, pixmend, Navier-Stokes, shift-map),
using the same images, masks and methods as run_bench.py.

Usage:
  /usr/bin/python3 bench/patchmatch/make_gallery.py --bin build/bench/patchmatch/pm_bench_patchmatch \\
      [--out docs/gallery] [--work /tmp/pm_bench_patchmatch] [--crop 128]
Each row is one PNG with an adaptive 256-colour palette (to keep the
repository small); the figures in docs/benchmarks.md come from run_bench.py,
not from these files.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench as rb  # noqa: E402

# (image, mask name as in run_bench's table)
CASES = [("grass", "boxes6"), ("gravel", "blobs10"), ("brick-box", "edge"), ("horizon-box", "edge"),
         ("wall-box", "edge"), ("camera-tripod", "structure"), ("rocket-pole", "structure"),
         ("brick-mortar", "structure"), ("fence", "structure"), ("diagonal", "structure"), ("chelsea", "boxes6"),
         ("coffee", "strokes4"), ("astronaut", "boxes6"), ("motorcycle", "boxes6")]


def crop_box(m, size):
    ys, xs = np.nonzero(m)
    # The crop is centred on the largest connected part's centre of mass.
    from scipy import ndimage
    lab, n = ndimage.label(m > 0)
    if n > 1:
        sizes = ndimage.sum(np.ones_like(lab), lab, range(1, n + 1))
        k = 1 + int(np.argmax(sizes))
        ys, xs = np.nonzero(lab == k)
    cy, cx = int(ys.mean()), int(xs.mean())
    h, w = m.shape
    y0 = int(np.clip(cy - size // 2, 0, h - size))
    x0 = int(np.clip(cx - size // 2, 0, w - size))
    return slice(y0, y0 + size), slice(x0, x0 + size)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", default="docs/gallery")
    ap.add_argument("--work", default="/tmp/pm_bench_patchmatch")
    ap.add_argument("--crop", type=int, default=128)
    args = ap.parse_args()
    cache = os.path.join(args.work, "cache")
    os.makedirs(cache, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    cases = {(c[0], c[1]): c for c in rb.build_cases(False)}
    for name, mname in CASES:
        rgb, m = cases[(name, mname)][2:4]
        holed = rgb.copy()
        holed[m > 0] = 0
        base = os.path.join(args.work, "gallery_%s_%s" % (name, mname))
        rb.write_pnm(base + "_in.ppm", holed)
        rb.write_pnm(base + ".pgm", m)
        rb.run_pixmend(args.bin, base + "_in.ppm", base + ".pgm", base + "_pm.ppm", ["--threads", "2"])
        pm = rb.read_ppm(base + "_pm.ppm")
        ns = rb.composite(holed, rb.run_cv("ns", holed, m, cache)[0], m)
        sm = rb.composite(holed, rb.run_cv("shiftmap", holed, m, cache)[0], m)
        sy, sx = crop_box(m, min(args.crop, *m.shape))
        tiles = [rgb, holed, pm, ns, sm]
        gap = np.full((sy.stop - sy.start, 2, 3), 255, np.uint8)
        row = []
        for t in tiles:
            row += [t[sy, sx], gap]
        img = Image.fromarray(np.hstack(row[:-1]))
        path = os.path.join(args.out, "%s-%s.png" % (name, mname))
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
        print("%s  %d bytes" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
