"""`pixmend inpaint` keeps the photograph: ICC, EXIF, XMP, DPI and PNG text
from input to output for PNG, JPEG and WebP; the EXIF orientations; the
privacy options; 16-bit PNG exact outside the mask; JPEG to JPEG keeps every
DCT block outside the repair (decoded output equals decoded input bit for
bit there) for 4:2:0, 4:2:2 and 4:4:4, baseline and progressive; damaged
ICC/EXIF blocks never stop the repair. Fixtures are made with PIL."""
import io
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
try:
    import cv2
    import numpy as np
    from PIL import Image, ImageOps
    from skimage import data as skdata
    import metatools as mt
except ImportError as e:  # CTest SKIP_RETURN_CODE
    print("skipped: %s" % e)
    sys.exit(77)

PIXMEND = os.environ.get("PIXMEND", "pixmend")
FMTS = {"png": "png", "jpeg": "jpg", "webp": "webp"}


def photo(w=160, h=128):
    """A real photograph's corner (skimage's astronaut), not symmetric."""
    return Image.fromarray(skdata.astronaut()[40:40 + h, 120:120 + w])


def mask_img(w, h, box):
    m = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 255
    return Image.fromarray(m)


def png_of(img):
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def inpaint(self, image, mask, out, *opts, ok=True):
        r = subprocess.run([PIXMEND, "inpaint", image, mask, "-o", self.path(out), "--quiet"] + list(opts),
                           capture_output=True, text=True, timeout=120)
        if ok:
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(self.path(out), "rb") as f:
                return f.read(), r.stderr
        return None, r.stderr


class RoundTrip(Cli):
    def test_each_format_keeps_icc_exif_xmp_dpi(self):
        icc = mt.srgb_icc()
        exif = mt.exif_bytes(orientation=1, gps=False)
        img = photo()
        mask = self.write("mask.png", png_of(mask_img(160, 128, (50, 40, 90, 70))))
        for src in FMTS:
            data = mt.make_image(img, src, icc=icc, exif=exif, xmp=mt.XMP, dpi=(300, 300), quality=92)
            inp = self.write("in." + FMTS[src], data)
            have = mt.read_meta(data)
            self.assertEqual(have["icc"], icc, src)  # the fixture carries what it should
            self.assertEqual(have["xmp"], mt.XMP, src)
            for dst in FMTS:
                with self.subTest(src=src, dst=dst):
                    out, err = self.inpaint(inp, mask, "out." + FMTS[dst], "-v")
                    m = mt.read_meta(out)
                    self.assertEqual(m["icc"], icc)
                    self.assertEqual(m["xmp"], mt.XMP)
                    ex = Image.open(io.BytesIO(out)).getexif()
                    self.assertEqual(ex.get(0x010F), "PixmendCam")
                    self.assertEqual(ex.get(0x0132), "2024:05:06 07:08:09")
                    if src != "webp" and dst != "webp":
                        dpi = mt.dpi_of(m)
                        self.assertIsNotNone(dpi)
                        self.assertAlmostEqual(dpi[0], 300, delta=0.01)
                        self.assertAlmostEqual(dpi[1], 300, delta=0.01)
                    if src != "webp" and dst == "webp":
                        self.assertIn("WebP cannot hold the resolution (DPI)", err)

    def test_png_text_chunks_kept_png_to_png(self):
        texts = [("tEXt", "parameters", "a red car, Steps: 20, Sampler: Euler a, CFG scale: 7"),
                 ("zTXt", "Comment", "generated " * 40), ("iTXt", "Description", "caf\u00e9 \u2615")]
        data = mt.make_image(photo(), "png", texts=texts)
        inp = self.write("in.png", data)
        mask = self.write("mask.png", png_of(mask_img(160, 128, (10, 10, 40, 30))))
        out, _ = self.inpaint(inp, mask, "out.png")
        self.assertEqual(mt.read_meta(out)["text"], mt.read_meta(data)["text"])
        self.assertEqual(len(mt.read_meta(out)["text"]), 3)
        got = Image.open(io.BytesIO(out)).text
        for _, k, v in texts:
            self.assertEqual(got[k], v)
        out, err = self.inpaint(inp, mask, "out.jpg", "-v")
        self.assertIn("cannot hold PNG text chunks", err)
        out, err = self.inpaint(inp, mask, "out2.png", "--strip-metadata")
        self.assertEqual(mt.read_meta(out)["text"], [])


    def test_png_colour_chunks(self):
        import struct
        chrm = struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)
        gama = struct.pack(">I", 55556)  # gamma 1.8
        png = mt.insert_png_chunks(png_of(photo()), [(b"cHRM", chrm), (b"gAMA", gama)])
        inp = self.write("in.png", png)
        mask = self.write("mask.png", png_of(mask_img(160, 128, (10, 10, 40, 30))))
        out, _ = self.inpaint(inp, mask, "out.png")
        chunks = {}
        pos = 8
        while pos < len(out):
            n, = struct.unpack(">I", out[pos:pos + 4])
            chunks[out[pos + 4:pos + 8]] = out[pos + 8:pos + 8 + n]
            pos += 12 + n
        self.assertEqual(chunks.get(b"cHRM"), chrm)
        self.assertEqual(chunks.get(b"gAMA"), gama)
        _, err = self.inpaint(inp, mask, "out.jpg", "-v")
        self.assertIn("gamma and chromaticities", err)


