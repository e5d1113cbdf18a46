#!/usr/bin/python3
"""Quality and speed benchmark of pixmend's built-in PatchMatch inpainter
against OpenCV's inpainting methods, side by side in one run:
Telea and Navier-Stokes (cv2.inpaint, radius 3) and shift-map
(cv2.xphoto.inpaint with INPAINT_SHIFTMAP, opencv contrib, a textured method).

Images: photographs shipped with Debian's python3-skimage (skimage.data), at
their own sizes (grey ones as RGB), plus "edge" cases built from them in which
a straight edge (a horizon, a wall edge) crosses the hole, and "structure"
cases with straight lines across the hole: synthetic (a fence, a brick grid,
a thin diagonal line over gravel) and real (skimage's brick mortar, camera's
tripod leg, rocket's launch-tower pole).
Masks: strokes, boxes and blobs (3-15 % of the image), from fixed seeds.
The pixels under the mask are set to black before any inpainter sees them, and
every result is composited (pixels outside the hole taken from the input),
since shift-map also touches known pixels.

Metrics, against the original image, inside the hole:
  PSNR    10 log10(255^2 / MSE), MSE over the hole pixels and the 3 channels.
  SSIM    mean over hole pixels and channels of the SSIM map of the whole image
          (Gaussian window sigma 1.5, population covariance; Wang et al. 2004).
  detail  variance of the Laplacian of the grey image inside the hole, divided
          by the same for the original's pixels (1 = as much fine detail as
          the photo; a smooth fill gives far less).
  seam    mean |difference| across the mask's edge (every 4-neighbour pair of a
          hole pixel and a known pixel, 3 channels) divided by the same pairs
          in the original (1 = the edge is as smooth as the photo there).
  edge    (edge cases only) PSNR over the hole pixels within 8 px of the
          straight edge: whether the edge comes out continuous.
  line    (cases with known straight lines across the hole) the deviation, in
          pixels, of the filled edge from its straight continuation: at every
          1-px station of a line inside the hole, the shift (|s| <= 5 px) that
          best aligns the luminance profile across the line (21 px, averaged
          over 17 px along it) with the original's; 5 when the profile's
          contrast is below 0.4 of the original's (the edge is lost). Mean
          over the stations; 0 = the edge continues straight.
Shift-map is slow (seconds per image); its results are cached in WORK/cache
under a hash of its input, so a rerun only recomputes pixmend.

Timing: skimage's motorcycle_left cropped to 4:3 and resized to 1280x960 with a
10 % blob hole; median of --repeat runs of the C program (--threads, default
2) and of cv2.inpaint in this process (one thread).

Usage:
  /usr/bin/python3 bench/patchmatch/run_bench.py --bin build/bench/patchmatch/pm_bench_patchmatch
  options: --quick (3 images x 2 masks and 2 structure cases, no shift-map,
           no timing), --work DIR,
           --repeat N, --threads N, --no-timing, --pm-args "--em 6",
           --json FILE, --min-margin DB, --min-detail R, --max-line-dev PX
Always run with /usr/bin/python3 (Debian's numpy, cv2, skimage).
"""
import argparse
import hashlib
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
METHODS = ("pixmend", "ns", "telea", "shiftmap")
TEXTURES = ("brick", "grass", "gravel")  # the texture photographs; the others are "photographs" in the summary


def rgb_of(img):
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)


def load_png(name):
    img = cv2.imread(os.path.join(SKIMAGE_DIR, name), cv2.IMREAD_COLOR)
    if img is None:
        sys.exit("cannot read %s from %s" % (name, SKIMAGE_DIR))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


IMAGES = [
    ("astronaut", lambda: skimage.data.astronaut()),
    ("coffee", lambda: skimage.data.coffee()),
    ("chelsea", lambda: skimage.data.chelsea()),
    ("rocket", lambda: skimage.data.rocket()),
    ("brick", lambda: skimage.data.brick()),
    ("grass", lambda: skimage.data.grass()),
    ("gravel", lambda: skimage.data.gravel()),
    ("camera", lambda: skimage.data.camera()),
    ("coins", lambda: skimage.data.coins()),
    ("motorcycle", lambda: load_png("motorcycle_left.png")),
]

