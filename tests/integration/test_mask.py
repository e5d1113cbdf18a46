"""Masks and formats over the API: mask_dilate (grow and shrink, journaled),
the result's format following the input's when `format` is not given, and
the refusals of masks that cannot be used (another size, empty, everything)."""
import io
import os
import sqlite3
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pmtest import Server, ServerCase, decode, job_files, png_bytes, test_image, test_mask  # noqa: E402

from PIL import Image, ImageDraw  # noqa: E402

W, H = 96, 72
BOX = (36, 26, 59, 45)  # inclusive, as PIL draws it
RED, BLUE, GREY = (230, 20, 30), (20, 40, 230), (128, 128, 128)


def ringed_photo():
    """Grey noise with a red ring 3 px wide just outside BOX and blue inside it."""
    im = Image.new("RGB", (W, H))
    px = im.load()
    for y in range(H):
        for x in range(W):
            v = 110 + (x * 7 + y * 13) % 37
            px[x, y] = (v, v, v)
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = BOX
    d.rectangle((x0 - 3, y0 - 3, x1 + 3, y1 + 3), fill=RED)
    d.rectangle(BOX, fill=BLUE)
    return im


def box_mask():
    return png_bytes(test_mask(W, H, BOX))


def count(im, colour, region=None):
    im = im.convert("RGB")
    x0, y0, x1, y1 = region or (0, 0, im.width - 1, im.height - 1)
    px = im.load()
    return sum(1 for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)
               if all(abs(a - b) < 40 for a, b in zip(px[x, y], colour)))


def encoded(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


class MaskDilateTest(ServerCase):
    def setUp(self):
        self.photo = png_bytes(ringed_photo())

    def inpaint(self, **fields):
        r = self.srv.post_form("/api/v1/inpaint", fields, job_files(self.photo, box_mask()))
        self.assertEqual(r.status, 200, r)
        return decode(r.body)

    def test_grow_reaches_the_ring(self):
        src = ringed_photo()
        x0, y0, x1, y1 = BOX
        ring = [(x0 - 1, y0 + 4), (x1 + 3, y1 - 2), (x0 + 5, y1 + 2), (x0 - 3, y0 - 3), (x1 + 3, y1 + 3)]
        plain = self.inpaint().convert("RGB")
        for p in ring:  # without growing, the ring is outside the mask: unchanged
            self.assertEqual(plain.getpixel(p), src.getpixel(p), p)
        grown = self.inpaint(mask_dilate="5").convert("RGB")
        self.assertEqual(count(grown, RED), 0)  # the ring is inside the grown mask and filled from grey
        self.assertEqual(count(grown, BLUE), 0)
        # The element is a disc: grown by 4, the ring's outer corners (3, 3)
        # diagonally from the box's, 4.24 px away, stay outside the mask.
        four = self.inpaint(mask_dilate="4").convert("RGB")
        corners = [(x0 - 3, y0 - 3), (x1 + 3, y0 - 3), (x0 - 3, y1 + 3), (x1 + 3, y1 + 3)]
        for p in corners:
            self.assertEqual(four.getpixel(p), RED, p)
        for p in ((x0 - 3, y0 - 2), (x1 + 3, y0), (x0 + 4, y1 + 3)):  # 3.6 px or nearer: filled
            self.assertNotEqual(four.getpixel(p), RED, p)

    def test_shrink_keeps_the_edge(self):
        out = self.inpaint(mask_dilate="-3")
        src = ringed_photo()
        inner = (BOX[0] + 3, BOX[1] + 3, BOX[2] - 3, BOX[3] - 3)
        # The band 3 px wide inside the box edge is outside the shrunk mask: unchanged.
        x0, y0, x1, y1 = BOX
        for (x, y) in ((x0, y0), (x0 + 2, y0 + 5), (x1, y1), (x1 - 2, y0 + 7), (x0 + 9, y1 - 1)):
            self.assertEqual(out.convert("RGB").getpixel((x, y)), src.getpixel((x, y)), (x, y))
        # The engine saw exactly the box shrunk by 3 px (a disc of 3 leaves a
        # rectangle's erosion rectangular): the same result as that mask sent
        # as a file. (What fills it is the engine's choice: a textured fill
        # rightly copies the blue band around the smaller hole.)
        r = self.srv.post_form("/api/v1/inpaint", {}, job_files(self.photo, png_bytes(test_mask(W, H, inner))))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(out.convert("RGB").tobytes(), decode(r.body).convert("RGB").tobytes())

    def test_async_job_is_journaled_and_shown(self):
        r = self.srv.submit(self.photo, box_mask(), mask_dilate="7")
        self.assertEqual(r.status, 202, r)
        jid = r.json()["id"]
        done = self.srv.wait_job(jid)
        self.assertEqual(done["state"], "done", done)
        self.assertEqual(done["mask_dilate"], 7)
        db = sqlite3.connect(os.path.join(self.srv.data_dir, "journal.sqlite"))
        try:
            (v,) = db.execute("SELECT mask_dilate FROM jobs WHERE id=?", (jid,)).fetchone()
        finally:
            db.close()
        self.assertEqual(v, 7)
        res = self.srv.get("/api/v1/jobs/%s/result" % jid)
        self.assertEqual(count(decode(res.body), RED), 0)

    def test_bad_values_are_400(self):
        for v in ("300", "-257", "big", "1.5"):
            r = self.srv.submit(self.photo, box_mask(), mask_dilate=v)
            self.assertEqual(r.status, 400, (v, r))
            msg = r.json()["error"]["message"]
            self.assertIn("mask_dilate must be a whole number of pixels from -256 to 256", msg)
            self.assertIn(v, msg)

    def test_bound_itself_is_accepted(self):
        r = self.srv.submit(self.photo, box_mask(), mask_dilate="-256")
        # Shrunk by 256 px, a 24x20 box selects nothing: refused, with the reason.
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json()["error"]["code"], "empty_mask")
        self.assertIn("shrunk by 256 px", r.json()["error"]["message"])