class Orientation(Cli):
    def test_all_eight(self):
        stored = photo(96, 64)  # stored pixels, 96x64
        exif_of = {o: mt.exif_bytes(orientation=o, gps=False) for o in range(1, 9)}
        for o in range(1, 9):
            with self.subTest(orientation=o):
                data = mt.make_image(stored, "jpeg", exif=exif_of[o], quality=95, subsampling=0)
                inp = self.write("in%d.jpg" % o, data)
                shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
                w, h = shown.size
                self.assertEqual((w, h), (64, 96) if o >= 5 else (96, 64))
                box = (8, 8, 24, 24)
                mask = self.write("m%d.png" % o, png_of(mask_img(w, h, box)))
                out, _ = self.inpaint(inp, mask, "o%d.png" % o)
                res = Image.open(io.BytesIO(out))
                self.assertEqual(res.size, (w, h))
                self.assertEqual(res.getexif().get(0x0112), 1)
                a = np.asarray(res.convert("RGB")).astype(int)
                b = np.asarray(shown.convert("RGB")).astype(int)
                keep = np.ones((h, w), bool)
                keep[box[1]:box[3], box[0]:box[2]] = False
                self.assertTrue((a[keep] == b[keep]).all(), "pixels outside the mask moved")
                self.assertFalse((a[~keep] == b[~keep]).all(), "the mask was not filled")
                # JPEG out: the blocks stay as stored, so the orientation tag stays.
                out, _ = self.inpaint(inp, mask, "o%d.jpg" % o)
                res = Image.open(io.BytesIO(out))
                self.assertEqual(res.getexif().get(0x0112), o)
                shown_out = np.asarray(ImageOps.exif_transpose(res)).astype(int)
                far = np.ones((h, w), bool)
                far[0:40, 0:40] = False  # the mask's iMCUs and their fringe
                self.assertTrue((shown_out[far] == b[far]).all())
                out, _ = self.inpaint(inp, mask, "r%d.jpg" % o, "--jpeg-reencode")
                self.assertEqual(Image.open(io.BytesIO(out)).getexif().get(0x0112), 1)
                # Without metadata there is no orientation tag: the pixels must be turned.
                out, err = self.inpaint(inp, mask, "s%d.jpg" % o, "--strip-metadata", "-v")
                res = Image.open(io.BytesIO(out))
                self.assertIsNone(mt.read_meta(out)["exif"])
                self.assertEqual(res.size, (w, h))
                diff = np.abs(np.asarray(res.convert("RGB")).astype(int) - b)[far]
                self.assertLess(diff.mean(), 3.0)
                if o != 1:
                    self.assertIn("re-encoded whole", err)


