"""Access control over loopback: API keys on every route, job ownership (404
for another key's job, own jobs in the queue and stats, events), per-key
quota, running bound and rate, the WebSocket's key and Origin, SIGHUP
re-reading the key file, HTTPS/WSS with a certificate made here by openssl,
and the hardened web surface (security headers, CORS, path traversal,
oversized and slow headers, file names in headers)."""
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pmtest  # noqa: E402
from pmtest import (PIXMEND, Server, WSClient, job_files, png_bytes, raw_exchange,  # noqa: E402
                    status_of, test_image, test_mask, wait_until)

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef01"
ROOT = "root-key-0123456789abcdef0"
CAROL = "carol-key-0123456789abcdef"


def bearer(key):
    return {"Authorization": "Bearer " + key}


def key_file(directory, text, mode=0o600):
    path = os.path.join(directory, "keys")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def stop_clean(srv):
    """Stops the server: it must exit 0 without a sanitizer report."""
    code = srv.stop()
    err = srv.stderr()
    srv.cleanup()
    if code != 0 or "Sanitizer" in err:
        raise AssertionError("pixmend serve exited %r: %s" % (code, err[-3000:]))


def standard_keys():
    bob_sha = hashlib.sha256(BOB.encode()).hexdigest()
    return "# test keys\nalice:%s\nbob:sha256:%s\nroot:%s:admin\n" % (ALICE, bob_sha, ROOT)


class KeyedCase(unittest.TestCase):
    """A server with keys; jobs wait job_delay ms so that they can be seen
    queued and running."""
    extra_args = []
    job_delay = 400

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="pmauth-")
        cls.keys = key_file(cls.tmp.name, standard_keys())
        cls.srv = Server(["--api-keys", cls.keys, "--job-delay-ms", str(cls.job_delay)] + cls.extra_args)
        cls.img = png_bytes(test_image())
        cls.mask = png_bytes(test_mask())

    @classmethod
    def tearDownClass(cls):
        try:
            stop_clean(cls.srv)
        finally:
            cls.tmp.cleanup()

    def submit(self, key, **fields):
        ctype, body = pmtest.multipart(fields, job_files(self.img, self.mask))
        return self.srv.request("POST", "/api/v1/jobs", body=body,
                                headers=dict(bearer(key), **{"Content-Type": ctype}))

    def wait_done(self, key, job_id):
        return wait_until(lambda: (lambda r: r.json() if r.json()["state"] in ("done", "failed", "cancelled")
                                   else None)(self.srv.get("/api/v1/jobs/" + job_id, headers=bearer(key))),
                          timeout=30, what="job %s to end" % job_id)