class RecoveryTest(unittest.TestCase):
    """A queued job's mask_dilate survives a kill -9 and a restart."""

    def test_restart_runs_with_the_journaled_value(self):
        with tempfile.TemporaryDirectory(prefix="pmtest-mask-") as tmp:
            data = os.path.join(tmp, "data")
            srv = Server(["--job-delay-ms", "3000", "--threads", "1"], data_dir=data)
            try:
                r = srv.submit(png_bytes(ringed_photo()), box_mask(), mask_dilate="5")
                self.assertEqual(r.status, 202, r)
                jid = r.json()["id"]
                srv.kill9()
            finally:
                srv.close()
            srv = Server(["--threads", "1"], data_dir=data)
            try:
                done = srv.wait_job(jid, timeout=60)
                self.assertEqual(done["state"], "done", done)
                self.assertEqual(done["mask_dilate"], 5)
                res = srv.get("/api/v1/jobs/%s/result" % jid)
                self.assertEqual(count(decode(res.body), RED), 0)
            finally:
                srv.stop()
                srv.close()


class DefaultFormatTest(ServerCase):
    """No `format`: the result comes back in the input's format."""

    def setUp(self):
        self.im = test_image(W, H)
        self.mask = png_bytes(test_mask(W, H))

    def sync(self, image, name, **fields):
        r = self.srv.post_form("/api/v1/inpaint", fields, job_files(image, self.mask, image_name=name))
        self.assertEqual(r.status, 200, r)
        return r

    def async_(self, image, name, **fields):
        r = self.srv.post_form("/api/v1/jobs", fields, job_files(image, self.mask, image_name=name))
        self.assertEqual(r.status, 202, r)
        done = self.srv.wait_job(r.json()["id"])
        self.assertEqual(done["state"], "done", done)
        return done, self.srv.get("/api/v1/jobs/%s/result" % done["id"])

    def test_png_in_png_out(self):
        r = self.sync(png_bytes(self.im), "a.png")
        self.assertEqual(r.header("Content-Type"), "image/png")
        done, res = self.async_(png_bytes(self.im), "a.png")
        self.assertEqual(done["format"], "png")
        self.assertEqual(decode(res.body).format, "PNG")

    def test_jpeg_in_jpeg_out_at_its_quality(self):
        for q in (40, 75, 90):
            src = encoded(self.im, "JPEG", quality=q)
            tables = decode(src).quantization
            r = self.sync(src, "a.jpg")
            self.assertEqual(r.header("Content-Type"), "image/jpeg")
            out = decode(r.body)
            self.assertEqual(out.format, "JPEG")
            # The estimate is exact for libjpeg's tables: the very same tables come back.
            self.assertEqual(out.quantization, tables, q)
            done, res = self.async_(src, "a.jpg")
            self.assertEqual(done["format"], "jpeg")
            self.assertEqual(res.header("Content-Type"), "image/jpeg")
            self.assertEqual(decode(res.body).quantization, tables)
            day_dir = os.path.join(self.srv.data_dir, "outputs")
            names = [f for _, _, fs in os.walk(day_dir) for f in fs]
            self.assertIn(done["id"] + ".jpg", names)
        # A 90-quality result is much smaller than a PNG of it.
        self.assertLess(len(r.body), len(png_bytes(decode(r.body))))

    def test_webp_in_webp_out(self):
        for lossless in (False, True):
            src = encoded(self.im, "WEBP", lossless=lossless, quality=80)
            r = self.sync(src, "a.webp")
            self.assertEqual(r.header("Content-Type"), "image/webp")
            self.assertEqual(r.body[12:16], b"VP8L" if lossless else b"VP8 ", lossless)
            done, res = self.async_(src, "a.webp")
            self.assertEqual(done["format"], "webp")
            self.assertEqual(decode(res.body).format, "WEBP")

    def test_format_overrides(self):
        src = encoded(self.im, "JPEG", quality=60)
        r = self.sync(src, "a.jpg", format="png")
        self.assertEqual(r.header("Content-Type"), "image/png")
        r = self.sync(png_bytes(self.im), "a.png", format="jpeg", quality="30")
        self.assertEqual(r.header("Content-Type"), "image/jpeg")
        self.assertEqual(decode(r.body).quantization, decode(encoded(self.im, "JPEG", quality=30)).quantization)
        # An explicit quality wins over the estimate.
        r = self.sync(src, "a.jpg", quality="95")
        self.assertEqual(decode(r.body).quantization, decode(encoded(self.im, "JPEG", quality=95)).quantization)