class Privacy(Cli):
    def test_strip_gps_and_strip_metadata(self):
        exif = mt.exif_bytes(gps=True)
        img = photo()
        data = mt.make_image(img, "jpeg", icc=mt.srgb_icc(), exif=exif, xmp=mt.XMP_GPS, dpi=(72, 72))
        self.assertTrue(Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825))
        inp = self.write("in.jpg", data)
        mask = self.write("mask.png", png_of(mask_img(160, 128, (50, 40, 90, 70))))
        for dst in ("jpg", "png", "webp"):
            with self.subTest(dst=dst):
                out, _ = self.inpaint(inp, mask, "keep." + dst)
                self.assertTrue(Image.open(io.BytesIO(out)).getexif().get_ifd(0x8825), "GPS kept by default")
                out, err = self.inpaint(inp, mask, "nogps." + dst, "--strip-gps", "-v")
                ex = Image.open(io.BytesIO(out)).getexif()
                self.assertEqual(ex.get(0x010F), "PixmendCam")
                self.assertNotIn(0x8825, ex)
                self.assertFalse(ex.get_ifd(0x8825))
                m = mt.read_meta(out)
                # The coordinates' bytes are gone too, not only the pointer.
                self.assertNotIn(bytes([0, 0, 0, 48, 0, 0, 0, 1]), m["exif"])
                self.assertNotIn(bytes([48, 0, 0, 0, 1, 0, 0, 0]), m["exif"])
                self.assertIsNone(m["xmp"])  # the XMP packet named a location
                self.assertIn("location", err)
                out, _ = self.inpaint(inp, mask, "bare." + dst, "--strip-metadata")
                m = mt.read_meta(out)
                self.assertEqual((m["icc"], m["exif"], m["xmp"], m["text"]), (None, None, None, []))
                if dst == "png":
                    self.assertIsNone(m["res"])

    def test_thumbnail_removed(self):
        """The EXIF thumbnail shows the photo before the repair: it is removed."""
        img = photo()
        ex = Image.Exif()
        ex[0x010F] = "PixmendCam"
        b = io.BytesIO()
        img.resize((40, 32)).save(b, "JPEG")
        thumb = b.getvalue()
        data = mt.make_image(img, "jpeg", exif=ex.tobytes())
        # IFD1 with JPEGInterchangeFormat: built by hand (PIL writes no thumbnail).
        import struct
        tiff = mt.read_meta(data)["exif"]
        e = "<" if tiff[:2] == b"II" else ">"
        ifd0, = struct.unpack(e + "I", tiff[4:8])
        n, = struct.unpack(e + "H", tiff[ifd0:ifd0 + 2])
        next_at = ifd0 + 2 + 12 * n
        self.assertEqual(struct.unpack(e + "I", tiff[next_at:next_at + 4])[0], 0)
        ifd1 = len(tiff)
        ifd1_bytes = struct.pack(e + "H", 2) + struct.pack(e + "HHII", 0x0201, 4, 1, ifd1 + 2 + 24 + 4) + \
            struct.pack(e + "HHII", 0x0202, 4, 1, len(thumb)) + struct.pack(e + "I", 0)
        tiff = tiff[:next_at] + struct.pack(e + "I", ifd1) + tiff[next_at + 4:] + ifd1_bytes + thumb
        data2 = mt.insert_jpeg_segments(data, [(0xE1, b"Exif\0\0" + tiff)])
        # the fixture's first Exif segment is ours (inserted before PIL's)
        self.assertEqual(mt.read_meta(data2)["exif"], tiff)
        inp = self.write("in.jpg", data2)
        mask = self.write("mask.png", png_of(mask_img(160, 128, (50, 40, 90, 70))))
        out, _ = self.inpaint(inp, mask, "out.jpg")
        got = mt.read_meta(out)["exif"]
        self.assertNotIn(thumb[20:200], got)
        self.assertEqual(struct.unpack(e + "I", got[next_at:next_at + 4])[0], 0)
        self.assertEqual(Image.open(io.BytesIO(out)).getexif().get(0x010F), "PixmendCam")


class Damaged(Cli):
    def test_bad_icc_and_exif_never_stop_the_repair(self):
        img = photo()
        base = mt.make_image(img, "jpeg")
        bad_icc = bytearray(mt.srgb_icc())
        bad_icc[36:40] = b"xxxx"
        data = mt.insert_jpeg_segments(base, [(0xE1, b"Exif\0\0" + b"XX*\0garbage"),
                                              (0xE2, b"ICC_PROFILE\0\x01\x01" + bytes(bad_icc))])
        inp = self.write("in.jpg", data)
        mask = self.write("mask.png", png_of(mask_img(160, 128, (50, 40, 90, 70))))
        for dst in ("jpg", "png", "webp"):
            out, err = self.inpaint(inp, mask, "out." + dst)
            m = mt.read_meta(out)
            self.assertIsNone(m["icc"])
            self.assertIsNone(m["exif"])
            self.assertEqual(err.count("metadata_dropped"), 2, err)
        # A PNG whose iCCP does not inflate, and an ICC profile split into pieces with one missing.
        png = mt.insert_png_chunks(png_of(img), [(b"iCCP", b"ICC\0\0" + b"\x78\x9cnot zlib")])
        out, err = self.inpaint(self.write("in.png", png), mask, "out2.png")
        self.assertIsNone(mt.read_meta(out)["icc"])
        self.assertIn("metadata_dropped", err)
        icc = mt.srgb_icc()
        data = mt.insert_jpeg_segments(base, [(0xE2, b"ICC_PROFILE\0\x01\x02" + icc[:300])])
        out, err = self.inpaint(self.write("in2.jpg", data), mask, "out3.jpg")
        self.assertIsNone(mt.read_meta(out)["icc"])
        self.assertIn("ICC profile is damaged", err)


