"""Hostile uploads: bombs, lies about sizes, slow clients, broken framing.
Every case must be answered (or cut off) in bounded time, and the server
must keep serving others afterwards."""
import os
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import (ServerCase, job_files, json_body, multipart, png_bytes, raw_exchange, status_of,  # noqa: E402
                    test_image, test_mask)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(w, h):
    """A valid PNG of w x h gray pixels, all zero: tiny file, huge image."""
    row = b"\0" + b"\0" * w
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def png_header_only(w, h):
    """A PNG whose header claims w x h but whose data is a few bytes."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def jpeg_claiming(w, h):
    """A real small JPEG whose SOF0 marker is patched to claim w x h."""
    import io
    b = io.BytesIO()
    test_image().save(b, "JPEG", quality=80)
    data = bytearray(b.getvalue())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def request_head(path, ctype, length=None, chunked=False):
    h = "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n" % (path, ctype)
    if chunked:
        h += "Transfer-Encoding: chunked\r\n"
    if length is not None:
        h += "Content-Length: %d\r\n" % length
    return (h + "\r\n").encode()


class Hostile(ServerCase):
    server_args = ["--max-upload", "1M", "--request-timeout", "1.5", "--threads", "1"]

    def tearDown(self):
        # whatever happened, the server still answers
        self.assertEqual(self.srv.get("/healthz", timeout=10).status, 200)

    def test_decompression_bomb_png(self):
        bomb = png_bomb(8000, 8000)  # 64 MP of zeros in a few tens of KB
        self.assertLess(len(bomb), 200 * 1024)
        t0 = time.time()
        r = self.srv.submit(bomb, png_bytes(test_mask()))
        self.assertEqual(r.status, 413, r)
        self.assertIn("8000x8000", r.json()["error"]["message"])
        self.assertLess(time.time() - t0, 5)
        mem = self.srv.get("/healthz").json()["memory"]
        self.assertLess(mem["pm_mem_peak"], 64 * 1024 * 1024, "a pixel buffer for the bomb was allocated")

    def test_header_claims_huge_image(self):
        for data, name in ((png_header_only(100000, 100000), "a.png"), (jpeg_claiming(60000, 60000), "a.jpg")):
            with self.subTest(kind=name):
                r = self.srv.post_form("/api/v1/jobs", {}, job_files(data, self.mask_png, image_name=name))
                self.assertEqual(r.status, 413, r)
                self.assertEqual(r.json()["error"]["code"], "too_large")

    def test_wrong_types(self):
        for data in (b"GIF89a" + b"\0" * 100, b"%PDF-1.4\n" + b"x" * 100, os.urandom(2048), b"\0"):
            with self.subTest(head=data[:6]):
                self.assertEqual(self.srv.submit(data, self.mask_png).status, 415)

    def test_truncated_at_every_tenth(self):
        for cut in range(1, 10):
            n = len(self.img_png) * cut // 10
            with self.subTest(bytes=n):
                r = self.srv.submit(self.img_png[:n], self.mask_png)
                self.assertIn(r.status, (415,), r)

    def test_zero_byte_parts(self):
        self.assertEqual(self.srv.submit(b"", b"").status, 400)
        self.assertEqual(self.srv.submit(self.img_png, b"").status, 400)
        r = self.srv.request("POST", "/api/v1/jobs", body=b"",
                             headers={"Content-Type": "multipart/form-data; boundary=x"})
        self.assertEqual(r.status, 400)

    def test_mask_mismatch(self):
        r = self.srv.submit(self.img_png, png_bytes(test_mask(65, 48)))
        self.assertEqual(r.status, 422)

    def test_content_length_far_beyond_limit(self):
        ctype, _ = multipart()
        out, secs, _ = raw_exchange(self.srv.port, [request_head("/api/v1/jobs", ctype, 10 ** 10), b"x" * 4096])
        self.assertEqual(status_of(out), 413, out[:200])
        self.assertIn(b"Connection: close", out)
        self.assertIn("1048576", json_body(out)["error"]["message"])
        self.assertLess(secs, 5)

    def test_oversized_body_answer_is_not_reset(self):
        # a client that sends a whole body over the limit before reading still
        # gets the 413 (the server drains instead of resetting the connection)
        for _ in range(5):
            r = self.srv.submit(os.urandom(3 << 20), self.mask_png)
            self.assertEqual(r.status, 413, r)

    def test_chunked_body_beyond_limit(self):
        ctype, _ = multipart()
        chunk = b"4000\r\n" + b"z" * 0x4000 + b"\r\n"
        out, secs, _ = raw_exchange(self.srv.port, [request_head("/api/v1/jobs", ctype, chunked=True)] +
                                    [chunk] * 100)  # 1.6 MB > 1 MiB
        self.assertEqual(status_of(out), 413, out[:200])
        self.assertLess(secs, 10)

    def test_many_parts(self):
        ctype, body = multipart({"p%d" % i: "x" for i in range(40)}, job_files(self.img_png, self.mask_png))
        r = self.srv.request("POST", "/api/v1/jobs", body=body, headers={"Content-Type": ctype})
        self.assertEqual(r.status, 400)

    def test_huge_part_headers(self):
        b = "B0undary"
        body = ("--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nX-Pad: %s\r\n\r\n"
                % (b, "p" * 20000)).encode() + self.img_png + ("\r\n--%s--\r\n" % b).encode()
        r = self.srv.request("POST", "/api/v1/jobs", body=body,
                             headers={"Content-Type": "multipart/form-data; boundary=" + b})
        self.assertEqual(r.status, 400)
        self.assertIn("headers", r.json()["error"]["message"])

    def test_body_shorter_than_content_length(self):
        ctype, body = multipart({}, job_files(self.img_png, self.mask_png))
        t0 = time.time()
        out, secs, _ = raw_exchange(self.srv.port, [request_head("/api/v1/jobs", ctype, len(body) + 5000), body],
                                    read_timeout=15)
        # the client stops sending but keeps the connection open: the server
        # answers 408 once the request timeout passes
        self.assertEqual(status_of(out), 408, out[:300])
        self.assertLess(time.time() - t0, 8)

    def test_slow_body_trickle_is_cut_off(self):
        ctype, body = multipart({}, job_files(self.img_png, self.mask_png))
        parts = [request_head("/api/v1/jobs", ctype, len(body))] + [body[i:i + 1] for i in range(200)]
        t0 = time.time()
        out, secs, err = raw_exchange(self.srv.port, parts, delay=0.1, read_timeout=15)
        self.assertEqual(status_of(out), 408, out[:300])
        self.assertIn("too slowly", json_body(out)["error"]["message"])
        self.assertLess(time.time() - t0, 8)  # 1.5 s timeout, checked every 0.25 s

    def test_slow_headers_trickle_is_cut_off(self):
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 200
        t0 = time.time()
        out, secs, err = raw_exchange(self.srv.port, [head[i:i + 1] for i in range(len(head))], delay=0.05,
                                      read_timeout=15)
        self.assertNotEqual(status_of(out), 200)
        self.assertLess(time.time() - t0, 8)

    def test_others_served_while_a_client_trickles(self):
        import threading
        ctype, body = multipart({}, job_files(self.img_png, self.mask_png))
        parts = [request_head("/api/v1/jobs", ctype, len(body))] + [body[i:i + 1] for i in range(30)]
        t = threading.Thread(target=raw_exchange, args=(self.srv.port, parts, 0.1, 15), daemon=True)
        t.start()
        time.sleep(0.3)
        t0 = time.time()
        r = self.srv.post_form("/api/v1/inpaint", {}, job_files(self.img_png, self.mask_png))
        self.assertEqual(r.status, 200)
        self.assertLess(time.time() - t0, 3)
        t.join(15)

    def test_garbage_request_line(self):
        out, secs, _ = raw_exchange(self.srv.port, [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200)])
        self.assertLess(secs, 8)
        self.assertNotEqual(status_of(out), 200)


if __name__ == "__main__":
    pmtest.run_tests(__name__)