MASKS = [("strokes", 0.04), ("boxes", 0.06), ("boxes", 0.12), ("blobs", 0.10)]


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
    n = 1 if frac < 0.07 else 2
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
    return MASK_FN[shape](h, w, frac, np.random.RandomState(seed))


def edge_cases():
    """Photographs with a straight edge across the hole: (name, rgb, mask, edge
    mask = the pixels within 8 px of the edge line)."""
    cases = []
    grass, gravel, brick = (rgb_of(f()) for f in (skimage.data.grass, skimage.data.gravel, skimage.data.brick))
    coffee = rgb_of(skimage.data.coffee())
    # A horizon: coffee's upper part (a smooth wall) over gravel, tinted.
    hz = gravel.copy().astype(np.float32) * np.array([0.8, 0.7, 0.55], np.float32)
    hz[:200] = cv2.resize(coffee[:120, 40:440], (512, 200), interpolation=cv2.INTER_AREA)
    hz = np.clip(hz, 0, 255).astype(np.uint8)
    # A wall edge: brick on the left of a slanted line, grass (tinted green) on the right.
    yy, xx = np.mgrid[0:512, 0:512]
    line = xx - (200 + 0.25 * yy)
    wall = np.where((line < 0)[:, :, None], brick, (grass * np.array([0.6, 0.9, 0.5])).astype(np.uint8))
    # A fence: brick's mortar lines are straight; a box across several of them.
    # The horizon and the wall edge are texture boundaries (about the same
    # mean luminance on both sides), which the line deviation cannot see:
    # edge PSNR measures them.
    for name, img, edge_d, boxes, lines in (
            ("horizon", hz, np.abs(yy - 199.5), [(150, 160, 330, 240)], None),
            ("wall", wall, np.abs(line) / np.hypot(1, 0.25), [(190, 220, 290, 300)], None),
            ("horizon", hz, np.abs(yy - 199.5), [(40, 185, 480, 215)], None),
    ):
        m = np.zeros((512, 512), np.uint8)
        for x0, y0, x1, y1 in boxes:
            m[y0:y1, x0:x1] = 255
        cases.append(("%s-%s" % (name, "strip" if boxes[0][2] - boxes[0][0] > 300 else "box"),
                      np.ascontiguousarray(img), m, edge_d <= 8, lines))
    bm = np.zeros((512, 512), np.uint8)
    bm[230:300, 120:260] = 255
    # The mortar lines' centres, from a Hough transform of the original.
    cases.append(("brick-box", brick, bm, None, [((219.5, 170), (219.5, 358)), ((143, 358), (152, 170)),
                                                ((181, 358), (186, 170)), ((253.5, 172), (257, 358))]))
    return cases


def grain(h, w, seed, sigma, amp):
    """Smooth random grain (Gaussian-filtered noise), amplitude about amp."""
    return ndimage.gaussian_filter(np.random.RandomState(seed).standard_normal((h, w)), sigma) * amp / 0.25


