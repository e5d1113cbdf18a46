#!/usr/bin/python3
"""Golden tests of pixmend's DDColor against the PyTorch reference in
ddcolor_ref.py and DDColor's reference pipeline (cv2 for Lab and resizing).

  golden_ddcolor.py --driver PATH --work DIR --part model|pipeline|errors|tiny

model:    fp32 ab of the network, max |diff| <= 1e-3, for reduced random
          configurations in the official key layout, from .pth ({'params': ...})
          and from a bare state dict (.bin); two input sizes.
pipeline: the whole 8-bit pipeline on odd-sized grey, colour and RGBA images
          (shrinking and enlarging), nearest and bilinear upsampling: every
          value within 1 LSB of the reference, alpha unchanged.
errors:   a missing tensor, a misshapen tensor and a foreign checkpoint are
          refused with a message naming the tensor; cancelling via the
          progress callback stops the run and leaves the model usable.
tiny:     the DDColor-T configuration at full width (random weights), at a
          small input size.
bf16:     the whole pipeline in bf16 against fp32 on the same checkpoints
          (a reduced configuration and DDColor-T): PSNR >= 40 dB; exits 77
          (skipped) on a CPU without native bf16.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddcolor_ref as ref  # noqa: E402

torch.set_num_threads(2)

# Small configurations, official layout. A: three scales, three layers (one per
# level); B: two scales, four layers (levels wrap), other widths.
CFG_A = dict(depths=(1, 1, 2, 1), dims=(16, 24, 32, 48), nf=32, hidden=64, queries=6, scales=3, layers=3,
             ffn=96, heads=8)
CFG_B = dict(depths=(2, 1, 1, 1), dims=(8, 16, 24, 40), nf=24, hidden=32, queries=5, scales=2, layers=4,
             ffn=40, heads=8)

FAILS = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        FAILS.append(msg)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def smooth_image(h, w, c, seed):
    """Structured test content: gradients, disks, stripes and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, c), np.float32)
    for k in range(c):
        f = rng.uniform(0.02, 0.15, 2)
        img[..., k] = 0.5 + 0.3 * np.sin(xx * f[0] + k) * np.cos(yy * f[1] - k)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, max(5, min(h, w) / 3))
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, c)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def model_input(size, seed):
    """A grey-ish network input like the pipeline's (R, G, B close), in [0,1]."""
    g = smooth_image(size, size, 1, seed).astype(np.float32)[..., 0] / 255.0
    x = np.stack([g, g * 0.98 + 0.01, g * 1.01], 0).clip(0, 1).astype(np.float32)
    return x


def make_model(cfg, seed, size):
    x = torch.from_numpy(model_input(size, seed + 100))[None]
    return ref.random_model(cfg, seed=seed, calibrate_input=x)


def driver_ab(drv, ckpt, x, size, work, tag):
    inp, outp = os.path.join(work, tag + ".in.f32"), os.path.join(work, tag + ".ab.f32")
    x.astype("<f4").tofile(inp)
    r = run([drv, "ab", ckpt, inp, str(size), outp, "2"])
    if r.returncode != 0:
        check(False, "%s: driver failed: %s" % (tag, r.stderr.strip()))
        return None
    return np.fromfile(outp, "<f4").reshape(2, size, size)


def part_model(drv, work):
    # 544: the stride-4 level has 136 x 136 > 16384 keys, where keys and
    # values are projected one head at a time.
    for name, cfg, seed, sizes in (("A", CFG_A, 1, (64, 96, 544)), ("B", CFG_B, 2, (96,))):
        m = make_model(cfg, seed, sizes[0])
        pth, binp = os.path.join(work, name + ".pth"), os.path.join(work, name + ".bin")
        ref.save_checkpoints(m, pth, binp)
        info = run([drv, "info", pth])
        want = "depths %d %d %d %d dims %d %d %d %d nf %d embed %d hidden %d queries %d scales %d layers %d ffn %d" % (
            *cfg["depths"], *cfg["dims"], cfg["nf"], cfg["nf"] // 2, cfg["hidden"], cfg["queries"], cfg["scales"],
            cfg["layers"], cfg["ffn"])
        check(info.returncode == 0 and info.stdout.startswith(want),
              "config %s detected from tensor names and shapes: %s" % (name, (info.stdout or info.stderr).strip()))
        for size in sizes:
            x = model_input(size, seed + size)
            with torch.no_grad():
                want_ab = m(torch.from_numpy(x)[None])[0].numpy()
            for fmt, path in (("pth", pth), ("bin", binp)):
                got = driver_ab(drv, path, x, size, work, "%s_%d_%s" % (name, size, fmt))
                if got is None:
                    continue
                d = float(np.abs(got - want_ab).max())
                check(d <= 1e-3, "config %s, %dx%d, %s: max |ab - reference| = %.2e (ab std %.1f, range %.1f..%.1f)"
                      % (name, size, size, fmt, d, want_ab.std(), want_ab.min(), want_ab.max()))


