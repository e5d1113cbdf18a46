#!/usr/bin/env bash
# pixmend inpaint --mask-dilate and output names without an extension (the
# result in the input's format; a JPEG at its estimated quality).
# usage: cli_mask_test.sh PIXMEND
set -u
PIXMEND=$1
PY=/usr/bin/python3
if ! $PY -c 'import PIL' 2>/dev/null; then
    echo "SKIP: /usr/bin/python3 has no PIL"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# check NAME PYTHON-CODE ARGS...: runs the code with sys.argv = ARGS; passes when it exits 0.
check() {
    local name=$1 code=$2
    shift 2
    if $PY -c "$code" "$@" 2>"$work/pyerr"; then ok "$name"; else bad "$name: $(tail -c 400 "$work/pyerr")"; fi
}

# A grey photo with a red ring 3 px wide around a blue box; the mask is the box.
$PY - "$work" <<'PYGEN'
import sys
from PIL import Image, ImageDraw
d = sys.argv[1]
im = Image.new("RGB", (96, 72))
px = im.load()
for y in range(72):
    for x in range(96):
        v = 110 + (x * 7 + y * 13) % 37
        px[x, y] = (v, v, v)
g = ImageDraw.Draw(im)
g.rectangle((33, 23, 62, 48), fill=(230, 20, 30))
g.rectangle((36, 26, 59, 45), fill=(20, 40, 230))
im.save(d + "/photo.png")
im.save(d + "/photo.jpg", quality=70)
im.save(d + "/photo.webp", lossless=True)
m = Image.new("L", (96, 72), 0)
ImageDraw.Draw(m).rectangle((36, 26, 59, 45), fill=255)
m.save(d + "/mask.png")
# the box shrunk by a disc of radius 3 is the box 3 px smaller on each side
m = Image.new("L", (96, 72), 0)
ImageDraw.Draw(m).rectangle((39, 29, 56, 42), fill=255)
m.save(d + "/mask-shrunk3.png")
PYGEN

REDS='
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
n = sum(1 for p in im.getdata() if p[0] > 190 and p[1] < 70 and p[2] < 70)
want = sys.argv[2]
assert (n == 0) if want == "none" else (n >= int(want)), (n, want)
'

# --- --mask-dilate
expect "no dilation" 0 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/plain.png" --quiet
check "without --mask-dilate the ring stays" "$REDS" "$work/plain.png" 300
expect "--mask-dilate 5" 0 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/grown.png" --mask-dilate 5 --quiet
check "--mask-dilate 5 fills the ring too" "$REDS" "$work/grown.png" none
expect "--mask-dilate -3" 0 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/shrunk.png" --mask-dilate -3 --quiet
check "--mask-dilate -3 keeps the box's edge" '
import sys
from PIL import Image
a = Image.open(sys.argv[1]).convert("RGB"); b = Image.open(sys.argv[2]).convert("RGB")
for p in ((36, 26), (38, 30), (59, 45), (57, 40)):
    assert a.getpixel(p) == b.getpixel(p), p
' "$work/shrunk.png" "$work/photo.png"
# the engine saw exactly the box shrunk by 3 px: the same result as that mask given directly
expect "the box shrunk by 3 px, given as a file" 0 "$PIXMEND" inpaint "$work/photo.png" "$work/mask-shrunk3.png" -o "$work/shrunk-ref.png" --quiet
check "--mask-dilate -3 equals the mask shrunk by 3 px" '
import sys
from PIL import Image
a = Image.open(sys.argv[1]).convert("RGB"); b = Image.open(sys.argv[2]).convert("RGB")
assert a.tobytes() == b.tobytes(), sum(1 for p, q in zip(a.getdata(), b.getdata()) if p != q)
' "$work/shrunk.png" "$work/shrunk-ref.png"
for v in 257 -300 wide; do
    expect "--mask-dilate $v is a usage error" 2 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/x.png" --mask-dilate "$v"
    one_line "--mask-dilate $v"
    contains "--mask-dilate $v names the option" "--mask-dilate" err
done
if [ ! -e "$work/x.png" ]; then ok "a refused --mask-dilate writes nothing"; else bad "a refused --mask-dilate wrote x.png"; fi

# --- output names without an extension: the input's format
expect "jpeg in, no extension" 0 "$PIXMEND" inpaint "$work/photo.jpg" "$work/mask.png" -o "$work/fromjpeg" --quiet
check "jpeg in: a JPEG with the input's tables" '
import sys
from PIL import Image
a = Image.open(sys.argv[1]); b = Image.open(sys.argv[2])
assert a.format == "JPEG", a.format
assert a.quantization == b.quantization, (a.quantization, b.quantization)
' "$work/fromjpeg" "$work/photo.jpg"
expect "png in, no extension" 0 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/frompng" --quiet
check "png in: a PNG" 'import sys; from PIL import Image; assert Image.open(sys.argv[1]).format == "PNG"' "$work/frompng"
mkdir -p "$work/out.d"
expect "webp in, no extension (directory with a dot)" 0 "$PIXMEND" inpaint "$work/photo.webp" "$work/mask.png" -o "$work/out.d/fromwebp" --quiet
check "webp in: a lossless WebP" '
import sys
d = open(sys.argv[1], "rb").read()
assert d[:4] == b"RIFF" and d[8:12] == b"WEBP" and d[12:16] == b"VP8L", d[:16]
' "$work/out.d/fromwebp"
expect "jpeg in, .png out" 0 "$PIXMEND" inpaint "$work/photo.jpg" "$work/mask.png" -o "$work/j.png" --quiet
check "an extension still decides" 'import sys; from PIL import Image; assert Image.open(sys.argv[1]).format == "PNG"' "$work/j.png"
expect "jpeg in, .jpg out, -q 95" 0 "$PIXMEND" inpaint "$work/photo.jpg" "$work/mask.png" -o "$work/q95.jpg" -q 95 --quiet
check "-q overrides the estimate" '
import io, sys
from PIL import Image
a = Image.open(sys.argv[1]); ref = io.BytesIO(); Image.new("RGB", (8, 8)).save(ref, "JPEG", quality=95)
assert a.quantization == Image.open(ref).quantization
' "$work/q95.jpg"
expect "jpeg in, .jpg out keeps the quality" 0 "$PIXMEND" inpaint "$work/photo.jpg" "$work/mask.png" -o "$work/same.jpg" --quiet
check ".jpg out: the input's tables" '
import sys
from PIL import Image
assert Image.open(sys.argv[1]).quantization == Image.open(sys.argv[2]).quantization
' "$work/same.jpg" "$work/photo.jpg"
expect "unknown extension is still a usage error" 2 "$PIXMEND" inpaint "$work/photo.png" "$work/mask.png" -o "$work/out.tiff"
one_line "unknown extension"
contains "unknown extension: says how to keep the input's format" "leave the extension off" err

echo "cli_mask: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
