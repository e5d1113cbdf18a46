#!/usr/bin/env bash
# The pixmend program as a user meets it: exit codes, one-line errors, probe,
# and inpaint refusing bad inputs without writing anything.
# usage: cli_test.sh PIXMEND FAKE_NVML_SO
set -u
PIXMEND=$1
FAKE_NVML=$2
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# --- dispatch and options
expect "help" 0 "$PIXMEND" --help
for c in version probe inpaint; do contains "help lists $c" "$c" out; done
expect "no command" 2 "$PIXMEND"
expect "unknown command" 2 "$PIXMEND" frobnicate
one_line "unknown command"
contains "unknown command named" "frobnicate" err
expect "unknown flag" 2 "$PIXMEND" version --bogus
one_line "unknown flag"
contains "unknown flag named" "--bogus" err
expect "unexpected argument" 2 "$PIXMEND" probe extra
one_line "unexpected argument"
for c in version probe inpaint; do expect "$c --help" 0 "$PIXMEND" "$c" --help; contains "$c --help shows usage" "usage: pixmend $c" out; done
expect "version" 0 "$PIXMEND" version
contains "version names oneDNN" "oneDNN" out

# --- probe
expect "probe" 0 "$PIXMEND" probe
contains "probe shows cores" "Cores:" out
contains "probe shows ISA" "avx512_bf16" out
PIXMEND_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 expect "probe without NVML" 0 "$PIXMEND" probe --json
if $PY -c '
import json,sys
d=json.load(open(sys.argv[1]))
assert d["gpus"]==[], d
assert "not found" in d["gpu_status"], d
assert d["cpu"]["logical_cores"]>=1 and d["cpu"]["physical_cores"]>=1
assert d["memory"]["total_bytes"]>=d["memory"]["available_bytes"]>0
' "$work/out"; then ok "probe --json without a GPU"; else bad "probe --json without a GPU: $(cat "$work/res")"; fi
echo "2 3221225472 17179869184 42" >"$work/nvml"
PM_FAKE_NVML_FILE=$work/nvml PIXMEND_NVML_LIBRARY=$FAKE_NVML expect "probe with fake NVML" 0 "$PIXMEND" probe --json
if $PY -c '
import json,sys
d=json.load(open(sys.argv[1]))
g=d["gpus"]
assert len(g)==2, g
assert g[1]["name"]=="Fake GPU 1", g
assert g[0]["memory_total_bytes"]==17179869184 and g[0]["memory_used_bytes"]==3221225472, g
assert g[0]["utilization_percent"]==42, g
' "$work/out"; then ok "probe --json reads GPUs through NVML"; else bad "probe --json with fake NVML: $(cat "$work/res")"; fi
PM_FAKE_NVML_FILE=$work/nvml PIXMEND_NVML_LIBRARY=$FAKE_NVML expect "probe text with fake NVML" 0 "$PIXMEND" probe
contains "probe text lists the GPU" "Fake GPU 0, 16.0 GiB, 3.0 GiB used, 42 % busy" out

