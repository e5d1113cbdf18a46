#!/usr/bin/python3
"""Writes a small random DDColor checkpoint (official key layout) for
tests/unit/test_colorize.c. Usage: make_test_ckpt.py OUT.pth"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddcolor_ref as ref  # noqa: E402

CFG = dict(depths=(1, 1, 1, 1), dims=(8, 16, 16, 24), nf=16, hidden=32, queries=4, scales=3, layers=3, ffn=32,
           heads=8)

if __name__ == "__main__":
    torch.set_num_threads(1)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    m = ref.random_model(CFG, seed=9, calibrate_input=x)
    ref.save_checkpoints(m, sys.argv[1])