class BadMaskTest(ServerCase):
    def check(self, r, status, code, words):
        self.assertEqual(r.status, status, r)
        e = r.json()["error"]
        self.assertEqual(e["code"], code, e)
        for w in words:
            self.assertIn(w, e["message"])

    def test_other_size_names_both(self):
        small = png_bytes(test_mask(32, 24))
        for route in ("/api/v1/jobs", "/api/v1/inpaint"):
            r = self.srv.post_form(route, {}, job_files(self.img_png, small))
            self.check(r, 422, "mask_mismatch", ["32x24", "64x48", "mask_resize"])

    def test_empty_mask(self):
        empty = png_bytes(Image.new("L", (64, 48), 0))
        for route in ("/api/v1/jobs", "/api/v1/inpaint"):
            r = self.srv.post_form(route, {}, job_files(self.img_png, empty))
            self.check(r, 422, "empty_mask", ["the mask selects nothing"])
        # An RGBA mask that is transparent black everywhere is empty as well.
        clear = png_bytes(Image.new("RGBA", (64, 48), (0, 0, 0, 0)))
        self.check(self.srv.submit(self.img_png, clear), 422, "empty_mask", ["the mask selects nothing"])

    def test_mask_of_everything_is_refused_clearly(self):
        full = png_bytes(Image.new("L", (64, 48), 255))
        r = self.srv.post_form("/api/v1/inpaint", {}, job_files(self.img_png, full))
        self.check(r, 422, "no_source", ["nothing to copy from", "100.0%", "shrink the mask"])
        r = self.srv.submit(self.img_png, full)
        self.assertEqual(r.status, 202, r)
        done = self.srv.wait_job(r.json()["id"])
        self.assertEqual(done["state"], "failed", done)
        self.assertEqual(done["error"]["code"], "no_source")
        self.assertIn("nothing to copy from", done["error"]["message"])
        # Grown to cover everything: the same refusal.
        r = self.srv.post_form("/api/v1/inpaint", {"mask_dilate": "200"}, job_files(self.img_png, self.mask_png))
        self.check(r, 422, "no_source", ["nothing to copy from"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
