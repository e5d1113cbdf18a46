"""Every error status of the API, with JSON {"error": {"code", "message"}} bodies
whose messages say what was wrong."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import ServerCase, Server, job_files, multipart, png_bytes, test_image, test_mask, wait_until  # noqa: E402

UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


class Errors(ServerCase):
    server_args = ["--max-upload", "256K", "--max-pixels", "20000", "--max-side", "300", "--threads", "1"]

    def assertError(self, r, status, code=None, contains=()):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        err = r.json()["error"]
        self.assertIsInstance(err["message"], str)
        self.assertGreater(len(err["message"]), 10)
        if code:
            self.assertEqual(err["code"], code, err)
        for c in contains:
            self.assertIn(c, err["message"])
        return err

    # ---- 400
    def test_400_missing_image(self):
        self.assertError(self.srv.post_form("/api/v1/jobs", {"priority": "3"}, {}), 400, "bad_request", ["image"])

    def test_400_unknown_and_duplicate_fields(self):
        self.assertError(self.srv.submit(self.img_png, self.mask_png, prority="3"), 400, "bad_request", ["prority"])
        ctype, body = multipart({"priority": "1"}, job_files(self.img_png, self.mask_png))
        body = body.replace(b"--pmtestBOUNDARYx9--", b'--pmtestBOUNDARYx9\r\nContent-Disposition: form-data; '
                            b'name="priority"\r\n\r\n2\r\n--pmtestBOUNDARYx9--')
        r = self.srv.request("POST", "/api/v1/jobs", body=body, headers={"Content-Type": ctype})
        self.assertError(r, 400, "bad_request", ["twice"])

    def test_400_bad_values(self):
        cases = [({"priority": "10"}, "priority"), ({"priority": "x"}, "priority"), ({"format": "gif"}, "format"),
                 ({"hd_strategy": "zoom"}, "hd_strategy"), ({"mask_resize": "maybe"}, "mask_resize"),
                 ({"quality": "0"}, "quality"), ({"quality": "101"}, "quality"), ({"task": "upscale"}, "task"),
                 ({"model": "../etc"}, "model")]
        for fields, word in cases:
            with self.subTest(fields=fields):
                self.assertError(self.srv.submit(self.img_png, self.mask_png, **fields), 400, "bad_request", [word])

    def test_400_inpaint_needs_mask(self):
        self.assertError(self.srv.submit(self.img_png), 400, "bad_request", ["mask"])

    def test_400_route_contradicts_task(self):
        r = self.srv.post_form("/api/v1/inpaint", {"task": "colorize"}, job_files(self.img_png, self.mask_png))
        self.assertError(r, 400, "bad_request", ["contradicts"])

    def test_400_empty_image(self):
        self.assertError(self.srv.submit(b"", self.mask_png), 400, "empty_input", ["0 bytes"])

    def test_400_malformed_multipart(self):
        ctype, body = multipart({}, job_files(self.img_png, self.mask_png))
        r = self.srv.request("POST", "/api/v1/jobs", body=body[:-40], headers={"Content-Type": ctype})
        self.assertError(r, 400, "bad_request", ["boundary"])

    # ---- 404
    def test_404_unknown_job(self):
        for path in ("/api/v1/jobs/" + UNKNOWN_ID, "/api/v1/jobs/%s/result" % UNKNOWN_ID, "/api/v1/jobs/nothex"):
            with self.subTest(path=path):
                self.assertError(self.srv.get(path), 404, "job_not_found")
        self.assertError(self.srv.request("DELETE", "/api/v1/jobs/" + UNKNOWN_ID), 404, "job_not_found")

    def test_404_unknown_model(self):
        self.assertError(self.srv.submit(self.img_png, self.mask_png, model="lama"), 404, "model_not_found",
                         ["lama", "patchmatch"])
        r = self.srv.post_form("/api/v1/colorize", {}, job_files(self.img_png))
        self.assertError(r, 404, "model_not_found", ["--model ddcolor"])

    def test_404_unknown_route(self):
        self.assertError(self.srv.get("/api/v1/nothing"), 404, "not_found")

    # ---- 405
    def test_405_with_allow(self):
        for method, path, allow in (("PUT", "/api/v1/queue", "GET"), ("GET", "/api/v1/jobs", "POST"),
                                    ("POST", "/api/v1/jobs/" + UNKNOWN_ID, "GET, DELETE"),
                                    ("GET", "/api/v1/inpaint", "POST")):
            with self.subTest(method=method, path=path):
                r = self.srv.request(method, path, body=b"" if method in ("PUT", "POST") else None)
                self.assertError(r, 405, "method_not_allowed")
                self.assertEqual(r.header("Allow"), allow)

    # ---- 413
    def test_413_body_too_large_names_limit(self):
        big = os.urandom(300 * 1024)
        err = self.assertError(self.srv.submit(big, self.mask_png), 413, "too_large", ["262144", "--max-upload"])
        self.assertIn("bytes", err["message"])

    def test_413_too_many_pixels_names_limit(self):
        img = png_bytes(test_image(200, 150))  # 30000 pixels > 20000
        err = self.assertError(self.srv.submit(img, png_bytes(test_mask(200, 150))), 413, "too_large")
        self.assertIn("200x150", err["message"])

    def test_413_side_too_long(self):
        img = png_bytes(test_image(400, 10))
        self.assertError(self.srv.submit(img, png_bytes(test_mask(400, 10))), 413, "too_large", ["400"])

    # ---- 415
    def test_415_not_an_image(self):
        self.assertError(self.srv.submit(b"hello, this is text\n" * 10, self.mask_png), 415, "unsupported_format")

    def test_415_truncated(self):
        self.assertError(self.srv.submit(self.img_png[: len(self.img_png) // 2], self.mask_png), 415, "truncated_image",
                         ["truncated"])

    def test_415_damage_inside_the_pixel_data(self):
        # Submission reads only the image's header: a PNG whose chunks are whole
        # (lengths, CRCs) but whose compressed pixels are garbage is accepted
        # and the job fails with the decoder's sentence; /inpaint answers 415.
        import struct
        import zlib
        png = self.img_png
        i = png.index(b"IDAT") - 4
        n = struct.unpack(">I", png[i:i + 4])[0]
        junk = bytes((37 * k + 11) & 0xFF for k in range(n))
        bad = png[:i + 8] + junk + struct.pack(">I", zlib.crc32(b"IDAT" + junk) & 0xFFFFFFFF) + png[i + 12 + n:]
        r = self.srv.submit(bad, self.mask_png)
        self.assertEqual(r.status, 202, r)
        job = self.srv.wait_job(r.json()["id"])
        self.assertEqual(job["state"], "failed", job)
        self.assertEqual(job["error"]["code"], "corrupt_image", job)
        self.assertIn("image:", job["error"]["message"])
        r = self.srv.post_form("/api/v1/inpaint", {}, job_files(bad, self.mask_png))
        self.assertError(r, 415, "corrupt_image", ["image:"])

    def test_415_mask_undecodable_names_mask(self):
        self.assertError(self.srv.submit(self.img_png, b"\x89PNG\r\n\x1a\n" + b"\0" * 30), 415, None, ["mask"])

    def test_415_extension_contradicts_content(self):
        r = self.srv.post_form("/api/v1/jobs", {}, job_files(self.img_png, self.mask_png, image_name="photo.jpg"))
        self.assertError(r, 415, "extension_mismatch")

    def test_415_not_multipart(self):
        r = self.srv.request("POST", "/api/v1/jobs", body=self.img_png, headers={"Content-Type": "image/png"})
        self.assertError(r, 415, "unsupported_media_type", ["multipart/form-data"])

    # ---- 422
    def test_422_mask_size_differs(self):
        small = png_bytes(test_mask(32, 24))
        self.assertError(self.srv.submit(self.img_png, small), 422, "mask_mismatch", ["32x24", "64x48", "mask_resize"])
        r = self.srv.post_form("/api/v1/inpaint", {}, job_files(self.img_png, small))
        self.assertError(r, 422, "mask_mismatch")

    def test_422_mask_covers_everything(self):
        full = png_bytes(test_mask(64, 48, box=(0, 0, 63, 47)))
        r = self.srv.post_form("/api/v1/inpaint", {}, job_files(self.img_png, full))
        self.assertError(r, 422, "no_source")

    # ---- 409
    def test_409_cancel_finished(self):
        jid = self.srv.submit(self.img_png, self.mask_png).json()["id"]
        self.srv.wait_job(jid)
        self.assertError(self.srv.request("DELETE", "/api/v1/jobs/" + jid), 409, "conflict", ["done"])

    def test_rejections_leave_nothing_behind(self):
        before = self.srv.get("/api/v1/stats").json()["jobs"]["submitted"]
        self.srv.submit(b"", self.mask_png)
        self.srv.submit(self.img_png, png_bytes(test_mask(32, 24)))
        self.assertEqual(self.srv.get("/api/v1/stats").json()["jobs"]["submitted"], before)
        leftovers = [f for f in os.listdir(os.path.join(self.srv.data_dir, "inputs"))]
        queued = self.srv.get("/api/v1/queue").json()
        self.assertEqual(len(leftovers), 2 * (len(queued["queued"]) + len(queued["running"])))


class Busy(unittest.TestCase):
    def test_429_queue_full_with_retry_after(self):
        srv = Server(["--queue-max", "2", "--job-delay-ms", "1500", "--threads", "1"])
        try:
            img, mask = png_bytes(test_image()), png_bytes(test_mask())
            first = srv.submit(img, mask).json()["id"]
            wait_until(lambda: srv.job(first)["state"] == "running", what="first job to start")
            self.assertEqual(srv.submit(img, mask).status, 202)
            self.assertEqual(srv.submit(img, mask).status, 202)
            r = srv.submit(img, mask)
            self.assertEqual(r.status, 429, r)
            self.assertEqual(r.json()["error"]["code"], "queue_full")
            self.assertIn("--queue-max", r.json()["error"]["message"])
            self.assertGreaterEqual(int(r.header("Retry-After")), 1)
            # synchronous requests share the bound
            self.assertEqual(srv.post_form("/api/v1/inpaint", {}, job_files(img, mask)).status, 429)
            metrics = srv.get("/metrics").body.decode()
            self.assertIn('pixmend_jobs_rejected_total{reason="queue_full"} 2', metrics)
        finally:
            srv.kill9()
            srv.cleanup()


if __name__ == "__main__":
    pmtest.run_tests(__name__)
