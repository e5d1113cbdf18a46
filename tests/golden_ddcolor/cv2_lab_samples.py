#!/usr/bin/python3
"""Writes colour samples and what OpenCV (cv2, float32 path) makes of them, for
tests/unit/test_lab.c. Usage: cv2_lab_samples.py OUT.bin

Layout (little-endian): int32 count, then per section a record block.
  section A "rgb2lab": n, then n x (r, g, b, L, a, bb) float32
      - all 33^3 grid points of OpenCV's table (their L/a/b are table entries)
      - every 8-bit grey u/255 (as the DDColor pipeline makes it: float64 / 255 -> float32)
      - random 8-bit colours, random floats in [-0.1, 1.1], and values near the
        1/16384 rounding steps
  section B "lab2rgb": n, then n x (L, a, b, r, g, bl, r8, g8, b8) float32
      - random L in [0,100], a and b in [-110, 110] (the 8-bit values r8.. are
        round-half-even(x * 255) as the DDColor pipeline takes them)
"""
import struct
import sys

import cv2
import numpy as np


def rgb2lab(rgb):
    bgr = np.ascontiguousarray(rgb[:, ::-1]).reshape(1, -1, 3).astype(np.float32)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab).reshape(-1, 3)


def lab2rgb(lab):
    bgr = cv2.cvtColor(lab.reshape(1, -1, 3).astype(np.float32), cv2.COLOR_Lab2BGR).reshape(-1, 3)
    return np.ascontiguousarray(bgr[:, ::-1])


def main():
    rng = np.random.default_rng(20241)
    g = np.arange(33, dtype=np.float32) / np.float32(32)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    grey = (np.arange(256)[:, None].repeat(3, 1) / 255.0).astype(np.float32)
    col8 = (rng.integers(0, 256, (20000, 3)) / 255.0).astype(np.float32)
    anyf = rng.uniform(-0.1, 1.1, (20000, 3)).astype(np.float32)
    steps = ((rng.integers(0, 16385, (5000, 3)) + rng.choice([-0.5, 0.5, 0.49, 0.51], (5000, 3)))
             / 16384.0).astype(np.float32)
    rgb = np.concatenate([grid, grey, col8, anyf, steps]).astype(np.float32)
    lab = rgb2lab(rgb)
    a = np.concatenate([rgb, lab], 1).astype(np.float32)

    n = 30000
    labs = np.stack([rng.uniform(0, 100, n), rng.uniform(-110, 110, n), rng.uniform(-110, 110, n)], 1).astype(np.float32)
    labs[:256, 0] = np.linspace(0, 100, 256)  # the L-only axis, a = b = 0 (the model input)
    labs[:256, 1:] = 0
    out = lab2rgb(labs)
    out8 = np.round(out * np.float32(255.0)).astype(np.uint8).astype(np.float32)
    b = np.concatenate([labs, out, out8], 1).astype(np.float32)

    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<i", 2))
        f.write(struct.pack("<i", a.shape[0]))
        f.write(a.astype("<f4").tobytes())
        f.write(struct.pack("<i", b.shape[0]))
        f.write(b.astype("<f4").tobytes())


if __name__ == "__main__":
    main()
