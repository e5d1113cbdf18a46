"""Test harness for `pixmend serve` over loopback.

Starts real servers (random free port: --listen 127.0.0.1:0, the port is read
from the startup line), talks HTTP with http.client and raw sockets, and
WebSocket with a small client written here. Every wait has a deadline so that
a test ends by itself.
"""
import atexit
import base64
import http.client
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from PIL import Image, ImageDraw

PIXMEND = os.environ.get("PIXMEND") or os.path.join(
    os.environ.get("PM_BUILD_DIR", "build"), "pixmend")
SOURCE_DIR = os.environ.get("PM_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
STARTUP_RE = re.compile(r"pixmend serving on https?://([0-9.]+):(\d+) \(models: ([^)]*)\)")


def wait_until(pred, timeout=10.0, step=0.02, what="condition"):
    """Polls pred() until it returns a true value; fails after timeout seconds."""
    end = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > end:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(step)


# ------------------------------------------------------------------ images

def png_bytes(img):
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def test_image(w=64, h=48, seed=0):
    """A small RGB image with structure (stripes and a gradient)."""
    im = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(im)
    for x in range(0, w, 8):
        d.rectangle([x, 0, x + 3, h - 1], fill=(200, (x * 3 + seed * 40) % 256, 60))
    for y in range(0, h, 12):
        d.line([0, y, w - 1, y], fill=(20, 20, (y * 5) % 256))
    return im


def test_mask(w=64, h=48, box=None):
    m = Image.new("L", (w, h), 0)
    box = box or (w // 3, h // 3, w // 2, h // 2)
    ImageDraw.Draw(m).rectangle(box, fill=255)
    return m


def decode(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# ------------------------------------------------------------------ multipart

def multipart(fields=None, files=None, boundary="pmtestBOUNDARYx9"):
    """Encodes a multipart/form-data body; returns (content_type, body)."""
    out = io.BytesIO()
    for name, value in (fields or {}).items():
        out.write(b"--" + boundary.encode() + b"\r\n")
        out.write(('Content-Disposition: form-data; name="%s"\r\n\r\n' % name).encode())
        out.write(str(value).encode() + b"\r\n")
    for name, (filename, data, ctype) in (files or {}).items():
        out.write(b"--" + boundary.encode() + b"\r\n")
        out.write(('Content-Disposition: form-data; name="%s"; filename="%s"\r\n' % (name, filename)).encode())
        out.write(("Content-Type: %s\r\n\r\n" % ctype).encode())
        out.write(data + b"\r\n")
    out.write(b"--" + boundary.encode() + b"--\r\n")
    return "multipart/form-data; boundary=" + boundary, out.getvalue()


def job_files(image=None, mask=None, image_name="image.png", mask_name="mask.png"):
    files = {}
    if image is not None:
        files["image"] = (image_name, image, "image/png")
    if mask is not None:
        files["mask"] = (mask_name, mask, "image/png")
    return files


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


# ------------------------------------------------------------------ server

_live_servers = []


@atexit.register
def _kill_leftovers():
    """No server outlives the test process, whatever failed."""
    for s in _live_servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


class Server:
    """One `pixmend serve` process with its own data directory."""

    def __init__(self, args=(), data_dir=None, env=None, wrapper=(), start_timeout=30.0, tls_context=None):
        self.tmp = None
        self.tls_context = tls_context  # an ssl.SSLContext: talk HTTPS
        if data_dir is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="pmtest-")
            data_dir = os.path.join(self.tmp.name, "data")
        self.data_dir = data_dir
        self.log_path = os.path.join(os.path.dirname(data_dir), "server-%d.log" % int(time.time() * 1e6))
        cmd = list(wrapper) + [PIXMEND, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                               "--log-file", self.log_path, "--log-level", "debug"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, **(env or {})))
        _live_servers.append(self)
        self.port = None
        self.models = None
        line = self._read_startup(start_timeout)
        m = STARTUP_RE.search(line)
        if not m:
            self.proc.kill()
            err = self.proc.stderr.read().decode(errors="replace")
            raise AssertionError("no startup line from pixmend serve: %r %s" % (line, err))
        self.port = int(m.group(2))
        self.models = m.group(3)
        self.startup_line = line.strip()

    def _read_startup(self, timeout):
        box = {}

        def reader():
            box["line"] = self.proc.stdout.readline().decode(errors="replace")

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if "line" not in box:
            self.proc.kill()
            raise AssertionError("pixmend serve printed no startup line within %.0f s" % timeout)
        return box["line"]

    # -- HTTP
    def request(self, method, path, body=None, headers=None, timeout=30.0):
        if self.tls_context:
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.tls_context)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post_form(self, path, fields=None, files=None, **kw):
        ctype, body = multipart(fields, files)
        return self.request("POST", path, body=body, headers={"Content-Type": ctype}, **kw)

    def submit(self, image, mask=None, timeout=30.0, **fields):
        return self.post_form("/api/v1/jobs", fields, job_files(image, mask), timeout=timeout)

    def job(self, job_id, timeout=30.0):
        return self.get("/api/v1/jobs/" + job_id, timeout=timeout).json()

    def wait_job(self, job_id, states=("done", "failed", "cancelled"), timeout=30.0):
        return wait_until(lambda: (lambda j: j if j["state"] in states else None)(self.job(job_id)),
                          timeout=timeout, what="job %s to reach %s" % (job_id, states))

    # -- lifecycle
    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=60.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("pixmend serve did not exit within %.0f s" % timeout)

    def stop(self, timeout=60.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr(self):
        return self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def cleanup(self):
        self.close()
        if self.tmp:
            self.tmp.cleanup()


# ------------------------------------------------------------------ WebSocket

class ServerCase(unittest.TestCase):
    """Test classes that share one server, started with the class's
    `server_args`; cls.img_png and cls.mask_png hold the PNG bytes of
    test_image() and test_mask(). A subclass that needs more calls
    super().setUpClass() first."""

    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(list(cls.server_args))
        cls.img_png = png_bytes(test_image())
        cls.mask_png = png_bytes(test_mask())

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()


class WSClient:
    """A minimal RFC 6455 client: text frames, ping/pong, close."""

    def __init__(self, port, path="/ws", timeout=10.0, headers=None, tls_context=None, rcvbuf=None):
        """headers: extra handshake headers {name: value}; tls_context: WSS;
        rcvbuf: a small SO_RCVBUF (set before connecting), for clients that never read."""
        if rcvbuf:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls_context:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (path, port, key, extra))
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise AssertionError("WebSocket handshake: connection closed")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head
        status = head.split(b"\r\n")[0]
        if b" 101 " not in status + b" ":
            raise AssertionError("WebSocket handshake refused: %r" % head)
        self.closed = False

    def _read(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("WebSocket closed by the server")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload=b""):
        mask = os.urandom(4)
        hdr = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def recv_frame(self):
        """Returns (opcode, payload); answers pings itself."""
        while True:
            b0, b1 = self._read(2)
            op = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if op == 0x9:
                self._send_frame(0xA, payload)
                continue
            return op, payload

    def recv_json(self, timeout=10.0):
        """The next text message as JSON; raises on close or timeout."""
        self.sock.settimeout(timeout)
        op, payload = self.recv_frame()
        if op == 0x8:
            self.closed = True
            raise ConnectionError("WebSocket closed: %r" % payload)
        return json.loads(payload.decode("utf-8"))

    def collect(self, pred, timeout=20.0):
        """Reads messages until pred(list_so_far) is true; returns the list."""
        msgs = []
        end = time.time() + timeout
        while not pred(msgs):
            left = end - time.time()
            if left <= 0:
                raise AssertionError("WebSocket: timed out; got %d messages: %r" % (len(msgs), msgs[-5:]))
            try:
                msgs.append(self.recv_json(timeout=left))
            except socket.timeout:
                continue
        return msgs

    def close(self):
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()

    def abort(self):
        """Drops the TCP connection without a close frame."""
        self.sock.close()