# --- inpaint: bad inputs fail with one line and write nothing
$PY - "$work" <<'PYGEN'
import struct, sys, zlib
from PIL import Image
d = sys.argv[1]
img = Image.new("RGB", (64, 48))
for y in range(48):
    for x in range(64):
        img.putpixel((x, y), ((x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256))
img.save(d + "/photo.png")
mask = Image.new("L", (64, 48))
for y in range(20, 28):
    for x in range(30, 40):
        mask.putpixel((x, y), 255)
mask.save(d + "/mask.png")
Image.new("L", (32, 32)).save(d + "/small_mask.png")
data = open(d + "/photo.png", "rb").read()
open(d + "/truncated.png", "wb").write(data[: len(data) // 2])
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
open(d + "/huge.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
open(d + "/notes.png", "wb").write(b"hello, this is text\n")
PYGEN
mkdir -p "$work/res"
for case in missing truncated huge notes; do
    expect "inpaint $case input fails" 1 "$PIXMEND" inpaint "$work/$case.png" "$work/mask.png" -o "$work/res/result.png"
    one_line "inpaint $case"
    if [ -z "$(find "$work/res" -mindepth 1 -printf "%f ")" ]; then ok "inpaint $case writes nothing"; else bad "inpaint $case left files: $(find "$work/res" -mindepth 1 -printf "%f ")"; fi
done
expect "inpaint huge names the size" 1 "$PIXMEND" inpaint "$work/huge.png" "$work/mask.png" -o "$work/res/result.png"
contains "huge: message names the size and the limit" "50000x50000" err
contains "huge: message names the option" "--max-pixels" err
expect "inpaint missing names the file" 1 "$PIXMEND" inpaint "$work/missing.png" "$work/mask.png" -o "$work/res/result.png"
contains "missing: message names the file" "missing.png" err
expect "inpaint without -o" 2 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png"
one_line "inpaint without -o"
expect "inpaint unknown output type" 2 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/res/result.bmp"
one_line "inpaint unknown output type"
expect "inpaint missing mask argument" 2 "$PIXMEND" inpaint "$work/photo.png" -o "$work/res/result.png"
one_line "inpaint missing mask argument"
expect "inpaint mask of another size" 1 "$PIXMEND" inpaint "$work/photo.png" "$work/small_mask.png" -o "$work/res/result.png"
contains "mask size: message suggests --mask-resize" "--mask-resize" err
expect "inpaint --max-pixels 0.001M refuses the photo" 1 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/res/r.png" --max-pixels 0.001M
contains "--max-pixels 0.001M: message names the limit" "at most 1000 pixels" err
expect "inpaint --max-pixels not a count" 2 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/res/r.png" --max-pixels lots
one_line "inpaint --max-pixels not a count"
contains "--max-pixels lots: message names the option" "--max-pixels" err
expect "colorize --max-side not a number" 2 "$PIXMEND" colorize "$work/photo.png" -o "$work/res/r.png" --model x.pth --max-side big
contains "--max-side big: message names the option" "--max-side" err
expect "inpaint bad strategy" 2 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/res/r.png" --hd-strategy fancy
if [ -z "$(find "$work/res" -mindepth 1 -printf "%f ")" ]; then ok "failed runs wrote nothing"; else bad "failed runs left files: $(find "$work/res" -mindepth 1 -printf "%f ")"; fi

# --- inpaint: a real run with the built-in model
expect "inpaint with patchmatch" 0 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/res/result.png" --quiet
if $PY - "$work" <<'PYCHK'
import sys
from PIL import Image
d = sys.argv[1]
a = Image.open(d + "/photo.png").convert("RGB"); b = Image.open(d + "/res/result.png"); m = Image.open(d + "/mask.png")
assert b.size == a.size and b.mode == "RGB", (b.size, b.mode)
changed = 0
for y in range(a.size[1]):
    for x in range(a.size[0]):
        if m.getpixel((x, y)) == 0:
            assert a.getpixel((x, y)) == b.getpixel((x, y)), (x, y)
        else:
            changed += a.getpixel((x, y)) != b.getpixel((x, y))
assert changed > 40, changed
PYCHK
then ok "inpaint result: unchanged outside the mask, filled inside"; else bad "inpaint result check"; fi
if [ "$(find "$work/res" -mindepth 1 -printf "%f ")" = "result.png " ]; then ok "only the result was written"; else bad "stray files: $(find "$work/res" -mindepth 1 -printf "%f ")"; fi
expect "inpaint --mask-resize" 0 "$PIXMEND" inpaint "$work/photo.png" "$work/small_mask.png" -o "$work/res/r2.jpg" --mask-resize --quiet

# --- calibrate: measures, prints the law and its error per size, stores it for serve
expect "calibrate --help" 0 "$PIXMEND" calibrate --help
contains "calibrate --help shows usage" "usage: pixmend calibrate" out
expect "calibrate bad sizes" 2 "$PIXMEND" calibrate --sizes 64,x --data-dir "$work/cal"
one_line "calibrate bad sizes"
expect "calibrate model without file" 2 "$PIXMEND" calibrate --model lama --data-dir "$work/cal"
contains "calibrate names the missing file" "--model lama=FILE" err
expect "calibrate patchmatch" 0 "$PIXMEND" calibrate --model patchmatch --sizes 96,192 --threads 1 --data-dir "$work/cal"
contains "calibrate prints the law" "law: peak_bytes = " out
contains "calibrate prints the error" "largest prediction error:" out
if $PY - "$work/cal/memlaw.json" <<'PYCHK'
import json, sys
d = json.load(open(sys.argv[1]))
m = [x for x in d["models"] if x["model"] == "patchmatch"][0]
assert m["source"] == "calibrate" and m["a"] >= 0 and m["b"] > 0, m
assert [p[0] for p in m["pairs"]] == [96 * 96, 192 * 192], m
for px, peak in m["pairs"]:
    assert m["a"] + m["b"] * px >= peak, (px, peak, m)
PYCHK
then ok "calibrate stored a law above every measurement"; else bad "calibrate memlaw.json check"; fi
# --- inpaint --model by the name of a model that needs a file
expect "inpaint --model lama without its file" 1 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/res/l.png" --model lama
contains "lama without file: says to give the checkpoint" "best.ckpt" err
expect "inpaint --model ddcolor" 1 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/res/l.png" --model ddcolor
contains "ddcolor for inpaint: points to colorize" "pixmend colorize" err

# --- serve: a memory budget as a share
expect "serve --mem-budget over 100 %" 2 "$PIXMEND" serve --mem-budget 150%
one_line "serve --mem-budget over 100 %"
contains "serve: says what a share must be" "percentage from 0 to 100" err

# --- bench lama: argument errors, then a tiny checkpoint against PyTorch
src=$(cd "$(dirname "$0")/../.." && pwd)
expect "bench unknown name" 2 "$PIXMEND" bench resnet --model x
one_line "bench unknown name"
expect "bench without --model" 2 "$PIXMEND" bench lama
contains "bench: names the checkpoint it needs" "best.ckpt" err
expect "bench size not a multiple of 8" 2 "$PIXMEND" bench lama --model x --size 100
expect "bench missing checkpoint" 1 "$PIXMEND" bench lama --model "$work/none.ckpt" --no-torch
one_line "bench missing checkpoint"
if $PY -c "import sys; sys.path.insert(0, '$src/tests/golden'); import lama_ref; lama_ref.save_checkpoint(lama_ref.make_model(8, 1, 0), '$work/tiny.ckpt', 0)"; then
    expect "bench lama tiny vs PyTorch" 0 "$PIXMEND" bench lama --model "$work/tiny.ckpt" --size 32 --runs 1 --threads 1
    contains "bench prints pixmend's figures" "pixmend  median" out
    contains "bench prints PyTorch's figures" "pytorch  median" out
    contains "bench prints the ratio" "x faster (median); peak RSS" out
    contains "bench prints the efficiency against the ceiling" "of the fp32 ceiling" out
    contains "bench prints the one-shot share" "one-shot (load" out
else
    bad "writing a tiny LaMa checkpoint with $PY"
fi

# --- colorize: errors write nothing; a real run keeps the lightness and alpha
expect "colorize without --model" 2 "$PIXMEND" colorize "$work/photo.png" -o "$work/res/c.png"
one_line "colorize without --model"
expect "colorize bad input size" 2 "$PIXMEND" colorize "$work/photo.png" -o "$work/res/c.png" --model x --input-size 100
expect "colorize missing model file" 1 "$PIXMEND" colorize "$work/photo.png" -o "$work/res/c.png" --model "$work/none.pth"
one_line "colorize missing model file"
if [ ! -e "$work/res/c.png" ]; then ok "failed colorize runs wrote nothing"; else bad "a failed colorize left c.png"; fi
if $PY "$src/tests/golden_ddcolor/make_test_ckpt.py" "$work/dd.pth" >/dev/null; then
    $PY -c "
from PIL import Image
im = Image.open('$work/photo.png').convert('L').convert('LA')
im.putpixel((0, 0), (10, 0)); im.save('$work/gray_alpha.png')"
    expect "colorize a gray photo with alpha" 0 "$PIXMEND" colorize "$work/gray_alpha.png" -o "$work/res/c.png" --model "$work/dd.pth" --input-size 64 --quiet
    if $PY - "$work" <<'PYCHK'
import sys
import cv2
import numpy as np
from PIL import Image
d = sys.argv[1]
a = Image.open(d + "/gray_alpha.png"); b = Image.open(d + "/res/c.png")
assert b.size == a.size and b.mode == "RGBA", (b.size, b.mode)
assert np.array_equal(np.array(a)[..., 1], np.array(b)[..., 3]), "alpha changed"
rgb = np.array(b)[..., :3]
L = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[..., 0]
L0 = cv2.cvtColor(np.repeat(np.array(a)[..., :1], 3, 2).astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[..., 0]
assert np.abs(L - L0).mean() < 2.0, np.abs(L - L0).mean()
PYCHK
    then ok "colorize result: same size, alpha kept, lightness kept"; else bad "colorize result check"; fi
else
    bad "writing a small DDColor checkpoint with $PY"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