class KeysAndOwnership(KeyedCase):

    def assert_401(self, r, what):
        self.assertEqual(r.status, 401, "%s: %r" % (what, r))
        self.assertTrue((r.header("WWW-Authenticate") or "").startswith("Bearer"), what)
        self.assertEqual(r.json()["error"]["code"], "unauthorized")

    def test_every_api_route_needs_a_valid_key(self):
        job = self.submit(ALICE).json()["id"]
        ctype, body = pmtest.multipart({}, job_files(self.img, self.mask))
        routes = [("GET", "/api/v1/jobs/" + job, None), ("GET", "/api/v1/jobs/%s/result" % job, None),
                  ("DELETE", "/api/v1/jobs/" + job, None), ("POST", "/api/v1/jobs", body),
                  ("POST", "/api/v1/inpaint", body), ("POST", "/api/v1/colorize", body),
                  ("GET", "/api/v1/queue", None), ("GET", "/api/v1/stats", None), ("GET", "/api/v1/models", None),
                  ("GET", "/api/v1/nonexistent", None)]
        for method, path, b in routes:
            for headers in ({}, bearer("wrong-key-0123456789abcdef"), bearer(ALICE + "x"),
                            {"Authorization": "Basic " + ALICE}):
                h = dict(headers)
                if b is not None:
                    h["Content-Type"] = ctype
                self.assert_401(self.srv.request(method, path, body=b, headers=h), "%s %s %s" % (method, path, h))
        self.assertEqual(self.srv.get("/api/v1/jobs/" + job, headers=bearer(ALICE)).status, 200)
        self.wait_done(ALICE, job)

    def test_open_routes(self):
        for path in ("/healthz", "/readyz", "/metrics", "/", "/js/main.js"):
            self.assertEqual(self.srv.get(path).status, 200, path)

    def test_another_keys_job_is_404_everywhere(self):
        r = self.submit(ALICE)
        self.assertEqual(r.status, 202)
        job = r.json()["id"]
        unknown = "0" * 32
        for method, path in (("GET", "/api/v1/jobs/%s"), ("GET", "/api/v1/jobs/%s/result"),
                             ("DELETE", "/api/v1/jobs/%s")):
            theirs = self.srv.request(method, path % job, headers=bearer(BOB))
            nobody = self.srv.request(method, path % unknown, headers=bearer(BOB))
            self.assertEqual(theirs.status, 404, (method, path, theirs))
            self.assertEqual(theirs.json()["error"]["code"], nobody.json()["error"]["code"])
        # the events of that job: refused before the upgrade, as for an unknown job
        for jid in (job, unknown):
            with self.assertRaises(AssertionError) as cm:
                WSClient(self.srv.port, "/ws?job=" + jid, headers={"Sec-WebSocket-Protocol": "pixmend.v1, bearer." + BOB})
            self.assertIn(b" 404 ", str(cm.exception).encode())
        # still there for its owner and for an admin; bob's DELETE did not cancel it
        info = self.wait_done(ALICE, job)
        self.assertEqual(info["state"], "done")
        self.assertEqual(self.srv.get("/api/v1/jobs/%s/result" % job, headers=bearer(ALICE)).status, 200)
        self.assertEqual(self.srv.get("/api/v1/jobs/%s/result" % job, headers=bearer(ROOT)).status, 200)

    def test_queue_and_stats_show_own_jobs(self):
        a = self.submit(ALICE).json()["id"]
        b = self.submit(BOB).json()["id"]

        def ids(key):
            q = self.srv.get("/api/v1/queue", headers=bearer(key)).json()
            return {j["id"] for j in q["running"] + q["queued"]}
        self.assertIn(a, ids(ALICE))
        self.assertNotIn(b, ids(ALICE))
        self.assertIn(b, ids(BOB))
        self.assertNotIn(a, ids(BOB))
        self.assertTrue({a, b} <= ids(ROOT))
        self.wait_done(ALICE, a)
        self.wait_done(BOB, b)

        def recent(key):
            return {j["id"] for j in self.srv.get("/api/v1/stats", headers=bearer(key)).json()["recent_jobs"]}
        self.assertIn(a, recent(ALICE))
        self.assertNotIn(b, recent(ALICE))
        self.assertNotIn(a, recent(BOB))
        self.assertTrue({a, b} <= recent(ROOT))

    def test_websocket_needs_a_key_and_sees_own_events(self):
        for headers in ({}, {"Sec-WebSocket-Protocol": "pixmend.v1, bearer.wrong-key-0123456789abcdef"}):
            with self.assertRaises(AssertionError) as cm:
                WSClient(self.srv.port, "/ws", headers=headers)
            self.assertIn(" 401 ", str(cm.exception))
        wa = WSClient(self.srv.port, "/ws", headers={"Sec-WebSocket-Protocol": "pixmend.v1, bearer." + ALICE})
        self.assertIn(b"Sec-WebSocket-Protocol: pixmend.v1", wa.head)
        wb = WSClient(self.srv.port, "/ws", headers={"Authorization": "Bearer " + BOB})
        wr = WSClient(self.srv.port, "/ws", headers={"Sec-WebSocket-Protocol": "pixmend.v1, bearer." + ROOT})
        try:
            job = self.submit(ALICE).json()["id"]
            done = lambda ms: any(m.get("type") == "done" and m.get("job") == job for m in ms)  # noqa: E731
            wa.collect(done)
            wr.collect(done)
            # bob's client saw status events but nothing of alice's job
            bob_seen = []
            try:
                bob_seen = wb.collect(lambda ms: False, timeout=1.0)
            except AssertionError:
                pass
            self.assertFalse([m for m in bob_seen if m.get("job") == job])
        finally:
            for w in (wa, wb, wr):
                w.close()

    def test_websocket_checks_origin(self):
        with self.assertRaises(AssertionError) as cm:
            WSClient(self.srv.port, "/ws", headers={"Origin": "http://evil.example",
                                                    "Sec-WebSocket-Protocol": "pixmend.v1, bearer." + ALICE})
        self.assertIn(" 403 ", str(cm.exception))
        w = WSClient(self.srv.port, "/ws", headers={"Origin": "http://127.0.0.1:%d" % self.srv.port,
                                                    "Sec-WebSocket-Protocol": "pixmend.v1, bearer." + ALICE})
        w.close()

    def test_metrics_have_key_labels_of_file_names_only(self):
        self.srv.get("/api/v1/models", headers=bearer(BOB))
        self.srv.get("/api/v1/models", headers=bearer("not-a-key-0123456789abcdef"))
        m = self.srv.get("/metrics").body.decode()
        self.assertRegex(m, r'pixmend_key_requests_total\{key="bob"\} [1-9]')
        labels = set(l.split('key="')[1].split('"')[0] for l in m.splitlines() if 'key="' in l)
        self.assertEqual(labels, {"alice", "bob", "root"})
        self.assertNotIn(BOB, m)
        self.assertRegex(m, r"pixmend_auth_failures_total [1-9]")

    def test_owner_is_journaled(self):
        import sqlite3
        path = os.path.join(self.srv.data_dir, "journal.sqlite")
        job = self.submit(ALICE).json()["id"]
        db = sqlite3.connect(path)
        try:
            owner = db.execute("SELECT owner FROM jobs WHERE id=?", (job,)).fetchone()
        finally:
            db.close()
        self.assertEqual(owner, ("alice",))
        self.wait_done(ALICE, job)