class Deep(Cli):
    def test_16bit_png_exact_outside_the_mask(self):
        rng = np.random.default_rng(3)
        base = skdata.astronaut()[100:196, 100:228].astype(np.uint32) * 257
        img16 = (base + rng.integers(0, 257, base.shape)).clip(0, 65535).astype(np.uint16)
        for kind, arr, ext in (("rgb", img16[:, :, ::-1], ".png"), ("gray", img16[:, :, 1], ".png")):
            with self.subTest(kind=kind):
                inp = self.path("in16_" + kind + ext)
                self.assertTrue(cv2.imwrite(inp, arr))
                box = (30, 20, 70, 50)
                mask = self.write("mask.png", png_of(mask_img(128, 96, box)))
                out, _ = self.inpaint(inp, mask, "out16_%s.png" % kind)
                got = cv2.imread(self.path("out16_%s.png" % kind), cv2.IMREAD_UNCHANGED)
                self.assertEqual(got.dtype, np.uint16)
                self.assertEqual(got.shape, arr.shape)
                keep = np.ones(arr.shape[:2], bool)
                keep[box[1]:box[3], box[0]:box[2]] = False
                self.assertTrue((got[keep] == arr[keep]).all(), "16-bit samples changed outside the mask")
                self.assertFalse((got[~keep] == arr[~keep]).all(), "the mask was not filled")
                out, err = self.inpaint(inp, mask, "out16_%s.jpg" % kind, "-v")
                self.assertIn("8 bits", err)


