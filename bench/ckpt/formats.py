#!/usr/bin/python3
"""LaMa load time by file format, side by side in one run: the big-lama
shape (ngf 64, 18 blocks, random weights) saved as the official Lightning
best.ckpt, as IOPaint's big-lama.pt (torch.jit.trace of forward(image, mask))
and with the legacy serialization; each loaded by `golden_lama load` (open,
check every tensor, convert to pixmend's layouts), best of 3, interleaved.

    /usr/bin/python3 bench/ckpt/formats.py build/tests/golden/golden_lama /tmp/fmt
"""
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden"))
import lama_ref  # noqa: E402
import lama_script  # noqa: E402


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    model = lama_ref.make_model(64, 18, 0)
    files = {"best.ckpt": os.path.join(work, "best.ckpt"), "big-lama.pt": os.path.join(work, "big-lama.pt"),
             "legacy.ckpt": os.path.join(work, "legacy.ckpt")}
    lama_ref.save_checkpoint(model, files["best.ckpt"])
    lama_script.save_traced(model, files["big-lama.pt"], size=64)
    torch.save(torch.load(files["best.ckpt"]), files["legacy.ckpt"], _use_new_zipfile_serialization=False)
    best = {k: 1e9 for k in files}
    for _ in range(3):
        for k, f in files.items():
            t = time.perf_counter()
            subprocess.run([binary, "load", f], check=True, capture_output=True)
            best[k] = min(best[k], time.perf_counter() - t)
    base = best["best.ckpt"]
    for k, f in files.items():
        print("%-12s %7.1f MB  load %.3f s  ratio to best.ckpt %.2f" % (k, os.path.getsize(f) / 1e6, best[k], best[k] / base))


main()
