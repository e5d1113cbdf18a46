"""Golden tests of pixmend's LaMa against the PyTorch reference (lama_ref.py).

    /usr/bin/python3 lama_golden.py --bin build/tests/golden/golden_lama --work DIR CASE

Cases:
  net-small   ngf 16, 2 blocks: network output, fp32 (direct and Winograd), max |diff| <= 1e-4
  net-full    ngf 64, 18 blocks (big-lama shape), small images: same bound
  pipeline    8-bit inpainting on odd sizes (203x317 with ngf 16; 37x29 with the
              full shape), masks touching the border: every pixel within 1 LSB,
              pixels outside the mask identical to the input
  bf16        bf16 network output against fp32: PSNR >= 40 dB
  errors      damaged checkpoints: missing tensor, wrong shape, wrong type ->
              load fails with a message naming the tensor
  progress    progress is reported once per residual block (plus start, head and
              end); a cancel request stops the run with PM_ECANCELLED
  crop        a 2560x1920 photo with a small masked box, strategy auto (crop), big-lama
              shape: the heap peak follows the box (a 40x30 and a 600x450 box), stays
              under the estimate and far under what the whole photo would take
"""
import argparse
import os
import re
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lama_ref  # noqa: E402

THREADS = 2


def make_ckpt(work, ngf, blocks, seed):
    path = os.path.join(work, "lama_%d_%d_%d.ckpt" % (ngf, blocks, seed))
    model = lama_ref.make_model(ngf, blocks, seed)
    lama_ref.save_checkpoint(model, path, seed)
    return path, model


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def net_input(h, w, seed):
    g = np.random.default_rng(seed)
    img = g.random((3, h, w), dtype=np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[h // 4: h // 2 + 3, w // 3: w - 2] = 1
    mask[:3, :] = 1  # touches the border
    x = np.concatenate([img * (1 - mask), mask[None]], 0).astype(np.float32)
    return x


def c_net(args, ckpt, x, extra=()):
    h, w = x.shape[1:]
    fin = os.path.join(args.work, "in.f32")
    fout = os.path.join(args.work, "out.f32")
    x.tofile(fin)
    rc, out, err = run([args.bin, "net", ckpt, fin, fout, str(w), str(h), "--threads", str(THREADS), *extra])
    if rc != 0:
        raise SystemExit("golden_lama net failed (%d): %s" % (rc, err))
    return np.fromfile(fout, np.float32).reshape(3, h, w)


def torch_net(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)[None])[0].numpy()


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    return bool(cond)


def case_net(args, ngf, blocks, sizes, variants):
    ckpt, model = make_ckpt(args.work, ngf, blocks, seed=ngf + blocks)
    ok = True
    for (h, w) in sizes:
        x = net_input(h, w, h * 1000 + w)
        ref = torch_net(model, x)
        for extra in variants:
            y = c_net(args, ckpt, x, extra)
            d = float(np.abs(y - ref).max())
            ok &= check(d <= 1e-4, "ngf %d blocks %d %dx%d %s: max |diff| %.2e (<= 1e-4), output range %.3f..%.3f"
                        % (ngf, blocks, w, h, " ".join(extra) or "fp32", d, ref.min(), ref.max()))
    return ok


def image_and_mask(h, w, seed):
    g = np.random.default_rng(seed)
    # smooth image plus noise: something an inpainter can work on
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(xx / 17.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)], -1)
    img = np.clip(base + g.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 3: h // 3 + h // 4, w // 5: w // 2] = 255
    mask[:, w - 9:] = 200          # right border, odd values count as hole
    mask[h - 5:, : w // 3] = 1     # bottom border
    mask[0:4, 0:6] = 255           # top-left corner
    return img, mask


def case_pipeline(args):
    ok = True
    for ngf, blocks, h, w in [(16, 2, 203, 317), (64, 18, 37, 29)]:
        ckpt, model = make_ckpt(args.work, ngf, blocks, seed=3)
        img, mask = image_and_mask(h, w, h + w)
        ref = lama_ref.predict(model, img, mask)
        frgb, fmask, fout = (os.path.join(args.work, n) for n in ("rgb.u8", "mask.u8", "out.u8"))
        img.tofile(frgb)
        mask.tofile(fmask)
        rc, out, err = run([args.bin, "inpaint", ckpt, frgb, fmask, fout, str(w), str(h), "--threads", str(THREADS),
                            "--band-kb", "64"])
        if rc != 0:
            print("FAIL golden_lama inpaint (%d): %s" % (rc, err))
            ok = False
            continue
        y = np.fromfile(fout, np.uint8).reshape(h, w, 3)
        d = np.abs(y.astype(int) - ref.astype(int))
        hole = mask > 0
        ok &= check(d.max() <= 1, "ngf %d blocks %d %dx%d: max |diff| %d LSB (<= 1), %d of %d hole values differ"
                    % (ngf, blocks, w, h, d.max(), int((d[hole] > 0).sum()), int(hole.sum()) * 3))
        ok &= check((y[~hole] == img[~hole]).all(), "%dx%d: pixels outside the mask unchanged" % (w, h))
        ok &= check(np.abs(y[hole].astype(int) - img[hole].astype(int)).mean() > 1,
                    "%dx%d: the hole was actually filled" % (w, h))
    return ok


def psnr(a, b):
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")


def case_bf16(args):
    rc, out, err = run([args.bin, "load", "/nonexistent", "--bf16"])
    ok = True
    for ngf, blocks, (h, w) in [(16, 2, (64, 80)), (64, 18, (48, 64))]:
        ckpt, model = make_ckpt(args.work, ngf, blocks, seed=5)
        x = net_input(h, w, 7)
        ref = torch_net(model, x)
        y32 = c_net(args, ckpt, x)
        rc, out, err = run([args.bin, "load", ckpt, "--bf16"])
        if rc != 0 and "AVX512-BF16" in err:
            print("skip bf16: " + err.strip())
            return True
        y16 = c_net(args, ckpt, x, ("--bf16",))
        p = psnr(y16, y32)
        ok &= check(p >= 40, "ngf %d blocks %d %dx%d bf16 vs fp32: PSNR %.1f dB (>= 40), vs PyTorch %.1f dB"
                    % (ngf, blocks, w, h, p, psnr(y16, ref)))
        ok &= check(np.abs(y16 - y32).max() > 0, "bf16 output differs from fp32 (it really ran in bf16)")
    return ok


def case_errors(args):
    model = lama_ref.make_model(16, 2, 1)
    sd = model.state_dict()
    ok = True

    def save(sd2, name):
        path = os.path.join(args.work, name)
        lama_ref.save_state_dict(sd2, path)
        return path

    good = save(dict(sd), "good.ckpt")
    rc, out, err = run([args.bin, "load", good])
    ok &= check(rc == 0 and "ngf 16 blocks 2" in out, "intact checkpoint loads: " + (out.strip() or err.strip()))

    missing = "model.6.conv2.ffc.convg2g.fu.bn.running_var"
    sd2 = dict(sd)
    del sd2[missing]
    rc, out, err = run([args.bin, "load", save(sd2, "missing.ckpt")])
    ok &= check(rc != 0 and "generator." + missing in err, "missing tensor named: " + err.strip())

    wrong = "model.5.conv1.ffc.convl2g.weight"
    sd2 = dict(sd)
    sd2[wrong] = torch.zeros(48, 32, 3, 1)
    rc, out, err = run([args.bin, "load", save(sd2, "shape.ckpt")])
    ok &= check(rc != 0 and "generator." + wrong in err and "48" in err, "wrong shape named: " + err.strip())

    typed = "model.12.weight"
    sd2 = dict(sd)
    sd2[typed] = sd2[typed].to(torch.int32)
    rc, out, err = run([args.bin, "load", save(sd2, "dtype.ckpt")])
    ok &= check(rc != 0 and "generator." + typed in err, "wrong type named: " + err.strip())

    sd2 = {k: v for k, v in sd.items() if not k.startswith("model.1.")}
    rc, out, err = run([args.bin, "load", save(sd2, "notlama.ckpt")])
    ok &= check(rc != 0 and "model.1.ffc.convl2l.weight" in err, "not a LaMa checkpoint: " + err.strip())

    # half-precision storage is accepted
    sd2 = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    rc, out, err = run([args.bin, "load", save(sd2, "half.ckpt")])
    ok &= check(rc == 0, "float16 checkpoint loads")
    return ok


def case_progress(args):
    ckpt, _ = make_ckpt(args.work, 16, 3, seed=2)
    rc, out, err = run([args.bin, "progress", ckpt, "40", "32", "--threads", str(THREADS)])
    print(out.strip())
    ok = check(rc == 0, "progress run: " + err.strip())
    # 3 blocks: 0 (start), 1 (head), 2..4 (blocks), 5 (end) = 6 reports of max 5
    ok &= check("full run: rc 0, 6 reports, last 5 of 5, 0 out of order" in out, "one report per block, in order")
    ok &= check("cancelled run: rc -13 (" in out and "3 reports, output none, memory back to baseline" in out,
                "a cancel after the first block stops the run: no output, memory returned")
    return ok


def case_crop(args):
    ckpt, _ = make_ckpt(args.work, 64, 18, seed=5)
    rc, out, err = run([args.bin, "crop", ckpt, "--threads", str(THREADS)])
    print(out.strip())
    ok = check(rc == 0, "crop runs on 2560x1920: " + err.strip())
    m = re.search(r"40x30 box: heap peak ([\d.]+) MB \(estimate ([\d.]+) MB\); 600x450 box: ([\d.]+) MB "
                  r"\(estimate ([\d.]+) MB\); the whole photo would be ([\d.]+) MB", out)
    if not ok or not m:
        return check(False, "crop figures printed")
    small, est_small, large, est_large, whole = map(float, m.groups())
    ok &= check(small <= est_small and large <= est_large, "each crop run stays under its estimate")
    # boxes plus 128 px margins: 296x286 and 856x706 pixels, 7.1x the area
    ok &= check(large > 3 * small, "memory grows with the box (%.1f -> %.1f MB)" % (small, large))
    ok &= check(small < whole / 20, "a small box costs a small fraction of the whole photo (%.1f of %.1f MB)"
                % (small, whole))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("case", choices=["net-small", "net-full", "pipeline", "bf16", "errors", "progress", "crop"])
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(THREADS)
    if args.case == "net-small":
        # --band-kb 4: many row bands in the full-resolution layers
        ok = case_net(args, 16, 2, [(64, 48), (40, 56), (16, 24)],
                      [(), ("--winograd",), ("--band-kb", "4"), ("--threads", "1")])
    elif args.case == "net-full":
        ok = case_net(args, 64, 18, [(48, 40)], [(), ("--band-kb", "16")])
    elif args.case == "pipeline":
        ok = case_pipeline(args)
    elif args.case == "bf16":
        ok = case_bf16(args)
    elif args.case == "progress":
        ok = case_progress(args)
    elif args.case == "crop":
        ok = case_crop(args)
    else:
        ok = case_errors(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
