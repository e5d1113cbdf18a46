"""JPEG to JPEG: the coefficient path (keep every DCT block outside the
repair) against a plain re-encode at the input's quality (--jpeg-reencode
-q Q) and at -q 92 (pixmend's fixed default before it followed the input's
quality), measured side by side on real photographs (skimage.data) with PIL-made
JPEGs. Prints, per photo and setting: the output's size relative to the
input, and the PSNR outside the mask of each output against the decoded
input (what a second generation loses) and against the pristine photo.

usage: /usr/bin/python3 run_bench.py --pixmend build/pixmend [--work DIR]
"""
import argparse
import io
import math
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image
from skimage import data as skdata


def psnr(a, b, sel):
    d = (a.astype(np.float64) - b.astype(np.float64))[sel]
    mse = float((d * d).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def far_from_blocks(mask, hs, vs):
    """Pixels outside the iMCUs (8*hs x 8*vs) that hold a masked pixel, and
    outside the 1-pixel chroma upsampling fringe around them."""
    h, w = mask.shape
    cw, ch = 8 * hs, 8 * vs
    near = np.zeros((h, w), bool)
    ys, xs = np.nonzero(mask)
    for my, mx in set(zip(ys // ch, xs // cw)):
        fy, fx = (1 if vs > 1 else 0), (1 if hs > 1 else 0)
        near[max(0, my * ch - fy):my * ch + ch + fy, max(0, mx * cw - fx):mx * cw + cw + fx] = True
    return ~near


def fmt_db(v):
    return "identical" if v == math.inf else "%.2f dB" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pixmend", required=True)
    ap.add_argument("--work")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="pm_jpeg_blocks_")
    os.makedirs(work, exist_ok=True)
    photos = {"astronaut": skdata.astronaut(), "coffee": skdata.coffee(), "chelsea": skdata.chelsea(),
              "rocket": skdata.rocket()}
    settings = [(85, 2, False), (92, 0, False), (75, 2, True)]  # quality, PIL subsampling, progressive
    sub_name = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
    print("| photo | size | JPEG in | mask | size: blocks kept | size: re-encode | size: re-encode at -q 92 | PSNR vs input outside the mask: kept / re-encode | ... outside the re-encoded blocks: kept / re-encode | PSNR vs pristine outside the mask: input / kept / re-encode |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, arr in photos.items():
        h, w = arr.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        mw, mh = w // 6, h // 6  # about 3 % of the image, off the block grid
        x0, y0 = w // 3 + 3, h // 3 + 5
        mask[y0:y0 + mh, x0:x0 + mw] = 255
        mpath = os.path.join(work, name + "_mask.png")
        Image.fromarray(mask).save(mpath)
        outside = mask == 0
        for q, sub, prog in settings:
            b = io.BytesIO()
            Image.fromarray(arr).save(b, "JPEG", quality=q, subsampling=sub, progressive=prog)
            src = os.path.join(work, "%s_q%d.jpg" % (name, q))
            with open(src, "wb") as f:
                f.write(b.getvalue())
            before = np.asarray(Image.open(src).convert("RGB"))
            kept, re = os.path.join(work, "kept.jpg"), os.path.join(work, "re.jpg")
            subprocess.run([args.pixmend, "inpaint", src, mpath, "-o", kept, "--quiet"], check=True)
            subprocess.run([args.pixmend, "inpaint", src, mpath, "-o", re, "--quiet", "--jpeg-reencode",
                            "-q", str(q)], check=True)
            dflt = os.path.join(work, "q92.jpg")  # pixmend's default quality before it estimated the input's
            subprocess.run([args.pixmend, "inpaint", src, mpath, "-o", dflt, "--quiet", "-q", "92"], check=True)
            n_d = os.path.getsize(dflt)
            ka = np.asarray(Image.open(kept).convert("RGB"))
            ra = np.asarray(Image.open(re).convert("RGB"))
            n_in, n_k, n_r = (os.path.getsize(p) for p in (src, kept, re))
            sel = np.repeat(outside[:, :, None], 3, axis=2)
            hs, vs = {0: (1, 1), 1: (2, 1), 2: (2, 2)}[sub]
            far = np.repeat(far_from_blocks(mask > 0, hs, vs)[:, :, None], 3, axis=2)
            print("| %s | %dx%d | q%d %s%s | %.1f %% | %+.1f %% | %+.1f %% | %+.1f %% | %s / %s | %s / %s | %.2f / %.2f / %.2f dB |" % (
                name, w, h, q, sub_name[sub], " progressive" if prog else "", 100.0 * mask.mean() / 255,
                100.0 * (n_k - n_in) / n_in, 100.0 * (n_r - n_in) / n_in, 100.0 * (n_d - n_in) / n_in,
                fmt_db(psnr(ka, before, sel)), fmt_db(psnr(ra, before, sel)),
                fmt_db(psnr(ka, before, far)), fmt_db(psnr(ra, before, far)),
                psnr(before, arr, sel), psnr(ka, arr, sel), psnr(ra, arr, sel)))


if __name__ == "__main__":
    main()
