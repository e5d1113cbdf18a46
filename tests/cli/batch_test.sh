#!/usr/bin/env bash
# Folders of photos: `pixmend inpaint --batch` (a folder of masks paired by
# base name, or one mask for every image) and `pixmend colorize --batch`:
# what is done, skipped and failed, --overwrite, --jobs, and bad folders
# refused with one line, exit 2 and nothing written.
# usage: batch_test.sh PIXMEND
set -u
PIXMEND=$1
PY=/usr/bin/python3
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
absent() { if [ ! -e "$2" ]; then ok "$1"; else bad "$1 ($2 exists)"; fi; }

$PY -c 'import PIL, numpy' 2>/dev/null || { echo "SKIP: $PY has no PIL/numpy"; exit 77; }

# Photos: flat colour with a red square; masks cover the square. d.png has no
# mask, broken.png is damaged, big.png is another size, notes.txt is no image.
$PY - "$work" <<'PYGEN'
import sys
from PIL import Image, ImageDraw
d = sys.argv[1]
import os
for sub in ("img", "masks", "single"):
    os.makedirs(os.path.join(d, sub))
def photo(size, colour):
    im = Image.new("RGB", size, colour)
    ImageDraw.Draw(im).rectangle([8, 8, 19, 19], fill=(255, 0, 0))
    return im
def mask(size):
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).rectangle([6, 6, 21, 21], fill=255)
    return m
photo((64, 48), (40, 120, 200)).save(d + "/img/a.png")
photo((64, 48), (90, 160, 60)).save(d + "/img/b.jpg", quality=95)
photo((64, 48), (200, 180, 40)).save(d + "/img/c.webp", lossless=True)
photo((64, 48), (10, 10, 10)).save(d + "/img/d.png")
photo((80, 60), (120, 120, 120)).save(d + "/img/big.png")
open(d + "/img/broken.png", "wb").write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
open(d + "/img/notes.txt", "w").write("not an image")
mask((64, 48)).save(d + "/masks/a.png")
mask((64, 48)).convert("RGB").save(d + "/masks/b.png")   # another extension than b.jpg
mask((64, 48)).save(d + "/masks/c.webp", lossless=True)
mask((80, 60)).save(d + "/masks/big.jpg", quality=100)
mask((64, 48)).save(d + "/masks/broken.png")
mask((64, 48)).save(d + "/single/watermark.png")
Image.new("L", (64, 48), 0).save(d + "/single/empty.png")
PYGEN

# is_filled FILE: the red square is gone (the masked area takes the flat colour around it).
is_filled() {
    $PY - "$1" <<'PYCHK'
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
bg = a[40, 50]
assert (np.abs(a[14, 14] - bg) < 40).all(), (a[14, 14], bg)
PYCHK
}

# --- pairing by base name
expect "inpaint --batch: an image failed, exit 1" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/res"
contains "summary counts" "6 images: 4 done, 1 skipped, 1 failed" out
contains "image without a mask listed as skipped" "skipped d.png: no mask named d.*" out
contains "broken image listed as failed, with why" "failed  broken.png: " out
contains "other files are counted as ignored" "1 other file" out
for f in a.png b.jpg c.webp big.png; do
    if [ -f "$work/res/$f" ] && is_filled "$work/res/$f"; then ok "out/$f written under the same name and filled"; else bad "out/$f missing or not filled"; fi
done
if $PY -c "
from PIL import Image
a, b = Image.open('$work/img/b.jpg'), Image.open('$work/res/b.jpg')
assert b.format == 'JPEG' and a.quantization == b.quantization, (b.format, b.quantization)
"; then ok "a JPEG comes back as a JPEG at the input's quality (same tables)"; else bad "b.jpg not at the input's quality"; fi
absent "nothing written for the skipped image" "$work/res/d.png"
absent "nothing written for the failed image" "$work/res/broken.png"
hidden=$(find "$work/res" -mindepth 1 -name '.*')
if [ -z "$hidden" ]; then ok "no temporary or probe file left in OUT_DIR"; else bad "left in OUT_DIR: $hidden"; fi

# --- no overwrite unless --overwrite
cp "$work/res/a.png" "$work/a.before"
printf 'keep' >"$work/res/b.jpg"
expect "second run: exit 1 (broken.png still fails)" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/res"
contains "existing results skipped" "skipped a.png: $work/res/a.png exists; --overwrite replaces it" out
contains "second run did nothing else" "0 done, 5 skipped, 1 failed" out
if [ "$(cat "$work/res/b.jpg")" = keep ]; then ok "an existing result is not overwritten"; else bad "b.jpg was overwritten"; fi
expect "--overwrite" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/res" --overwrite
contains "--overwrite redoes them" "4 done, 1 skipped, 1 failed" out
if is_filled "$work/res/b.jpg"; then ok "--overwrite replaced b.jpg"; else bad "--overwrite did not replace b.jpg"; fi