def structure_cases():
    """Straight lines across the hole: (name, rgb, mask, lines), lines the
    segments ((x0, y0), (x1, y1)) of the original's edges that cross it."""
    H = W = 512
    yy, xx = np.mgrid[0:H, 0:W]
    grass = rgb_of(skimage.data.grass()).astype(np.float32)
    gravel = rgb_of(skimage.data.gravel()).astype(np.float32)
    cases = []

    def box(y0, y1, x0, x1, shape=(H, W)):
        m = np.zeros(shape, np.uint8)
        m[y0:y1, x0:x1] = 255
        return m
    # A fence: vertical wooden planks (period 48 px, 10 px gaps) over grass.
    g = grain(H, W, 1, (6, 0.8), 10)
    fence = np.where(((xx % 48) < 10)[:, :, None], grass * np.array([0.5, 0.8, 0.4]),
                     np.stack([170 + g, 130 + g, 90 + g], 2))
    cases.append(("fence", fence, box(200, 290, 150, 260),
                  [((x, 150), (x, 340)) for x0 in (144, 192, 240) for x in (x0 - 0.5, x0 + 9.5) if 150 < x < 260]))
    # A brick grid: running bond, 64x28 bricks, 6 px mortar, with grain.
    g = grain(H, W, 2, 1.2, 12)
    mortar = ((yy % 28) < 6) | (((xx + 32 * ((yy // 28) % 2)) % 64) < 6)
    bricks = np.where(mortar[:, :, None], np.stack([200 + g * .5] * 3, 2),
                      np.stack([150 + g, 70 + g * .8, 50 + g * .7], 2))
    cases.append(("brickgrid", bricks, box(190, 290, 180, 300),
                  [((150, y), (330, y)) for y0 in range(196, 290, 28) for y in (y0 - 0.5, y0 + 5.5) if 190 < y < 290]))
    # A thin dark line (3 px, 30 degrees) over gravel at half contrast.
    t = np.tan(np.radians(30))
    d = (yy - 100) * np.cos(np.radians(30)) - xx * np.sin(np.radians(30))
    diag = np.where((np.abs(d) < 1.5)[:, :, None], 40.0, (0.45 * gravel + 70) * np.array([0.9, 0.85, 0.75]))
    cases.append(("diagonal", diag, box(220, 300, 260, 340), [((220, 100 + 220 * t), (380, 100 + 380 * t))]))
    # Real photographs; the lines' centres from a Hough transform of the original.
    cases.append(("brick-mortar", rgb_of(skimage.data.brick()), box(300, 360, 180, 280),
                  [((219.5, 240), (219.5, 418)), ((256, 240), (259, 418))]))
    cases.append(("camera-tripod", rgb_of(skimage.data.camera()), box(375, 430, 320, 380),
                  [((303.5, 318.5), (391, 484.5))]))
    rocket = rgb_of(skimage.data.rocket())
    cases.append(("rocket-pole", rocket, box(150, 180, 430, 462, rocket.shape[:2]), [((445.5, 124), (449.5, 208))]))
    return [(n, np.clip(i, 0, 255).astype(np.uint8), m, ln) for n, i, m, ln in cases]


def write_pnm(path, img):
    h, w = img.shape[:2]
    with open(path, "wb") as f:
        f.write(b"%s\n%d %d\n255\n" % (b"P6" if img.ndim == 3 else b"P5", w, h))
        f.write(np.ascontiguousarray(img, dtype=np.uint8).tobytes())


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


def composite(holed, out, m):
    res = holed.copy()
    res[m > 0] = out[m > 0]
    return res


def run_cv(method, holed, m, cache_dir):
    """One OpenCV method on an RGB image; returns (result, ms)."""
    bgr = cv2.cvtColor(holed, cv2.COLOR_RGB2BGR)
    cache = None
    if method == "shiftmap":
        key = hashlib.sha1(bgr.tobytes() + m.tobytes() + str(m.shape).encode()).hexdigest()[:20]
        cache = os.path.join(cache_dir, "shiftmap_lab_%s.png" % key)
        if os.path.exists(cache):
            with open(cache + ".ms") as f:
                return cv2.cvtColor(cv2.imread(cache), cv2.COLOR_BGR2RGB), float(f.read())
    t0 = time.perf_counter()
    if method == "telea":
        out = cv2.inpaint(bgr, m, 3, cv2.INPAINT_TELEA)
    elif method == "ns":
        out = cv2.inpaint(bgr, m, 3, cv2.INPAINT_NS)
    else:
        # xphoto.inpaint expects CIELab-like input (intensity first) and a mask of the known pixels.
        lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab)
        out = np.zeros_like(lab)
        cv2.xphoto.inpaint(lab, np.where(m > 0, 0, 255).astype(np.uint8), out, cv2.xphoto.INPAINT_SHIFTMAP)
        out = cv2.cvtColor(out, cv2.COLOR_Lab2BGR)
    ms = 1e3 * (time.perf_counter() - t0)
    if cache:
        cv2.imwrite(cache, out)
        with open(cache + ".ms", "w") as f:
            f.write("%.1f" % ms)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB), ms


def hole_psnr(ref, out, sel):
    d = ref[sel].astype(np.float64) - out[sel].astype(np.float64)
    mse = float(np.mean(d * d)) if d.size else 0.0
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def hole_ssim(ref, out, m):
    _, smap = structural_similarity(ref, out, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255, full=True)
    return float(smap[m > 0].mean())


def lap_var(img, sel):
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(g, cv2.CV_64F, ksize=1)[sel].var())


def detail_ratio(ref, out, m):
    sel = m > 0
    return lap_var(out, sel) / max(lap_var(ref, sel), 1e-9)


def seam_ratio(ref, out, m):
    hole = m > 0
    num = den = 0.0
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        cross = hole[a] != hole[b]
        num += np.abs(out[a].astype(np.int32) - out[b])[cross].sum()
        den += np.abs(ref[a].astype(np.int32) - ref[b])[cross].sum()
    return float(num / max(den, 1.0))


def evaluate(ref, out, m, edge, lines=None):
    r = {"psnr": hole_psnr(ref, out, m > 0), "ssim": hole_ssim(ref, out, m),
         "detail": detail_ratio(ref, out, m), "seam": seam_ratio(ref, out, m)}
    if edge is not None:
        r["edge"] = hole_psnr(ref, out, (m > 0) & edge)
    if lines:
        r["line"] = line_dev(ref, out, m, lines)
    return r


def line_profiles(img, line, half=10, along=8):
    """Luminance profiles across the segment (2 half + 1 samples, averaged
    over 2 along + 1 px along it) at its 1-px stations, and the stations."""
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    (x0, y0), (x1, y1) = line
    n = np.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / n, (y1 - y0) / n
    t = np.arange(0, n)[:, None, None] + np.arange(-along, along + 1)[None, :, None]
    s = np.arange(-half, half + 1)[None, None, :]
    px, py = x0 + t * ux - s * uy, y0 + t * uy + s * ux
    v = ndimage.map_coordinates(g, [py.ravel(), px.ravel()], order=1, mode="nearest").reshape(px.shape)
    ts = np.arange(0, n)
    return x0 + ts * ux, y0 + ts * uy, v.mean(1)


def line_dev(ref, out, m, lines, K=5, half=10):
    """Mean deviation (px) of the filled edges from their straight
    continuation (see the module's docstring)."""
    devs = []
    for ln in lines:
        sx, sy, P0 = line_profiles(ref, ln, half)
        _, _, P1 = line_profiles(out, ln, half)
        for k in range(len(sx)):
            xi, yi = int(round(sx[k])), int(round(sy[k]))
            if not (0 <= xi < m.shape[1] and 0 <= yi < m.shape[0]) or not m[yi, xi]:
                continue
            p0 = P0[k][K:2 * half + 1 - K] - P0[k][K:2 * half + 1 - K].mean()
            errs = []
            for sh in range(-K, K + 1):
                p1 = P1[k][K + sh:2 * half + 1 - K + sh]
                errs.append((float(((p1 - p1.mean() - p0) ** 2).mean()), abs(sh), sh))
            _, _, best = min(errs)
            lost = P1[k][K + best:2 * half + 1 - K + best].std() < 0.4 * P0[k].std()
            devs.append(K if lost else abs(best))
    return float(np.mean(devs)) if devs else float("nan")


def build_cases(quick):
    cases = []
    images = IMAGES[:3] if quick else IMAGES
    masks = [MASKS[0], MASKS[3]] if quick else MASKS
    for ii, (name, loader) in enumerate(images):
        rgb = rgb_of(loader())
        h, w = rgb.shape[:2]
        for mi, (shape, frac) in enumerate(masks):
            seed = 1000 * (ii + 1) + 10 * mi + int(frac * 100)
            cases.append((name, "%s%d" % (shape, round(frac * 100)), rgb, make_mask(shape, frac, h, w, seed), None,
                          None))
    if not quick:
        for name, rgb, m, edge, lines in edge_cases():
            cases.append((name, "edge", rgb, m, edge, lines))
    for name, rgb, m, lines in structure_cases():
        if not quick or name in ("camera-tripod", "fence"):
            cases.append((name, "structure", rgb, m, None, lines))
    return cases


def fmt_row(r, methods):
    cells = ["%s | %s | %s | %.1f" % (r["image"], r["size"], r["mask"], 100 * r["cover"])]
    for k in ("psnr", "ssim", "detail", "seam"):
        f = "%.2f" if k != "ssim" else "%.3f"
        cells.append(" / ".join(f % r[meth][k] for meth in methods))
    if "line" in r["pixmend"]:
        cells.append("line dev " + " / ".join("%.2f" % r[meth]["line"] for meth in methods))
    return "| " + " | ".join(cells) + " |"


def time_hd(args, photo):
    """Wall time of `pixmend inpaint` on a 2560x1920 photo with an 8 % blob
    hole (crop strategy), median of --repeat runs."""
    big = cv2.resize(photo, (2560, 1920), interpolation=cv2.INTER_CUBIC)
    m = make_mask("blobs", 0.08, 1920, 2560, 8080)
    ip, mp, op = (os.path.join(args.work, f) for f in ("hd.png", "hd_mask.png", "hd_out.png"))
    cv2.imwrite(ip, cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    cv2.imwrite(mp, m)
    times = []
    load_before = os.getloadavg()
    c0 = os.times()
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = subprocess.run([args.cli, "inpaint", ip, mp, "-o", op, "--hd-strategy", "crop", "-t", str(args.threads),
                              "--quiet"], capture_output=True, text=True)
        times.append(1e3 * (time.perf_counter() - t0))
        if res.returncode != 0:
            sys.exit("pixmend inpaint failed: %s" % res.stderr)
    c1 = os.times()
    cpu_ms = 1e3 * ((c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)) / args.repeat
    out = cv2.cvtColor(cv2.imread(op), cv2.COLOR_BGR2RGB)
    hd = {"cpu_ms_per_run": cpu_ms, "size": "2560x1920", "hole": float((m > 0).mean()), "times_ms": times,
          "median_ms": statistics.median(times), "loadavg_before": load_before, "loadavg": os.getloadavg(),
          "detail": detail_ratio(big, out, m), "psnr": hole_psnr(big, out, m > 0)}
    print("timing 2560x1920, %.1f %% blob hole, `pixmend inpaint --hd-strategy crop -t %d` (PNG decode + encode "
          "included), median of %d: %.0f ms (runs %s; CPU time per run %.0f ms); detail ratio %.2f; load average "
          "before %.2f %.2f %.2f, after %.2f %.2f %.2f" % (
              100 * hd["hole"], args.threads, args.repeat, hd["median_ms"], ", ".join("%.0f" % t for t in times),
              cpu_ms, hd["detail"], *load_before, *hd["loadavg"]))
    return hd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path of pm_bench_patchmatch")
    ap.add_argument("--work", default="/tmp/pm_bench_patchmatch", help="scratch directory (keeps the shift-map cache)")
    ap.add_argument("--quick", action="store_true", help="3 images x 2 masks, no shift-map, no timing")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--timing-only", action="store_true", help="only the timing runs (no quality cases)")
    ap.add_argument("--repeat", type=int, default=5, help="timing runs (median)")
    ap.add_argument("--threads", type=int, default=2, help="pixmend's compute threads")
    ap.add_argument("--pm-args", default="", help="extra options for the C program")
    ap.add_argument("--json", help="write all figures to this file")
    ap.add_argument("--cli", help="path of the pixmend program: also time a 2560x1920 photo with an 8 %% hole "
                    "through `pixmend inpaint --hd-strategy crop` (decode, crops, engine, encode)")
    ap.add_argument("--only", help="comma-separated image names to run (development)")
    ap.add_argument("--methods", default=",".join(METHODS), help="methods to compare, pixmend first")
    ap.add_argument("--min-margin", type=float, default=None,
                    help="exit 1 unless pixmend's mean PSNR beats Navier-Stokes' by this many dB")
    ap.add_argument("--max-line-dev", type=float, default=None,
                    help="exit 1 unless pixmend's mean line deviation (px) is at most this")
    ap.add_argument("--min-detail", type=float, default=None,
                    help="exit 1 unless pixmend's mean detail ratio is at least this")
    args = ap.parse_args()
    cache_dir = os.path.join(args.work, "cache")
    os.makedirs(cache_dir, exist_ok=True)
    extra = ["--threads", str(args.threads)] + shlex.split(args.pm_args)
    methods = tuple(args.methods.split(","))
    if args.quick:
        methods = tuple(m for m in methods if m != "shiftmap")

    rows = []
    print("per case: " + " / ".join(methods))
    for k, (name, mname, rgb, m, edge, lines) in enumerate(build_cases(args.quick)):
        if args.timing_only or (args.only and name not in args.only.split(",")):
            continue
        h, w = rgb.shape[:2]
        holed = rgb.copy()
        holed[m > 0] = 0
        base = os.path.join(args.work, "%s_%s_%d" % (name, mname, k))
        write_pnm(base + "_in.ppm", holed)
        write_pnm(base + ".pgm", m)
        info = run_pixmend(args.bin, base + "_in.ppm", base + ".pgm", base + "_pm.ppm", extra)
        pm_out = read_ppm(base + "_pm.ppm")
        row = {"image": name, "size": "%dx%d" % (w, h), "mask": mname, "cover": float((m > 0).mean()),
               "outside_exact": bool(np.array_equal(holed[m == 0], pm_out[m == 0]))}
        row["pixmend"] = evaluate(rgb, pm_out, m, edge, lines)
        row["pixmend"]["ms"] = info["median_ms"]
        for meth in methods[1:]:
            out, ms = run_cv(meth, holed, m, cache_dir)
            row[meth] = evaluate(rgb, composite(holed, out, m), m, edge, lines)
            row[meth]["ms"] = ms
        rows.append(row)
        print(fmt_row(row, methods) + ("" if row["outside_exact"] else "  OUTSIDE CHANGED"), flush=True)

    def mean(meth, key, sel=rows):
        if not sel:
            return float("nan")
        vals = [r[meth][key] for r in sel if key in r[meth]]
        return statistics.fmean(vals) if vals else float("nan")

    names = {"pixmend": "**pixmend**", "ns": "Navier-Stokes", "telea": "Telea", "shiftmap": "shift-map"}

    def group(r):
        if r["mask"] in ("edge", "structure"):
            return r["mask"]
        return "textures" if r["image"] in TEXTURES else "photographs"
    groups = ("photographs", "textures", "edge", "structure")
    print()
    print("| method | PSNR (dB) | SSIM | detail ratio | seam ratio | edge PSNR (dB) | line dev (px) | "
          "time per case (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for meth in methods:
        summary[meth] = {k: mean(meth, k) for k in ("psnr", "ssim", "detail", "seam", "edge", "line", "ms")}
        summary[meth]["groups"] = {g: {k: mean(meth, k, [r for r in rows if group(r) == g])
                                       for k in ("psnr", "ssim", "detail", "seam", "line")} for g in groups}
        s = summary[meth]
        print("| %s | %.2f | %.3f | %.2f | %.2f | %.2f | %.2f | %.0f |" % (
            names[meth], s["psnr"], s["ssim"], s["detail"], s["seam"], s["edge"], s["line"], s["ms"]))
    if rows:
        print("(%d cases, mean hole %.1f %%; edge PSNR over the %d edge cases, line deviation over the %d cases "
              "with known lines)" % (len(rows), 100 * statistics.fmean(r["cover"] for r in rows),
                                     sum(1 for r in rows if "edge" in r["pixmend"]),
                                     sum(1 for r in rows if "line" in r["pixmend"])))
        for g in groups:
            n = sum(1 for r in rows if group(r) == g)
            if n:
                gs = {m: summary[m]["groups"][g] for m in methods}
                print("%s (%d cases): %s" % (g, n, "; ".join("%s PSNR %.2f, SSIM %.3f, detail %.2f, seam %.2f%s" % (
                    names[m], gs[m]["psnr"], gs[m]["ssim"], gs[m]["detail"], gs[m]["seam"],
                    ", line dev %.2f" % gs[m]["line"] if g == "structure" else "") for m in methods)))
    print("outside-hole pixels bit-exact in all cases: %s" % all(r["outside_exact"] for r in rows))

    timing = None
    if not args.quick and not args.no_timing and not args.only:
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
        write_pnm(ip, holed)
        write_pnm(mp, m)
        load_before = os.getloadavg()
        c0 = os.times()
        info = run_pixmend(args.bin, ip, mp, op, extra, repeat=args.repeat)
        c1 = os.times()
        # CPU time of the C program per run (all threads; includes reading and writing the PPM files once).
        cpu_ms = 1e3 * ((c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)) / args.repeat
        tt, tn = [], []
        for _ in range(args.repeat):
            tt.append(run_cv("telea", holed, m, cache_dir)[1])
            tn.append(run_cv("ns", holed, m, cache_dir)[1])
        timing = {"size": "1280x960", "hole": float((m > 0).mean()), "threads": info["threads"],
                  "pm_ms": info["times_ms"], "pm_median_ms": info["median_ms"], "pm_peak_bytes": info["peak_bytes"],
                  "telea_median_ms": statistics.median(tt), "ns_median_ms": statistics.median(tn),
                  "pm_cpu_ms_per_run": cpu_ms, "loadavg_before": load_before, "loadavg": os.getloadavg()}
        print()
        print("timing 1280x960, %.1f %% blob hole, median of %d runs: pixmend %.0f ms (%d threads; runs %s; "
              "peak heap %.1f MiB), Telea %.0f ms, NS %.0f ms (cv2, 1 thread)" % (
                  100 * timing["hole"], args.repeat, timing["pm_median_ms"], timing["threads"],
                  ", ".join("%.0f" % t for t in timing["pm_ms"]), timing["pm_peak_bytes"] / 2 ** 20,
                  timing["telea_median_ms"], timing["ns_median_ms"]))
        print("  pixmend CPU time per run %.0f ms (all threads); load average before %.2f %.2f %.2f, "
              "after %.2f %.2f %.2f" % (cpu_ms, *load_before, *timing["loadavg"]))
        if args.cli:
            timing["hd"] = time_hd(args, big)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "mean": summary, "timing": timing, "pm_args": extra}, f, indent=1)
    rc = 0
    if not all(r["outside_exact"] for r in rows):
        print("FAIL: pixels outside the hole changed")
        rc = 1
    margin = summary["pixmend"]["psnr"] - summary["ns"]["psnr"]
    if args.min_margin is not None and margin < args.min_margin:
        print("FAIL: mean PSNR margin over Navier-Stokes %.2f dB < %.2f dB" % (margin, args.min_margin))
        rc = 1
    if args.max_line_dev is not None and not summary["pixmend"]["line"] <= args.max_line_dev:
        print("FAIL: mean line deviation %.2f px > %.2f px" % (summary["pixmend"]["line"], args.max_line_dev))
        rc = 1
    if args.min_detail is not None and summary["pixmend"]["detail"] < args.min_detail:
        print("FAIL: mean detail ratio %.2f < %.2f" % (summary["pixmend"]["detail"], args.min_detail))
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