class Quotas(KeyedCase):
    extra_args = ["--workers", "2", "--key-max-queued", "2", "--key-max-running", "1"]
    job_delay = 1500

    def test_one_key_fills_its_share_others_are_served(self):
        ids = [self.submit(ALICE).json()["id"] for _ in range(3)]
        time.sleep(0.3)
        states = [self.srv.get("/api/v1/jobs/" + j, headers=bearer(ALICE)).json()["state"] for j in ids]
        # one of alice's runs; the others wait although a worker is free
        self.assertEqual(states.count("running"), 1, states)
        self.assertEqual(states.count("queued"), 2, states)
        r = self.submit(ALICE)
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json()["error"]["code"], "key_quota")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        # bob is served, and runs at once on the free worker
        b = self.submit(BOB)
        self.assertEqual(b.status, 202, b)
        wait_until(lambda: self.srv.get("/api/v1/jobs/" + b.json()["id"], headers=bearer(BOB)).json()["state"]
                   != "queued", timeout=5, what="bob's job to start")
        m = self.srv.get("/metrics").body.decode()
        self.assertRegex(m, r'pixmend_key_quota_rejected_total\{key="alice"\} 1')
        for j in ids:
            self.wait_done(ALICE, j)


class RateLimit(KeyedCase):
    extra_args = ["--key-rate", "2"]

    def test_token_bucket_per_key(self):
        codes = [self.srv.get("/api/v1/models", headers=bearer(ALICE)) for _ in range(8)]
        limited = [r for r in codes if r.status == 429]
        self.assertGreaterEqual(len(limited), 3, [r.status for r in codes])
        self.assertEqual(limited[0].json()["error"]["code"], "rate_limited")
        self.assertGreaterEqual(int(limited[0].header("Retry-After")), 1)
        self.assertEqual(self.srv.get("/api/v1/models", headers=bearer(BOB)).status, 200)
        time.sleep(1.1)
        self.assertEqual(self.srv.get("/api/v1/models", headers=bearer(ALICE)).status, 200)


class MetricsAuth(KeyedCase):
    extra_args = ["--metrics-auth"]

    def test_metrics_need_an_admin_key(self):
        r = self.srv.get("/metrics")
        self.assertEqual(r.status, 401)
        self.assertTrue(r.header("WWW-Authenticate").startswith("Bearer"))
        self.assertEqual(self.srv.get("/metrics", headers=bearer(ALICE)).status, 403)
        r = self.srv.get("/metrics", headers=bearer(ROOT))
        self.assertEqual(r.status, 200)
        self.assertIn("pixmend_key_requests_total", r.body.decode())
        for path in ("/healthz", "/readyz"):
            self.assertEqual(self.srv.get(path).status, 200, path)


