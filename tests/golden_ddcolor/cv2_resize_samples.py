#!/usr/bin/python3
"""Writes float images and cv2.resize (INTER_LINEAR) of them, for
tests/unit/test_colorize.c. Usage: cv2_resize_samples.py OUT.bin

Layout (little-endian int32 / float32): count, then per case
sw, sh, ch, dw, dh, src (sh*sw*ch floats), dst (dh*dw*ch floats)."""
import struct
import sys

import cv2
import numpy as np

CASES = [(37, 23, 3, 64, 64), (101, 67, 3, 64, 64), (150, 97, 3, 96, 96), (64, 64, 3, 64, 64),
         (128, 128, 3, 64, 64), (31, 29, 1, 64, 64), (1000, 9, 3, 32, 32), (5, 700, 3, 32, 32), (1, 1, 3, 32, 32)]


def main():
    rng = np.random.default_rng(5)
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<i", len(CASES)))
        for sw, sh, ch, dw, dh in CASES:
            src = (rng.integers(0, 256, (sh, sw, ch)) / 255.0).astype(np.float32)
            dst = cv2.resize(src, (dw, dh)).reshape(dh, dw, ch).astype(np.float32)
            f.write(struct.pack("<5i", sw, sh, ch, dw, dh))
            f.write(src.astype("<f4").tobytes())
            f.write(dst.astype("<f4").tobytes())


if __name__ == "__main__":
    main()
