"""The service keeps the photograph: EXIF, ICC, XMP and DPI from input to
result (synchronous and queued jobs), the fields strip_metadata, strip_gps
and jpeg_reencode, and JPEG results that keep the blocks outside the repair."""
import io
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "meta"))
import pmtest  # noqa: E402,F401
from pmtest import ServerCase, png_bytes, test_mask  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

import metatools as mt  # noqa: E402


class Metadata(ServerCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        img = Image.fromarray(skdata.astronaut()[64:192, 96:256])
        cls.icc = mt.srgb_icc()
        cls.jpeg = mt.make_image(img, "jpeg", icc=cls.icc, exif=mt.exif_bytes(gps=True), xmp=mt.XMP,
                                 dpi=(240, 240), quality=90)
        cls.mask = png_bytes(test_mask(160, 128, (40, 40, 70, 70)))

    def files(self):
        return {"image": ("photo.jpg", self.jpeg, "image/jpeg"), "mask": ("mask.png", self.mask, "image/png")}

    def sync(self, **fields):
        r = self.srv.post_form("/api/v1/inpaint", fields, self.files())
        self.assertEqual(r.status, 200, r.body[:300])
        return r.body

    def test_kept_by_default(self):
        for fmt in ("jpeg", "png", "webp"):
            with self.subTest(format=fmt):
                out = self.sync(format=fmt)
                m = mt.read_meta(out)
                self.assertEqual(m["icc"], self.icc)
                self.assertEqual(m["xmp"], mt.XMP)
                ex = Image.open(io.BytesIO(out)).getexif()
                self.assertEqual(ex.get(0x010F), "PixmendCam")
                self.assertTrue(ex.get_ifd(0x8825))
                if fmt != "webp":
                    self.assertAlmostEqual(mt.dpi_of(m)[0], 240, delta=0.01)

    def test_strip_fields(self):
        out = self.sync(format="jpeg", strip_gps="1")
        ex = Image.open(io.BytesIO(out)).getexif()
        self.assertEqual(ex.get(0x010F), "PixmendCam")
        self.assertFalse(ex.get_ifd(0x8825))
        out = self.sync(format="png", strip_metadata="1")
        m = mt.read_meta(out)
        self.assertEqual((m["icc"], m["exif"], m["xmp"], m["res"]), (None, None, None, None))
        r = self.srv.post_form("/api/v1/inpaint", {"strip_gps": "maybe"}, self.files())
        self.assertEqual(r.status, 400)
        self.assertIn("strip_gps must be 1 or 0", r.json()["error"]["message"])

    def test_jpeg_blocks_kept_and_reencode(self):
        before = np.asarray(Image.open(io.BytesIO(self.jpeg))).astype(int)
        far = np.ones(before.shape[:2], bool)
        far[24:88, 24:88] = False  # the mask's iMCUs (4:2:0) and their fringe
        kept = np.asarray(Image.open(io.BytesIO(self.sync(format="jpeg")))).astype(int)
        self.assertTrue((kept[far] == before[far]).all())
        re = np.asarray(Image.open(io.BytesIO(self.sync(format="jpeg", jpeg_reencode="1", quality="90")))).astype(int)
        self.assertFalse((re[far] == before[far]).all())

    def test_png_text_chunks(self):
        texts = [("tEXt", "parameters", "a lighthouse, Steps: 30, Seed: 7"), ("zTXt", "Comment", "z" * 300),
                 ("iTXt", "Title", "ph\u00e4re")]
        img = Image.fromarray(skdata.astronaut()[64:192, 96:256])
        png = mt.make_image(img, "png", texts=texts)
        files = {"image": ("photo.png", png, "image/png"), "mask": ("mask.png", self.mask, "image/png")}
        r = self.srv.post_form("/api/v1/inpaint", {"format": "png"}, files)
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual(mt.read_meta(r.body)["text"], mt.read_meta(png)["text"])
        got = Image.open(io.BytesIO(r.body)).text
        for _, k, v in texts:
            self.assertEqual(got[k], v)
        r = self.srv.post_form("/api/v1/inpaint", {"format": "png", "strip_metadata": "1"}, files)
        self.assertEqual(mt.read_meta(r.body)["text"], [])

    def test_queued_job_keeps_and_strips(self):
        r = self.srv.post_form("/api/v1/jobs", {"format": "webp", "strip_gps": "1"}, self.files())
        self.assertEqual(r.status, 202, r.body[:300])
        jid = r.json()["id"]
        st = self.srv.wait_job(jid)
        self.assertEqual(st["state"], "done", st)
        self.assertEqual((st["strip_gps"], st["strip_metadata"], st["jpeg_reencode"]), (True, False, False))
        out = self.srv.get("/api/v1/jobs/%s/result" % jid).body
        m = mt.read_meta(out)
        self.assertEqual(m["icc"], self.icc)
        ex = Image.open(io.BytesIO(out)).getexif()
        self.assertEqual(ex.get(0x010F), "PixmendCam")
        self.assertFalse(ex.get_ifd(0x8825))


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=1)