class KeyFileLifecycle(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pmauth-")

    def tearDown(self):
        self.tmp.cleanup()

    def refused(self, text, mode):
        keys = key_file(self.tmp.name, text, mode)
        p = subprocess.run([PIXMEND, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                            os.path.join(self.tmp.name, "d"), "--api-keys", keys],
                           capture_output=True, timeout=30)
        return p.returncode, p.stderr.decode()

    def test_refuses_world_readable_or_malformed_file(self):
        rc, err = self.refused(standard_keys(), 0o644)
        self.assertEqual(rc, 1)
        self.assertIn("chmod 600", err)
        rc, err = self.refused("alice:short\n", 0o600)
        self.assertEqual(rc, 1)
        self.assertIn("line 1", err)

    def test_usage_errors(self):
        keys = key_file(self.tmp.name, standard_keys())
        cases = [(["--tls-cert", keys], "--tls-cert and --tls-key go together"),
                 (["--key-rate", "5"], "need --api-keys"),
                 (["--api-keys", keys, "--key-rate", "0"], "--key-rate must be"),
                 (["--api-keys", keys, "--key-rate", "5/h"], "--key-rate must be"),
                 (["--api-keys", keys, "--key-max-queued", "0"], "key-max-queued"),
                 (["--cors-origin", "*"], "--cors-origin must be one origin"),
                 (["--cors-origin", "https://a.example/"], "--cors-origin must be one origin")]
        for args, words in cases:
            p = subprocess.run([PIXMEND, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                                os.path.join(self.tmp.name, "d")] + args, capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(words, p.stderr.decode(), args)
        self.assertIn("--api-keys FILE", subprocess.run([PIXMEND, "serve", "--help"], capture_output=True,
                                                         timeout=30).stdout.decode())

    def test_sighup_reads_the_file_again(self):
        keys = key_file(self.tmp.name, standard_keys())
        srv = Server(["--api-keys", keys])
        try:
            self.assertEqual(srv.get("/api/v1/models", headers=bearer(BOB)).status, 200)
            wb = WSClient(srv.port, "/ws", headers={"Sec-WebSocket-Protocol": "pixmend.v1, bearer." + BOB})
            wa = WSClient(srv.port, "/ws", headers={"Sec-WebSocket-Protocol": "pixmend.v1, bearer." + ALICE})
            self.assertEqual(wa.recv_json()["type"], "status")  # the greeting
            key_file(self.tmp.name, "alice:%s\ncarol:%s\n" % (ALICE, CAROL))
            srv.signal(signal.SIGHUP)
            wait_until(lambda: srv.get("/api/v1/models", headers=bearer(CAROL)).status == 200, timeout=5,
                       what="carol's key to work")
            self.assertEqual(srv.get("/api/v1/models", headers=bearer(BOB)).status, 401)
            # bob's open WebSocket is closed with the reason; alice's stays
            with self.assertRaises(ConnectionError) as cm:
                wb.collect(lambda ms: False, timeout=10)
            self.assertIn("revoked", str(cm.exception))
            ctype, body = pmtest.multipart({}, job_files(png_bytes(test_image()), png_bytes(test_mask())))
            job = srv.request("POST", "/api/v1/jobs", body=body,
                              headers=dict(bearer(ALICE), **{"Content-Type": ctype})).json()["id"]
            wa.collect(lambda ms: any(m.get("job") == job for m in ms), timeout=10)
            wa.close()
            wb.abort()
            key_file(self.tmp.name, "alice:%s\nnonsense\n" % ALICE)
            srv.signal(signal.SIGHUP)
            wait_until(lambda: "api_keys_reload_failed" in srv.log(), timeout=5, what="the reload error")
            self.assertEqual(srv.get("/api/v1/models", headers=bearer(CAROL)).status, 200)
        finally:
            stop_clean(srv)

    def test_ownership_survives_a_restart(self):
        keys = key_file(self.tmp.name, standard_keys())
        data = os.path.join(self.tmp.name, "data")
        args = ["--api-keys", keys, "--job-delay-ms", "3000", "--drain-seconds", "0"]
        srv = Server(args, data_dir=data)
        img, mask = png_bytes(test_image()), png_bytes(test_mask())
        ctype, body = pmtest.multipart({}, job_files(img, mask))
        ids = [srv.request("POST", "/api/v1/jobs", body=body,
                           headers=dict(bearer(ALICE), **{"Content-Type": ctype})).json()["id"] for _ in range(2)]
        stop_clean(srv)
        srv = Server(args, data_dir=data)
        try:
            for j in ids:
                self.assertEqual(srv.get("/api/v1/jobs/" + j, headers=bearer(ALICE)).status, 200)
                self.assertEqual(srv.get("/api/v1/jobs/" + j, headers=bearer(BOB)).status, 404)
                self.assertEqual(srv.get("/api/v1/jobs/" + j, headers=bearer(ROOT)).status, 200)
        finally:
            stop_clean(srv)

    def test_open_server_warns_once_beyond_loopback(self):
        srv = Server(["--listen", "0.0.0.0:0"])
        try:
            self.assertEqual(srv.get("/api/v1/models").status, 200)
            wait_until(lambda: "open_access" in srv.log(), timeout=5, what="the warning")
            self.assertEqual(srv.log().count("open_access"), 1)
        finally:
            stop_clean(srv)
        srv = Server([])
        try:
            self.assertEqual(srv.get("/api/v1/models").status, 200)
            self.assertNotIn("open_access", srv.log())
        finally:
            stop_clean(srv)


def make_cert(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@unittest.skipUnless(shutil.which("openssl"), "openssl is not installed")
class Tls(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="pmtls-")
        cls.cert, key = make_cert(cls.tmp.name)
        cls.ctx = ssl.create_default_context(cafile=cls.cert)  # verifies the chain and the IP
        keys = key_file(cls.tmp.name, standard_keys())
        cls.srv = Server(["--api-keys", keys, "--tls-cert", cls.cert, "--tls-key", key], tls_context=cls.ctx)

    @classmethod
    def tearDownClass(cls):
        try:
            stop_clean(cls.srv)
        finally:
            cls.tmp.cleanup()

    def test_https_and_wss(self):
        self.assertIn("https://", self.srv.startup_line)
        self.assertEqual(self.srv.get("/api/v1/models").status, 401)
        r = self.srv.get("/api/v1/models", headers=bearer(ALICE))
        self.assertEqual(r.status, 200)
        self.assertIn("default-src 'self'", r.header("Content-Security-Policy"))
        ctype, body = pmtest.multipart({}, job_files(png_bytes(test_image()), png_bytes(test_mask())))
        r = self.srv.request("POST", "/api/v1/inpaint", body=body, headers=dict(bearer(ALICE), **{"Content-Type": ctype}))
        self.assertEqual(r.status, 200)
        w = WSClient(self.srv.port, "/ws", headers={"Sec-WebSocket-Protocol": "pixmend.v1, bearer." + ALICE},
                     tls_context=self.ctx)
        self.assertEqual(w.recv_json()["type"], "status")
        w.close()

    def test_plain_http_gets_nothing(self):
        out, _, _ = raw_exchange(self.srv.port, [b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\n\r\n"], read_timeout=5)
        self.assertIsNone(status_of(out))

    def test_bad_certificate_files_refused_at_start(self):
        bogus = os.path.join(self.tmp.name, "bogus.pem")
        with open(bogus, "w") as f:
            f.write("not a certificate\n")
        p = subprocess.run([PIXMEND, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                            os.path.join(self.tmp.name, "d2"), "--tls-cert", bogus, "--tls-key", bogus],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("tls", p.stderr.decode().lower())


class WebSurface(unittest.TestCase):
    """The open server's hardening (no keys needed for these)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="pmweb-")
        web = os.path.join(cls.tmp.name, "site", "web")
        shutil.copytree(os.path.join(pmtest.SOURCE_DIR, "web"), web)
        with open(os.path.join(cls.tmp.name, "site", "secret.txt"), "w") as f:
            f.write("TOP-SECRET-OUTSIDE-WEB\n")
        cls.srv = Server(["--web-dir", web, "--cors-origin", "https://app.example", "--request-timeout", "1.5"])
        cls.img = png_bytes(test_image())
        cls.mask = png_bytes(test_mask())

    @classmethod
    def tearDownClass(cls):
        try:
            stop_clean(cls.srv)
        finally:
            cls.tmp.cleanup()

    def test_security_headers_everywhere(self):
        for path in ("/", "/js/main.js", "/api/v1/models", "/api/v1/nothing", "/missing.html", "/healthz"):
            r = self.srv.get(path)
            csp = r.header("Content-Security-Policy") or ""
            self.assertIn("default-src 'self'", csp, path)
            self.assertIn("frame-ancestors 'none'", csp, path)
            self.assertNotIn("unsafe-inline", csp, path)
            self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", path)
            self.assertEqual(r.header("Referrer-Policy"), "no-referrer", path)

    def test_ui_has_no_inline_script_or_style(self):
        import re
        html = self.srv.get("/").body.decode()
        self.assertFalse(re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>")
        self.assertNotIn("<style", html)
        self.assertFalse(re.search(r"\son[a-z]+\s*=", html), "inline event handler")
        self.assertFalse(re.search(r"\sstyle\s*=", html), "inline style attribute")

    def test_cors_only_for_the_named_origin(self):
        r = self.srv.get("/api/v1/models", headers={"Origin": "https://app.example"})
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://app.example")
        r = self.srv.get("/api/v1/models", headers={"Origin": "https://evil.example"})
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))
        pre = self.srv.request("OPTIONS", "/api/v1/jobs", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization"})
        self.assertEqual(pre.status, 204)
        self.assertIn("Authorization", pre.header("Access-Control-Allow-Headers"))
        pre = self.srv.request("OPTIONS", "/api/v1/jobs", headers={"Origin": "https://evil.example"})
        self.assertEqual(pre.status, 403)
        self.assertIsNone(pre.header("Access-Control-Allow-Origin"))

    def test_traversal_never_leaves_the_web_folder(self):
        attempts = [b"/../secret.txt", b"/js/../../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E%2Fsecret.txt",
                    b"/js/..%2f..%2fsecret.txt", b"/%252e%252e/secret.txt", b"/js\\..\\..\\secret.txt",
                    b"/./../secret.txt", b"/api/v1/../../secret.txt"]
        before = self.srv.log().count("path_refused")
        refused = 0
        for a in attempts:
            out, _, _ = raw_exchange(self.srv.port, [b"GET " + a + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
            self.assertNotIn(b"TOP-SECRET", out, a)
            st = status_of(out)
            self.assertIn(st, (400, 404), (a, out[:200]))
            refused += st == 400
        self.assertGreaterEqual(refused, 5)
        wait_until(lambda: self.srv.log().count("path_refused") > before, timeout=5, what="refusal lines")
        time.sleep(0.2)
        # one line per refused request at most (and at most 5 a period per kind)
        self.assertLessEqual(self.srv.log().count("path_refused") - before, refused)

    def test_refused_path_cannot_forge_log_lines(self):
        out, _, _ = raw_exchange(self.srv.port, [b"GET /x%0d%0aFORGED-LINE%0a HTTP/1.1\r\nHost: x\r\n"
                                                 b"Connection: close\r\n\r\n"])
        self.assertEqual(status_of(out), 400, out[:200])
        wait_until(lambda: "FORGED-LINE" in self.srv.log(), timeout=5, what="the refusal line")
        self.assertFalse([l for l in self.srv.log().splitlines() if l.startswith("FORGED-LINE")])

    def test_oversized_and_slow_headers_refused_and_logged(self):
        before = self.srv.log().count("request_incomplete")
        out, _, _ = raw_exchange(self.srv.port, [b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"])
        self.assertEqual(status_of(out), 400)
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100
        t0 = time.time()
        out, _, _ = raw_exchange(self.srv.port, [head[i:i + 1] for i in range(len(head))], delay=0.03,
                                 read_timeout=15)
        self.assertNotEqual(status_of(out), 200)
        self.assertLess(time.time() - t0, 8)
        wait_until(lambda: self.srv.log().count("request_incomplete") >= before + 2, timeout=5, what="log lines")
        self.assertEqual(self.srv.log().count("request_incomplete"), before + 2)
        self.assertEqual(self.srv.get("/healthz").status, 200)

    def test_file_names_never_reach_headers(self):
        evil = 'a";\r\nX-Injected: 1;x=".png'
        ctype, body = pmtest.multipart({}, {"image": (evil, self.img, "image/png"),
                                            "mask": ("m\r\nX-Injected: 2.png", self.mask, "image/png")})
        r = self.srv.request("POST", "/api/v1/jobs", body=body, headers={"Content-Type": ctype})
        if r.status != 202:
            return  # the form parser refused the name: nothing can reach a header
        info = self.srv.wait_job(r.json()["id"])
        self.assertEqual(info["state"], "done")
        res = self.srv.get(info["result_url"])
        self.assertIsNone(res.header("X-Injected"))
        self.assertRegex(res.header("Content-Disposition"), r'^inline; filename="[0-9a-f]{32}\.png"$')


if __name__ == "__main__":
    pmtest.run_tests(__name__, overall_timeout=280)