def raw_exchange(port, data_parts, delay=0.0, read_timeout=15.0):
    """Sends data_parts over a raw socket (with `delay` between them), then
    reads until the server closes. Returns (bytes, seconds, send_error)."""
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    err = None
    try:
        for p in data_parts:
            s.sendall(p)
            if delay:
                time.sleep(delay)
    except OSError as e:
        err = e
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    s.close()
    return out, time.time() - t0, err


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else None


def json_body(raw):
    return json.loads(raw.split(b"\r\n\r\n", 1)[1].decode())


def run_tests(module_name, overall_timeout=240):
    """Runs the module's test cases (or those named on the command line) with
    a hard deadline for the whole file; exits with the outcome."""
    def on_alarm(signum, frame):
        sys.stderr.write("integration test exceeded %d s; aborting\n" % overall_timeout)
        os._exit(3)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(overall_timeout)
    if not os.path.exists(PIXMEND):
        sys.stderr.write("pixmend binary not found at %s (set PIXMEND)\n" % PIXMEND)
        sys.exit(2)
    mod = sys.modules[module_name]
    loader = unittest.TestLoader()
    names = sys.argv[1:]
    suite = loader.loadTestsFromNames(names, mod) if names else loader.loadTestsFromModule(mod)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)


def result_bytes_of(img, mask, args=("--threads", "1")):
    """The size of the result a single box makes of (img, mask), measured on a
    server of its own: tests that bound the results' store by bytes size the
    bound from it instead of assuming what an engine's output compresses to."""
    srv = Server(list(args))
    try:
        r = srv.submit(img, mask)
        assert r.status == 202, r
        j = srv.wait_job(r.json()["id"])
        assert j["state"] == "done", j
        return j["result_bytes"]
    finally:
        srv.cleanup()

