"""Writes fuzz seeds for fuzz_meta into DIR: small PNG, JPEG and WebP files
carrying EXIF (with GPS and orientation), an ICC profile, XMP, DPI and PNG
text chunks, made with PIL; and the raw EXIF, ICC and XMP blocks alone."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import metatools as mt  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(1)
img = Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8))
icc = mt.srgb_icc()
texts = [("tEXt", "parameters", "steps 20"), ("zTXt", "Comment", "z" * 50), ("iTXt", "Title", "t")]
n = 0
for fmt in ("png", "jpeg", "webp"):
    for o in (1, 6):
        data = mt.make_image(img, fmt, icc=icc, exif=mt.exif_bytes(orientation=o), xmp=mt.XMP_GPS,
                             dpi=(300, 300) if fmt != "webp" else None, texts=texts if fmt == "png" else ())
        with open(os.path.join(out, "%s_%d.%s" % (fmt, o, fmt)), "wb") as f:
            f.write(data)
        n += 1
for name, blob in (("exif.tiff", mt.exif_bytes(orientation=8)[6:]), ("icc.icc", icc), ("xmp.xml", mt.XMP_GPS)):
    with open(os.path.join(out, name), "wb") as f:
        f.write(blob)
print("wrote %d seeds to %s" % (n + 3, out))