# --- --jobs: the same results; a budget too small for two runs them one by one
expect "--jobs 3" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/res3" --jobs 3
expect "--jobs 3 --mem-budget 1M" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/res1m" --jobs 3 --mem-budget 1M
contains "a tight budget still runs every image" "4 done, 1 skipped, 1 failed" out
if cmp -s "$work/res/a.png" "$work/res3/a.png" && cmp -s "$work/res/a.png" "$work/res1m/a.png" && cmp -s "$work/res/c.webp" "$work/res3/c.webp"; then
    ok "--jobs gives the same results as one at a time"
else bad "--jobs results differ"; fi

# --- one mask for many photos
expect "one mask for every image" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/single/watermark.png" -o "$work/one"
contains "one mask: another size skipped with the reason" "skipped big.png: the image is 80x60 and the mask 64x48 (--mask-resize scales the mask)" out
contains "one mask: the rest done" "4 done, 1 skipped, 1 failed" out
if is_filled "$work/one/d.png"; then ok "one mask applied to d.png (no mask of its own)"; else bad "one mask: d.png not filled"; fi
expect "one mask --mask-resize" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/single/watermark.png" -o "$work/one_r" --mask-resize
contains "--mask-resize scales the mask" "5 done, 0 skipped, 1 failed" out
cp "$work/single/watermark.png" "$work/img/zz_mask.png"
expect "the mask inside IMAGES_DIR" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/img/zz_mask.png" -o "$work/one_in"
contains "the mask file itself is not inpainted" "skipped zz_mask.png: it is the mask file" out
rm "$work/img/zz_mask.png"

# --- bad input: one line, exit 2, nothing written
expect "OUT_DIR inside IMAGES_DIR" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/img/results"
one_line "OUT_DIR inside IMAGES_DIR"
contains "says inside" "is inside IMAGES_DIR" err
absent "nothing created inside IMAGES_DIR" "$work/img/results"
expect "OUT_DIR is IMAGES_DIR" 2 "$PIXMEND" colorize --batch "$work/img" -o "$work/img/" --model x.pth
one_line "OUT_DIR is IMAGES_DIR"
expect "one mask that selects nothing" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/single/empty.png" -o "$work/o2"
one_line "one mask that selects nothing"
absent "nothing written for an empty mask" "$work/o2"
expect "MASKS_DIR is IMAGES_DIR" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/img/" -o "$work/o2"
one_line "MASKS_DIR is IMAGES_DIR"
absent "nothing written when MASKS_DIR is IMAGES_DIR" "$work/o2"
expect "missing IMAGES_DIR" 2 "$PIXMEND" inpaint --batch "$work/nope" "$work/masks" -o "$work/o2"
one_line "missing IMAGES_DIR"
contains "names the folder" "IMAGES_DIR $work/nope does not exist" err
absent "nothing written for a missing IMAGES_DIR" "$work/o2"
expect "missing MASKS_DIR" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/nomasks" -o "$work/o2"
one_line "missing MASKS_DIR"
absent "nothing written for a missing MASKS_DIR" "$work/o2"
expect "OUT_DIR whose parent is missing" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/no/such/out"
one_line "OUT_DIR whose parent is missing"
expect "OUT_DIR not writable" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o /proc/1
one_line "OUT_DIR not writable"
contains "says it cannot write" "cannot write to OUT_DIR /proc/1" err
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$work/ro" && chmod 555 "$work/ro"
    expect "OUT_DIR without write permission" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/ro"
    one_line "OUT_DIR without write permission"
fi
mkdir "$work/empty"
expect "IMAGES_DIR without images" 2 "$PIXMEND" inpaint --batch "$work/empty" "$work/masks" -o "$work/o3"
one_line "IMAGES_DIR without images"
absent "nothing written for an empty IMAGES_DIR" "$work/o3"
expect "--jobs without --batch" 2 "$PIXMEND" inpaint "$work/img/a.png" "$work/masks/a.png" -o "$work/x.png" --jobs 2
one_line "--jobs without --batch"
expect "--batch without -o" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/masks"
one_line "--batch without -o"
contains "asks for OUT_DIR" "missing -o OUT_DIR" err
expect "--jobs 0" 2 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/o4" --jobs 0
absent "nothing written for a bad --jobs" "$work/o4"
expect "missing model file: exit 1" 1 "$PIXMEND" inpaint --batch "$work/img" "$work/masks" -o "$work/o5" --model "$work/none.ckpt"
absent "OUT_DIR not left behind when the model is missing" "$work/o5"

# --- colorize --batch with a small DDColor checkpoint
if $PY "$src/tests/golden_ddcolor/make_test_ckpt.py" "$work/dd.pth" >/dev/null 2>&1; then
    expect "colorize --batch" 1 "$PIXMEND" colorize --batch "$work/img" -o "$work/color" --model "$work/dd.pth" --input-size 64 --jobs 2
    contains "colorize summary" "6 images: 5 done, 0 skipped, 1 failed" out
    contains "colorize lists the broken file" "failed  broken.png: " out
    if $PY -c "
from PIL import Image
for n, s in (('a.png', (64, 48)), ('b.jpg', (64, 48)), ('big.png', (80, 60))):
    assert Image.open('$work/color/' + n).size == s, n
"; then ok "colorize results under the same names and sizes"; else bad "colorize results"; fi
else
    echo "skip - colorize --batch (no torch to write a DDColor checkpoint)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