def part_pipeline(drv, work):
    import cv2
    m = make_model(CFG_A, 3, 64)
    pth = os.path.join(work, "P.pth")
    ref.save_checkpoints(m, pth)
    cases = [  # (h, w, channels, input size, upsampling)
        (53, 77, 1, 64, "nearest"),
        (67, 101, 3, 64, "nearest"),
        (83, 45, 4, 64, "nearest"),
        (97, 150, 3, 96, "nearest"),
        (31, 29, 3, 64, "nearest"),  # smaller than the input size both ways
        (128, 128, 3, 64, "nearest"),  # exactly twice the input size
        (67, 101, 3, 64, "bilinear"),
        (83, 45, 4, 96, "bilinear"),
    ]
    for i, (h, w, c, size, up) in enumerate(cases):
        img = smooth_image(h, w, c, 50 + i)
        if c == 1:
            bgr = np.repeat(img, 3, 2)
        else:
            bgr = np.ascontiguousarray(img[..., 2::-1])  # RGB(A) -> BGR, alpha dropped as imread does
        want = ref.pipeline(m, bgr, size, up)[..., ::-1]  # BGR -> RGB
        inp, outp = os.path.join(work, "img%d.raw" % i), os.path.join(work, "out%d.raw" % i)
        img.tofile(inp)
        r = run([drv, "pipe", pth, inp, str(w), str(h), str(c), str(size), up, outp, "2"])
        tag = "%dx%d, %d channel%s, input %d, %s" % (w, h, c, "" if c == 1 else "s", size, up)
        if r.returncode != 0:
            check(False, tag + ": driver failed: " + r.stderr.strip())
            continue
        oc = 4 if c == 4 else 3
        got = np.fromfile(outp, np.uint8).reshape(h, w, oc)
        d = np.abs(got[..., :3].astype(int) - want.astype(int))
        colourful = float(np.abs(want.astype(int) - want.mean(2, keepdims=True)).mean())
        check(d.max() <= 1, "%s: max |diff| %d LSB, %.3f %% of values off by 1 (mean colourfulness %.1f)"
              % (tag, d.max(), 100.0 * (d > 0).mean(), colourful))
        if c == 4:
            check(np.array_equal(got[..., 3], img[..., 3]), tag + ": alpha kept")


def part_errors(drv, work):
    m = make_model(CFG_B, 4, 64)
    sd = ref.state_dict(m)
    cases = []
    bad = dict(sd)
    del bad["decoder.color_decoder.transformer_ffn_layers.1.linear2.weight"]
    cases.append(("missing", bad, "decoder.color_decoder.transformer_ffn_layers.1.linear2.weight"))
    bad = dict(sd)
    bad["encoder.arch.stages.0.1.pwconv1.weight"] = torch.zeros(30, 8)
    cases.append(("misshapen", bad, "encoder.arch.stages.0.1.pwconv1.weight has shape [30,8]; expected [32,8]"))
    bad = dict(sd)
    bad["decoder.layers.2.conv.0.weight_v"] = torch.zeros(5)
    cases.append(("spectral vector", bad, "decoder.layers.2.conv.0.weight_v"))
    cases.append(("foreign", {"generator.model.1.ffc.convl2l.weight": torch.zeros(64, 4, 7, 7)},
                  "is not a DDColor checkpoint: it has no tensor encoder.arch.norm0.weight"))
    pref = {"module." + k: v for k, v in sd.items()}
    for name, d, want in cases:
        path = os.path.join(work, "bad_%s.pth" % name.replace(" ", "_"))
        torch.save({"params": d}, path)
        r = run([drv, "info", path])
        check(r.returncode == 1 and want in r.stderr and "checkpoint" in r.stderr.split(":", 1)[1],
              "%s tensor refused: %s" % (name, r.stderr.strip()))
    path = os.path.join(work, "prefixed.bin")
    torch.save(pref, path)
    r = run([drv, "info", path])
    check(r.returncode == 0 and r.stdout.startswith("depths 2 1 1 1"), "keys under a 'module.' prefix are accepted")
    ok = os.path.join(work, "ok.pth")
    torch.save({"params": sd}, ok)
    r = run([drv, "cancel", ok, "64", "3"])
    lines = r.stdout.split("\n")
    check(r.returncode == 0 and lines[0].startswith("rc cancelled seen 3 "),
          "progress callback cancels after step 3: " + lines[0])
    steps = 1 + sum(CFG_B["depths"]) + 3 + CFG_B["layers"] + 1
    check(len(lines) > 1 and lines[1] == "again ok seen %d max %d" % (steps, steps),
          "after a cancel the model runs to the end, %d progress steps: %s" % (steps, lines[1:2]))
    r = run([drv, "ab", ok, os.path.join(work, "nonexistent.f32"), "64", os.path.join(work, "x.f32")])
    check(r.returncode == 1, "unreadable input refused")


