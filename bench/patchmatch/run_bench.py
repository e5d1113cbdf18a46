#!/usr/bin/python3
"""Quality and speed benchmark of pixmend's built-in PatchMatch inpainter
against OpenCV's cv2.inpaint (Telea and Navier-Stokes), side by side in one run.

Images: photographs shipped with Debian's python3-skimage (skimage.data).
Masks: strokes, boxes and blobs, two sizes each (2-15 % of the image),
generated deterministically from fixed seeds.

Metrics, both computed against the original image and only where the mask is set:
  PSNR  = 10 log10(255^2 / MSE), MSE over all hole pixels and the 3 channels.
  SSIM  = mean, over hole pixels and channels, of the SSIM map of the whole
          image (skimage.metrics.structural_similarity, Gaussian window
          sigma 1.5, population covariance: the settings of Wang et al. 2004).

Timing: a 1280x960 photo (skimage's motorcycle_left, cropped to 4:3 and
resized with bicubic interpolation) with a 10 % blob hole; median of --repeat
runs of the C program (all cores), and of cv2.inpaint in this process.

Usage:
  /usr/bin/python3 bench/patchmatch/run_bench.py --bin build/bench/patchmatch/pm_bench_patchmatch
  options: --quick (3 images x 2 masks, no timing), --work DIR, --repeat N,
           --no-timing, --pm-args "--em 6 --pm 3" (passed to the C program),
           --json FILE (all figures as JSON).
Always run with /usr/bin/python3 (Debian's numpy, cv2, skimage).
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np
import skimage.data
from scipy import ndimage
from skimage.metrics import structural_similarity

SKIMAGE_DIR = os.path.dirname(skimage.data.__file__)

IMAGES = [
    ("astronaut", lambda: skimage.data.astronaut()),
    ("coffee", lambda: skimage.data.coffee()),
    ("chelsea", lambda: skimage.data.chelsea()),
    ("rocket", lambda: skimage.data.rocket()),
    ("motorcycle", lambda: load_png("motorcycle_left.png")),
    ("hubble", lambda: skimage.data.hubble_deep_field()),
]

# (shape, target fraction of the image)
MASKS = [
    ("strokes", 0.03), ("strokes", 0.08),
    ("boxes", 0.04), ("boxes", 0.12),
    ("blobs", 0.05), ("blobs", 0.15),
]


def load_png(name):
    img = cv2.imread(os.path.join(SKIMAGE_DIR, name), cv2.IMREAD_COLOR)
    if img is None:
        sys.exit("cannot read %s from %s" % (name, SKIMAGE_DIR))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def mask_strokes(h, w, frac, rng):
    m = np.zeros((h, w), np.uint8)
    base = max(3, int(round(min(h, w) / 40)))
    while m.mean() / 255 < frac:
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        ang = rng.uniform(0, 2 * np.pi)
        thick = int(rng.randint(base, 2 * base + 1))
        for _ in range(rng.randint(3, 7)):
            ang += rng.uniform(-0.8, 0.8)
            step = rng.uniform(0.05, 0.15) * min(h, w)
            nx, ny = x + step * np.cos(ang), y + step * np.sin(ang)
            cv2.line(m, (int(x), int(y)), (int(nx), int(ny)), 255, thick, cv2.LINE_8)
            x, y = float(np.clip(nx, 0, w - 1)), float(np.clip(ny, 0, h - 1))
            if m.mean() / 255 >= frac:
                break
    return m


def mask_boxes(h, w, frac, rng):
    m = np.zeros((h, w), np.uint8)
    n = 1 if frac < 0.06 else 2
    for _ in range(n):
        area = frac * h * w / n
        aspect = rng.uniform(0.6, 1.6)
        bw = int(min(w - 2, round(np.sqrt(area * aspect))))
        bh = int(min(h - 2, round(area / max(bw, 1))))
        x0 = rng.randint(0, w - bw + 1)
        y0 = rng.randint(0, h - bh + 1)
        m[y0:y0 + bh, x0:x0 + bw] = 255
    return m


def mask_blobs(h, w, frac, rng):
    noise = rng.standard_normal((h, w))
    smooth = ndimage.gaussian_filter(noise, sigma=min(h, w) / 18.0)
    thr = np.quantile(smooth, 1.0 - frac)
    return np.where(smooth > thr, 255, 0).astype(np.uint8)


MASK_FN = {"strokes": mask_strokes, "boxes": mask_boxes, "blobs": mask_blobs}


def make_mask(shape, frac, h, w, seed):
    rng = np.random.RandomState(seed)
    return MASK_FN[shape](h, w, frac, rng)


def write_ppm(path, rgb):
    h, w = rgb.shape[:2]
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())


def write_pgm(path, gray):
    h, w = gray.shape
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (w, h))
        f.write(np.ascontiguousarray(gray, dtype=np.uint8).tobytes())


def read_ppm(path):
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(maxsplit=4)
    assert parts[0] == b"P6", path
    w, h = int(parts[1]), int(parts[2])
    return np.frombuffer(parts[4][:w * h * 3], np.uint8).reshape(h, w, 3)


def run_pixmend(binary, img_path, mask_path, out_path, extra, repeat=1):
    cmd = [binary, img_path, mask_path, out_path, "--repeat", str(repeat)] + extra
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("pixmend failed: %s\n%s" % (" ".join(cmd), res.stderr))
    return json.loads(res.stdout.strip().splitlines()[-1])


def hole_psnr(ref, out, mask):
    sel = mask > 0
    d = ref[sel].astype(np.float64) - out[sel].astype(np.float64)
    mse = float(np.mean(d * d))
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def hole_ssim(ref, out, mask):
    _, smap = structural_similarity(ref, out, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255, full=True)
    return float(smap[mask > 0].mean())


def outside_unchanged(ref, out, mask):
    sel = mask == 0
    return bool(np.array_equal(ref[sel], out[sel]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path of pm_bench_patchmatch")
    ap.add_argument("--work", default="/tmp/pm_bench_patchmatch", help="scratch directory")
    ap.add_argument("--quick", action="store_true", help="3 images x 2 masks, no timing")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--repeat", type=int, default=5, help="timing runs (median)")
    ap.add_argument("--pm-args", default="", help="extra options for the C program")
    ap.add_argument("--json", help="write all figures to this file")
    ap.add_argument("--min-margin", type=float, default=None,
                    help="exit 1 unless pixmend's mean PSNR beats both OpenCV methods by this many dB")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    extra = shlex.split(args.pm_args)

    images = IMAGES[:3] if args.quick else IMAGES
    masks = [MASKS[1], MASKS[5]] if args.quick else MASKS
    rows = []
    for ii, (name, loader) in enumerate(images):
        rgb = np.ascontiguousarray(loader()[:, :, :3])
        h, w = rgb.shape[:2]
        img_path = os.path.join(args.work, "%s.ppm" % name)
        write_ppm(img_path, rgb)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for mi, (shape, frac) in enumerate(masks):
            seed = 1000 * (ii + 1) + 10 * mi + int(frac * 100)
            m = make_mask(shape, frac, h, w, seed)
            cover = float((m > 0).mean())
            mask_path = os.path.join(args.work, "%s_%s%d.pgm" % (name, shape, int(frac * 100)))
            out_path = mask_path[:-4] + "_pm.ppm"
            write_pgm(mask_path, m)
            # The hole's content is never shown to the inpainters: the input has it blacked out.
            holed = rgb.copy()
            holed[m > 0] = 0
            holed_path = mask_path[:-4] + "_in.ppm"
            write_ppm(holed_path, holed)
            info = run_pixmend(args.bin, holed_path, mask_path, out_path, extra)
            pm_out = read_ppm(out_path)
            holed_bgr = cv2.cvtColor(holed, cv2.COLOR_RGB2BGR)
            tel = cv2.cvtColor(cv2.inpaint(holed_bgr, m, 3, cv2.INPAINT_TELEA), cv2.COLOR_BGR2RGB)
            ns = cv2.cvtColor(cv2.inpaint(holed_bgr, m, 3, cv2.INPAINT_NS), cv2.COLOR_BGR2RGB)
            row = {
                "image": name, "size": "%dx%d" % (w, h), "mask": "%s%d" % (shape, int(frac * 100)),
                "cover": cover,
                "pm_psnr": hole_psnr(rgb, pm_out, m), "pm_ssim": hole_ssim(rgb, pm_out, m),
                "telea_psnr": hole_psnr(rgb, tel, m), "telea_ssim": hole_ssim(rgb, tel, m),
                "ns_psnr": hole_psnr(rgb, ns, m), "ns_ssim": hole_ssim(rgb, ns, m),
                "pm_ms": info["median_ms"],
                "outside_exact": outside_unchanged(holed, pm_out, m),
            }
            rows.append(row)
            print("%-10s %-9s %-9s %5.1f%%  pixmend %6.2f dB %.3f | telea %6.2f dB %.3f | ns %6.2f dB %.3f | %7.1f ms%s" % (
                name, row["size"], row["mask"], 100 * cover, row["pm_psnr"], row["pm_ssim"],
                row["telea_psnr"], row["telea_ssim"], row["ns_psnr"], row["ns_ssim"], row["pm_ms"],
                "" if row["outside_exact"] else "  OUTSIDE CHANGED"), flush=True)

    def mean(k):
        return statistics.fmean(r[k] for r in rows)

    summary = {k: mean(k) for k in ("pm_psnr", "pm_ssim", "telea_psnr", "telea_ssim", "ns_psnr", "ns_ssim")}
    wins = sum(1 for r in rows if r["pm_psnr"] > max(r["telea_psnr"], r["ns_psnr"]))
    print()
    print("| image | size | mask | hole % | pixmend PSNR | pixmend SSIM | Telea PSNR | Telea SSIM | NS PSNR | NS SSIM |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %s | %s | %.1f | %.2f | %.3f | %.2f | %.3f | %.2f | %.3f |" % (
            r["image"], r["size"], r["mask"], 100 * r["cover"], r["pm_psnr"], r["pm_ssim"],
            r["telea_psnr"], r["telea_ssim"], r["ns_psnr"], r["ns_ssim"]))
    print("| **mean** (%d cases) | | | %.1f | **%.2f** | **%.3f** | %.2f | %.3f | %.2f | %.3f |" % (
        len(rows), 100 * mean("cover"), summary["pm_psnr"], summary["pm_ssim"], summary["telea_psnr"],
        summary["telea_ssim"], summary["ns_psnr"], summary["ns_ssim"]))
    margin = summary["pm_psnr"] - max(summary["telea_psnr"], summary["ns_psnr"])
    print()
    print("pixmend - Telea: %+.2f dB, pixmend - NS: %+.2f dB (mean hole PSNR); pixmend best in %d of %d cases" % (
        summary["pm_psnr"] - summary["telea_psnr"], summary["pm_psnr"] - summary["ns_psnr"], wins, len(rows)))
    print("outside-hole pixels bit-exact in all cases: %s" % all(r["outside_exact"] for r in rows))

    timing = None
    if not args.quick and not args.no_timing:
        big = load_png("motorcycle_left.png")
        h0, w0 = big.shape[:2]
        cw = min(w0, h0 * 4 // 3)
        ch = cw * 3 // 4
        x0, y0 = (w0 - cw) // 2, (h0 - ch) // 2
        big = cv2.resize(np.ascontiguousarray(big[y0:y0 + ch, x0:x0 + cw]), (1280, 960),
                         interpolation=cv2.INTER_CUBIC)
        m = make_mask("blobs", 0.10, 960, 1280, 424242)
        holed = big.copy()
        holed[m > 0] = 0
        ip, mp, op = (os.path.join(args.work, f) for f in ("t1280.ppm", "t1280.pgm", "t1280_pm.ppm"))
        write_ppm(ip, holed)
        write_pgm(mp, m)
        info = run_pixmend(args.bin, ip, mp, op, extra, repeat=args.repeat)
        holed_bgr = cv2.cvtColor(holed, cv2.COLOR_RGB2BGR)
        tt, tn = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            tel = cv2.inpaint(holed_bgr, m, 3, cv2.INPAINT_TELEA)
            tt.append(1e3 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            ns = cv2.inpaint(holed_bgr, m, 3, cv2.INPAINT_NS)
            tn.append(1e3 * (time.perf_counter() - t0))
        pm_out = read_ppm(op)
        tel = cv2.cvtColor(tel, cv2.COLOR_BGR2RGB)
        ns = cv2.cvtColor(ns, cv2.COLOR_BGR2RGB)
        timing = {
            "size": "1280x960", "hole": float((m > 0).mean()), "threads": info["threads"],
            "pm_ms": info["times_ms"], "pm_median_ms": info["median_ms"], "pm_peak_bytes": info["peak_bytes"],
            "telea_median_ms": statistics.median(tt), "ns_median_ms": statistics.median(tn),
            "pm_psnr": hole_psnr(big, pm_out, m), "telea_psnr": hole_psnr(big, tel, m),
            "ns_psnr": hole_psnr(big, ns, m),
            "loadavg": os.getloadavg(),
        }
        print()
        print("timing 1280x960, %.1f %% blob hole, median of %d runs: pixmend %.0f ms (%d threads; runs %s; "
              "peak heap %.1f MiB), Telea %.0f ms, NS %.0f ms (cv2, 1 thread)" % (
                  100 * timing["hole"], args.repeat, timing["pm_median_ms"], timing["threads"],
                  ", ".join("%.0f" % t for t in timing["pm_ms"]), timing["pm_peak_bytes"] / 2 ** 20,
                  timing["telea_median_ms"], timing["ns_median_ms"]))
        print("  hole PSNR there: pixmend %.2f dB, Telea %.2f dB, NS %.2f dB; load average %.2f %.2f %.2f" % (
            timing["pm_psnr"], timing["telea_psnr"], timing["ns_psnr"], *timing["loadavg"]))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "mean": summary, "timing": timing, "pm_args": extra}, f, indent=1)
    if not all(r["outside_exact"] for r in rows):
        print("FAIL: pixels outside the hole changed")
        return 1
    if args.min_margin is not None and margin < args.min_margin:
        print("FAIL: mean PSNR margin %.2f dB < %.2f dB" % (margin, args.min_margin))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