class Batch(Cli):
    def test_batch_keeps_metadata_and_blocks(self):
        icc = mt.srgb_icc()
        src = os.path.join(self.dir, "photos")
        os.mkdir(src)
        befores = {}
        for i, name in enumerate(("a.jpg", "b.png")):
            fmt = "jpeg" if name.endswith(".jpg") else "png"
            data = mt.make_image(photo(160 - 16 * i, 128), fmt, icc=icc, exif=mt.exif_bytes(gps=True),
                                 xmp=mt.XMP, dpi=(200, 200), quality=88)
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
            befores[name] = data
        mask = self.write("mask.png", png_of(mask_img(144, 128, (20, 20, 50, 50))))
        for extra, gps in (([], True), (["--strip-gps"], False)):
            out_dir = os.path.join(self.dir, "out%d" % gps)
            r = subprocess.run([PIXMEND, "inpaint", "--batch", src, mask, "-o", out_dir, "--mask-resize",
                                "--quiet"] + extra, capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            for name, data in befores.items():
                with self.subTest(image=name, strip_gps=not gps):
                    with open(os.path.join(out_dir, name), "rb") as f:
                        out = f.read()
                    m = mt.read_meta(out)
                    self.assertEqual(m["icc"], icc)
                    self.assertEqual(m["xmp"], mt.XMP)
                    self.assertAlmostEqual(mt.dpi_of(m)[0], 200, delta=0.05)
                    ex = Image.open(io.BytesIO(out)).getexif()
                    self.assertEqual(ex.get(0x010F), "PixmendCam")
                    self.assertEqual(bool(ex.get_ifd(0x8825)), gps)
                    if name.endswith(".jpg"):  # the blocks far from the mask are the input's
                        a = np.asarray(Image.open(io.BytesIO(out))).astype(int)
                        b = np.asarray(Image.open(io.BytesIO(data))).astype(int)
                        far = np.ones(a.shape[:2], bool)
                        far[0:80, 0:80] = False
                        self.assertTrue((a[far] == b[far]).all())


class Colorize(Cli):
    def test_colorize_keeps_metadata(self):
        try:
            import torch  # noqa: F401
        except ImportError:
            self.skipTest("python3-torch is needed to write a small DDColor checkpoint")
        src = os.environ.get("PM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
        ckpt = self.path("dd.pth")
        subprocess.run([sys.executable, os.path.join(src, "tests", "golden_ddcolor", "make_test_ckpt.py"), ckpt],
                       check=True, capture_output=True, timeout=300)
        icc = mt.srgb_icc()
        data = mt.make_image(photo(96, 64).convert("L").convert("RGB"), "jpeg", icc=icc,
                             exif=mt.exif_bytes(orientation=6), xmp=mt.XMP, dpi=(150, 150))
        inp = self.write("old.jpg", data)
        for ext in ("jpg", "png", "webp"):
            with self.subTest(out=ext):
                out = self.path("c." + ext)
                r = subprocess.run([PIXMEND, "colorize", inp, "-o", out, "--model", ckpt, "--input-size", "64",
                                    "--quiet"], capture_output=True, text=True, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                with open(out, "rb") as f:
                    res = f.read()
                m = mt.read_meta(res)
                self.assertEqual(m["icc"], icc)
                self.assertEqual(m["xmp"], mt.XMP)
                im = Image.open(io.BytesIO(res))
                self.assertEqual(im.size, (64, 96))  # the rotation was applied ...
                self.assertEqual(im.getexif().get(0x0112), 1)  # ... and the tag reset
                self.assertEqual(im.getexif().get(0x010F), "PixmendCam")
                if ext != "webp":
                    self.assertAlmostEqual(mt.dpi_of(m)[0], 150, delta=0.05)  # pHYs counts whole pixels per metre


def imcu_region(mask, hs, vs):
    """Pixels allowed to change: the iMCUs (8*hs x 8*vs) that hold a masked
    pixel, grown by the 1-pixel reach of chroma upsampling where subsampled."""
    h, w = mask.shape
    cw, ch = 8 * hs, 8 * vs
    allow = np.zeros((h, w), bool)
    ys, xs = np.nonzero(mask)
    for my, mx in set(zip(ys // ch, xs // cw)):
        y0, x0 = my * ch - (1 if vs > 1 else 0), mx * cw - (1 if hs > 1 else 0)
        allow[max(0, y0):my * ch + ch + (1 if vs > 1 else 0), max(0, x0):mx * cw + cw + (1 if hs > 1 else 0)] = True
    return allow


class JpegBlocks(Cli):
    def test_blocks_outside_the_repair_are_kept(self):
        photos = {"astronaut": skdata.astronaut(), "coffee": skdata.coffee()[:392, :584]}
        sampling = {0: (1, 1), 1: (2, 1), 2: (2, 2)}  # PIL: 4:4:4, 4:2:2, 4:2:0 -> (hs, vs)
        for name, arr in photos.items():
            h, w = arr.shape[:2]
            masks = {
                "aligned": (64, 48, 128, 112),    # on 16-px iMCU boundaries
                "unaligned": (37, 61, 101, 90),   # not on any block boundary
            }
            for sub, (hs, vs) in sampling.items():
                for prog in (False, True):
                    data = mt.make_image(Image.fromarray(arr), "jpeg", quality=85, subsampling=sub,
                                         progressive=prog)
                    inp = self.write("%s.jpg" % name, data)
                    before = np.asarray(Image.open(io.BytesIO(data))).astype(int)
                    for mname, box in masks.items():
                        with self.subTest(photo=name, sampling=sub, progressive=prog, mask=mname):
                            m = np.zeros((h, w), np.uint8)
                            m[box[1]:box[3], box[0]:box[2]] = 255
                            mpath = self.write("m.png", png_of(Image.fromarray(m)))
                            out, _ = self.inpaint(inp, mpath, "out.jpg")
                            o = Image.open(io.BytesIO(out))
                            self.assertEqual(bool(o.info.get("progressive")), prog)
                            after = np.asarray(o).astype(int)
                            allow = imcu_region(m > 0, hs, vs)
                            diff = (after != before).any(axis=2)
                            self.assertEqual(int((diff & ~allow).sum()), 0,
                                             "decoded output differs outside the re-encoded blocks")
                            self.assertTrue(diff[m > 0].any(), "the repair is missing")
                            # a plain re-encode changes pixels everywhere
                            out2, _ = self.inpaint(inp, mpath, "re.jpg", "--jpeg-reencode", "-q", "85")
                            re = np.asarray(Image.open(io.BytesIO(out2))).astype(int)
                            self.assertTrue(((re != before).any(axis=2) & ~allow).sum() > 1000)


if __name__ == "__main__":
    unittest.main(verbosity=1)