def part_tiny(drv, work):
    cfg = ref.CONFIG_T
    m = make_model(cfg, 5, 64)
    pth = os.path.join(work, "tiny.pth")
    ref.save_checkpoints(m, pth)
    info = run([drv, "info", pth])
    check(info.returncode == 0 and info.stdout.startswith(
        "depths 3 3 9 3 dims 96 192 384 768 nf 512 embed 256 hidden 256 queries 100 scales 3 layers 9 ffn 2048"),
        "DDColor-T configuration detected: " + (info.stdout or info.stderr).strip())
    size = 64
    x = model_input(size, 77)
    with torch.no_grad():
        want = m(torch.from_numpy(x)[None])[0].numpy()
    got = driver_ab(drv, pth, x, size, work, "tiny")
    if got is not None:
        d = float(np.abs(got - want).max())
        check(d <= 1e-3, "DDColor-T width, %dx%d: max |ab - reference| = %.2e (ab std %.1f)" % (size, size, d,
                                                                                            want.std()))
    os.remove(pth)


def psnr(a, b):
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def part_bf16(drv, work):
    cases = [("A", make_model(CFG_A, 6, 96), 96, (97, 150)), ("T", make_model(ref.CONFIG_T, 7, 64), 64, (80, 64))]
    for name, m, size, (h, w) in cases:
        pth = os.path.join(work, name + ".pth")
        ref.save_checkpoints(m, pth)
        img = smooth_image(h, w, 3, 90)
        inp = os.path.join(work, name + ".raw")
        img.tofile(inp)
        out = {}
        for prec in ("fp32", "bf16"):
            outp = os.path.join(work, "%s_%s.raw" % (name, prec))
            env = dict(os.environ, PM_DRIVER_PRECISION=prec)
            r = run([drv, "pipe", pth, inp, str(w), str(h), "3", str(size), "nearest", outp, "2"], env=env)
            if r.returncode != 0 and "no native bf16" in r.stderr:
                print("skipped: " + r.stderr.strip())
                sys.exit(77)
            if r.returncode != 0:
                check(False, "%s %s: driver failed: %s" % (name, prec, r.stderr.strip()))
                break
            out[prec] = np.fromfile(outp, np.uint8).reshape(h, w, 3)
        if len(out) == 2:
            q = psnr(out["bf16"], out["fp32"])
            d = np.abs(out["bf16"].astype(int) - out["fp32"].astype(int))
            check(q >= 40.0, "config %s, %dx%d at input %d: bf16 vs fp32 PSNR %.1f dB (max |diff| %d LSB)"
                  % (name, w, h, size, q, d.max()))
        os.remove(pth)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--part", required=True, choices=["model", "pipeline", "errors", "tiny", "bf16"])
    a = ap.parse_args()
    work = os.path.join(a.work, a.part)
    os.makedirs(work, exist_ok=True)
    {"model": part_model, "pipeline": part_pipeline, "errors": part_errors, "tiny": part_tiny, "bf16": part_bf16}[a.part](a.driver, work)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
