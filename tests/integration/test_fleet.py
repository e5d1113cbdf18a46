"""The fleet: fronts and workers sharing one Redis (pixmend serve --redis,
pixmend worker). Each test starts its own redis-server (Debian's) on a free
loopback port with a temporary directory and AOF with appendfsync always,
and stops it. Skips (77) when redis-server is not installed."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from pmtest import (PIXMEND, SOURCE_DIR, Server, WSClient, png_bytes, result_bytes_of, run_tests, test_image, test_mask,  # noqa: E402
                    wait_until)

REDIS_SERVER = shutil.which("redis-server")
TERMINAL = ("done", "failed", "cancelled")
SLOW = 3 if os.environ.get("PM_SANITIZE") in ("1", "ON", "TRUE", "true") else 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Redis:
    """A redis-server of our own, and a minimal RESP client to inspect it."""

    def __init__(self, port=None, dir=None):
        self.port = port or free_port()
        self.dir = dir or tempfile.mkdtemp(prefix="pmtest-redis-")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._try_ping(), timeout=10, what="redis-server to answer")

    def _try_ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except (OSError, RuntimeError):  # not listening yet, or LOADING the AOF
            return False

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cmd(self, *args):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return self._read(f)
        finally:
            s.close()

    def _read(self, f):
        line = f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            d = f.read(n + 2)[:-2]
            return d.decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise RuntimeError("bad RESP reply %r" % line)


class Worker:
    """One `pixmend worker` process."""

    def __init__(self, redis, name, args=()):
        self.tmp = tempfile.TemporaryDirectory(prefix="pmtest-worker-")
        self.log_path = os.path.join(self.tmp.name, "worker.log")
        self.name = name
        self.proc = subprocess.Popen(
            [PIXMEND, "worker", "--redis", redis.url, "--name", name, "--data-dir",
             os.path.join(self.tmp.name, "data"), "--log-file", self.log_path, "--log-level", "debug",
             "--metrics-listen", "127.0.0.1:0"] + (["--drain-seconds", "1"] if "--drain-seconds" not in args else [])
            + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if "taking jobs from" not in line:
            self.proc.kill()
            raise AssertionError("no startup line from pixmend worker: %r %s" % (line, self.proc.stderr.read()))
        self.metrics_port = int(line.rsplit(":", 1)[1].split("/")[0])

    def metrics(self):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        c.request("GET", "/metrics")
        r = c.getresponse()
        return r.read().decode()

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: a clean exit lets the sanitizers report
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace")
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        self.tmp.cleanup()
        if "Sanitizer" in err or "runtime error" in err:
            raise AssertionError("worker %s: %s" % (self.name, err[-3000:]))


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


class FleetCase(unittest.TestCase):
    def setUp(self):
        self.redis = Redis()
        self.things = []
        self.img = png_bytes(test_image())
        self.mask = png_bytes(test_mask())

    def tearDown(self):
        errors = []
        for t in self.things:  # all at once: each takes up to a second to notice
            if t.proc.poll() is None:
                t.proc.send_signal(signal.SIGTERM)
        for t in reversed(self.things):
            if isinstance(t, Server):
                t.wait_exit()
                err = t.stderr()
                if "Sanitizer" in err or "runtime error" in err:
                    errors.append(err[-3000:])
            try:
                t.cleanup()
            except AssertionError as e:
                errors.append(str(e))
        self.redis.cleanup()
        self.assertEqual(errors, [])

    def front(self, *args):
        s = Server(["--redis", self.redis.url, "--workers", "0"] + list(args))
        self.things.append(s)
        return s

    def worker(self, name, *args):
        w = Worker(self.redis, name, args)
        self.things.append(w)
        return w

    def submit(self, front, **fields):
        r = front.submit(self.img, self.mask, **fields)
        self.assertEqual(r.status, 202, r)
        return r.json()["id"]

    def submit_to_budget(self, front, name, budget, w, h):
        """Starts worker `name` with --mem-budget `budget`, waits for the
        front to see its report, then submits a w x h job; the answer."""
        self.worker(name, "--mem-budget", budget)
        wait_until(lambda: name in str(self.redis.cmd("HKEYS", "pixmend:workers")), timeout=10,
                   what="worker %s's report" % name)
        time.sleep(0.2)
        return front.submit(png_bytes(test_image(w, h)), png_bytes(test_mask(w, h)))

    def record(self, jid, field):
        return self.redis.cmd("HGET", "pixmend:job:" + jid, field)


class TestFleet(FleetCase):
    def test_burst_done_exactly_once_on_two_workers(self):
        front = self.front()
        w1 = self.worker("w1", "--job-delay-ms", "40")
        w2 = self.worker("w2", "--job-delay-ms", "40")
        ws = WSClient(front.port)
        self.assertEqual(ws.recv_json()["type"], "status")  # subscribed
        ids = [self.submit(front) for _ in range(16)]
        events = ws.collect(lambda m: sum(1 for e in m if e.get("type") == "done") >= 16, timeout=60 * SLOW)
        ws.close()
        try:  # the events of a fleet are the single box's, field for field (docs/events.schema.json)
            import jsonschema
            with open(os.path.join(SOURCE_DIR, "docs", "events.schema.json")) as f:
                schema = json.load(f)
            v = jsonschema.Draft202012Validator(schema)
            for e in events:
                errs = list(v.iter_errors(e))
                self.assertEqual(errs, [], "event %r: %s" % (e, "; ".join(x.message for x in errs[:3])))
        except ImportError:
            pass
        done = [e["job"] for e in events if e.get("type") == "done"]
        self.assertEqual(sorted(done), sorted(ids), "each job's done event exactly once")
        for jid in ids:
            j = front.job(jid)
            self.assertEqual(j["state"], "done", j)
            self.assertEqual(j["attempts"], 1, j)
            r = front.get("/api/v1/jobs/%s/result" % jid)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body[:8], b"\x89PNG\r\n\x1a\n")
            # per job, events in order: queued, started, progress..., done
            types = [e["type"] for e in events if e.get("job") == jid]
            self.assertEqual(types[0], "queued", types)
            self.assertEqual(types[1], "started", types)
            self.assertEqual(types[-1], "done", types)
        by = [self.record(jid, "worker") for jid in ids]
        self.assertEqual(set(by), {"w1", "w2"}, "both workers took jobs: %r" % by)
        self.assertEqual(self.redis.cmd("HGET", "pixmend:stats", "done"), "16")
        # acknowledged and deleted: nothing pending, nothing left in the streams
        for lane in ("fast", "normal"):
            self.assertEqual(self.redis.cmd("XLEN", "pixmend:jobs:" + lane), 0)
            self.assertEqual(self.redis.cmd("XPENDING", "pixmend:jobs:" + lane, "pixmend-workers")[0], 0)
        m = w1.metrics()
        self.assertEqual(metric(m, "pixmend_fleet_worker_running_jobs"), 0)
        self.assertGreater(metric(m, "pixmend_fleet_worker_budget_bytes"), 0)
        fm = front.get("/metrics").body.decode()
        self.assertEqual(metric(fm, "pixmend_fleet_pending"), 0)
        self.assertIn('pixmend_fleet_queue_depth{lane="fast"} 0', fm)
        self.assertEqual(w1.stop(), 0)
        self.assertEqual(w2.stop(), 0)

    def test_worker_killed_mid_job_is_reclaimed(self):
        front = self.front()
        a = self.worker("a", "--job-delay-ms", str(3000 * SLOW))
        jid = self.submit(front)
        wait_until(lambda: front.job(jid)["state"] == "running", timeout=20, what="job to start on worker a")
        a.kill9()
        b = self.worker("b", "--claim-idle", "1", "--job-delay-ms", "20")
        j = front.wait_job(jid, timeout=30 * SLOW)
        self.assertEqual(j["state"], "done", j)
        self.assertEqual(j["attempts"], 2, j)
        self.assertEqual(self.record(jid, "worker"), "b")
        self.assertEqual(metric(b.metrics(), 'pixmend_fleet_reclaimed_total'), 1)
        self.assertIn("taken over from worker a", b.log())
        self.assertEqual(front.get("/api/v1/jobs/%s/result" % jid).status, 200)

    def test_long_job_keeps_its_claim(self):
        front = self.front()
        self.worker("a", "--claim-idle", "1", "--job-delay-ms", str(2500 * SLOW))
        b = self.worker("b", "--claim-idle", "1")
        jid = self.submit(front)
        j = front.wait_job(jid, timeout=30 * SLOW)
        self.assertEqual((j["state"], j["attempts"]), ("done", 1), j)
        self.assertEqual(self.record(jid, "worker"), "a")
        self.assertEqual(metric(b.metrics(), "pixmend_fleet_reclaimed_total"), 0)

    def test_delivery_bound_fails_with_reason(self):
        front = self.front()
        a = self.worker("a", "--job-delay-ms", str(3000 * SLOW))
        jid = self.submit(front)
        wait_until(lambda: front.job(jid)["state"] == "running", timeout=20, what="job to start")
        a.kill9()
        self.worker("b", "--claim-idle", "0.5", "--max-deliveries", "1")
        j = front.wait_job(jid, timeout=30 * SLOW)
        self.assertEqual(j["state"], "failed", j)
        self.assertIn("handed to a worker 1 times", j["error"]["message"] if isinstance(j.get("error"), dict)
                      else str(j.get("error")))
        self.assertIn("the last was a", str(j.get("error")))

    def test_malformed_entries_are_dropped_not_fatal(self):
        front = self.front()
        w = self.worker("w")
        self.redis.cmd("XADD", "pixmend:jobs:fast", "*", "foo", "bar")
        self.redis.cmd("XADD", "pixmend:jobs:normal", "*", "id", "0123456789abcdef0123456789abcdef")
        bad = "fedcba9876543210fedcba9876543210"
        self.redis.cmd("HSET", "pixmend:job:" + bad, "id", bad, "state", "queued", "task", "teleport")
        self.redis.cmd("XADD", "pixmend:jobs:fast", "*", "id", bad)
        jid = self.submit(front)
        self.assertEqual(front.wait_job(jid, timeout=20 * SLOW)["state"], "done")
        wait_until(lambda: self.record(bad, "state") == "failed", timeout=10, what="the malformed job to fail")
        self.assertIn("malformed job record", self.record(bad, "error"))
        self.assertIsNone(w.proc.poll(), "the worker still runs")
        for lane in ("fast", "normal"):
            wait_until(lambda: self.redis.cmd("XLEN", "pixmend:jobs:" + lane) == 0, timeout=10,
                       what="%s stream to be empty" % lane)
        self.assertIn("has no valid job id; dropped", w.log())

    def test_cancel_queued_and_bounds(self):
        front = self.front("--queue-max", "2")
        a = self.submit(front)
        self.submit(front)
        r = front.submit(self.img, self.mask)
        self.assertEqual(r.status, 429, r)
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        self.assertIn("fleet's queue is full", r.body.decode())
        q = front.get("/api/v1/queue").json()
        self.assertEqual(q["depth"], 2, q)
        self.assertEqual([j["id"] for j in q["queued"]][0], a, q)
        self.assertEqual(q["queued"][0]["queue_position"], 0, q)
        r = front.request("DELETE", "/api/v1/jobs/" + a)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(front.job(a)["state"], "cancelled")
        # a worker whose budget fits no job: the front answers 413 naming the fleet's budget
        r = self.submit_to_budget(front, "small", "1M", 400, 300)
        self.assertEqual(r.status, 413, r)
        self.assertIn("no worker could run it", r.body.decode())
        self.assertIn("admits even the smallest image for model patchmatch", r.body.decode())
        # a worker with room for about 0.1 MP: the answer names the largest image that fits
        r = self.submit_to_budget(front, "medium", "9M", 800, 600)
        self.assertEqual(r.status, 413, r)
        self.assertIn("the largest image that fits is about", r.body.decode())
        self.assertEqual(front.submit(self.img, self.mask, model="nosuch").status, 404)

    def test_key_quota_counts_the_fleet(self):
        keys = os.path.join(self.redis.dir, "keys")
        with open(keys, "w") as f:
            f.write("alice:alice-key-0123456789abcdef\nbob:bob-key-0123456789abcdef0\n")
        os.chmod(keys, 0o600)
        f1 = self.front("--api-keys", keys, "--key-max-queued", "1")
        f2 = self.front("--api-keys", keys, "--key-max-queued", "1")
        auth = lambda k: {"Authorization": "Bearer " + k}  # noqa: E731
        from pmtest import job_files, multipart
        ctype, body = multipart({}, job_files(self.img, self.mask))
        r = f1.request("POST", "/api/v1/jobs", body=body, headers=dict(auth("alice-key-0123456789abcdef"),
                                                                      **{"Content-Type": ctype}))
        self.assertEqual(r.status, 202, r)
        # the same key on another front: its job waits in the fleet, so the quota is reached there too
        r = f2.request("POST", "/api/v1/jobs", body=body, headers=dict(auth("alice-key-0123456789abcdef"),
                                                                      **{"Content-Type": ctype}))
        self.assertEqual(r.status, 429, r)
        self.assertIn("key_quota", r.body.decode())
        r = f2.request("POST", "/api/v1/jobs", body=body, headers=dict(auth("bob-key-0123456789abcdef0"),
                                                                      **{"Content-Type": ctype}))
        self.assertEqual(r.status, 202, r)

    def test_front_killed_new_front_serves_results_and_events(self):
        f1 = self.front()
        f2 = self.front()
        self.worker("w", "--job-delay-ms", "100")
        ws2 = WSClient(f2.port)
        self.assertEqual(ws2.recv_json()["type"], "status")
        jid = self.submit(f1)
        ev = ws2.collect(lambda m: any(e.get("job") == jid and e["type"] in TERMINAL for e in m), timeout=30 * SLOW)
        types = [e["type"] for e in ev if e.get("job") == jid]
        self.assertEqual(types[0], "queued")
        self.assertEqual(types[-1], "done")
        self.assertIn("progress", types)
        ws2.close()
        f1.kill9()
        f3 = self.front()
        self.assertEqual(f3.job(jid)["state"], "done")
        r = f3.get("/api/v1/jobs/%s/result" % jid)
        self.assertEqual(r.status, 200)
        ws3 = WSClient(f3.port)
        self.assertEqual(ws3.recv_json()["type"], "status")
        j2 = self.submit(f2)
        ev = ws3.collect(lambda m: any(e.get("job") == j2 and e["type"] == "done" for e in m), timeout=30 * SLOW)
        self.assertEqual([e["type"] for e in ev if e.get("job") == j2][0], "queued")
        ws3.close()

    def test_redis_restart_loses_nothing_accepted(self):
        front = self.front()
        # a worker whose gate stays paused takes nothing, and lives through the outage
        survivor = self.worker("survivor", "--pause-at", "0.01", "--resume-below", "0.005")
        wait_until(lambda: "admission_paused" in survivor.log(), timeout=10, what="the survivor's gate to close")
        ids = [self.submit(front) for _ in range(4)]
        self.redis.kill9()  # a crash: only the AOF (appendfsync always) keeps what was accepted
        time.sleep(1.5)  # its heartbeat writes to the dead connection (no SIGPIPE death)
        r = front.submit(self.img, self.mask)
        self.assertEqual(r.status, 503, r)
        self.assertIn("unreachable", r.body.decode())
        # a load balancer's probe takes the front out while its queue is gone
        r = front.get("/readyz")
        self.assertEqual(r.status, 503, r)
        ready = json.loads(r.body)
        self.assertEqual(ready["state"], "unavailable")
        self.assertIn("unreachable", ready["error"]["message"])
        self.assertEqual(metric(front.get("/metrics").body.decode(), "pixmend_fleet_redis_up"), 0)
        # a worker started while Redis is down exits 1 with one line
        p = subprocess.run([PIXMEND, "worker", "--redis", self.redis.url], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1, p.stderr)
        self.assertIn("unreachable", p.stderr.decode())
        self.redis.start()
        wait_until(lambda: front.get("/readyz").status == 200, timeout=10, what="the front to be ready again")
        self.assertEqual(metric(front.get("/metrics").body.decode(), "pixmend_fleet_redis_up"), 1)
        self.worker("w")
        for jid in ids:
            self.assertEqual(front.wait_job(jid, timeout=30 * SLOW)["state"], "done")
        self.assertIsNone(survivor.proc.poll(), "the worker lived through Redis's restart")
        self.assertEqual(self.submit(front) is not None, True)


class TestFleetWorkers(FleetCase):
    def test_redis_emptied_groups_made_again(self):
        front = self.front()
        w = self.worker("w")
        self.assertEqual(front.wait_job(self.submit(front), timeout=20 * SLOW)["state"], "done")
        self.redis.cmd("FLUSHALL")  # a Redis that came back without its data: no streams, no group
        jid = self.submit(front)
        self.assertEqual(front.wait_job(jid, timeout=20 * SLOW)["state"], "done")
        self.assertIn("NOGROUP", w.log())
        self.assertEqual(self.redis.cmd("XINFO", "GROUPS", "pixmend:jobs:fast")[0][1], "pixmend-workers")


    def test_results_cap_and_ttl(self):
        size = result_bytes_of(self.img, self.mask)
        front = self.front()
        self.worker("w", "--results-max-bytes", str(size * 5 // 2), "--result-ttl", "2")
        ids = []
        for _ in range(4):  # the cap keeps the newest two
            ids.append(self.submit(front))
            self.assertEqual(front.wait_job(ids[-1], timeout=20 * SLOW)["state"], "done")
        sizes = [front.job(j)["result_bytes"] for j in ids]
        # the worker evicts right after storing (the job is visible a moment before)
        wait_until(lambda: int(self.redis.cmd("GET", "pixmend:results:bytes")) == sum(sizes[-2:]), timeout=10,
                   what="the results' total to be the newest two")
        self.assertEqual(front.get("/api/v1/jobs/%s/result" % ids[0]).status, 404)
        self.assertEqual(front.get("/api/v1/jobs/%s/result" % ids[-1]).status, 200)
        time.sleep(2.2)  # past --result-ttl: the next end takes the expired ones off the total
        j = self.submit(front)
        self.assertEqual(front.wait_job(j, timeout=20 * SLOW)["state"], "done")
        wait_until(lambda: int(self.redis.cmd("GET", "pixmend:results:bytes")) == front.job(j)["result_bytes"],
                   timeout=10, what="the expired results to leave the total")
        self.assertEqual(self.redis.cmd("ZCARD", "pixmend:results"), 1)

    def test_sigterm_hands_the_running_job_back(self):
        front = self.front()
        a = self.worker("a", "--job-delay-ms", str(4000 * SLOW), "--drain-seconds", "0.3")
        jid = self.submit(front)
        wait_until(lambda: front.job(jid)["state"] == "running", timeout=20, what="job to start on a")
        t0 = time.time()
        self.assertEqual(a.stop(), 0)
        self.assertLess(time.time() - t0, 10 * SLOW)
        self.assertIn("handed back to the queue", a.log())
        j = front.job(jid)
        self.assertEqual((j["state"], j["attempts"]), ("queued", 0), j)
        self.worker("b", "--job-delay-ms", "20")
        j = front.wait_job(jid, timeout=30 * SLOW)
        self.assertEqual((j["state"], j["attempts"]), ("done", 1), j)
        self.assertEqual(self.record(jid, "worker"), "b")

    def test_cancel_running_job_on_a_worker(self):
        front = self.front()
        self.worker("a", "--job-delay-ms", str(5000 * SLOW))
        jid = self.submit(front)
        wait_until(lambda: front.job(jid)["state"] == "running", timeout=20, what="job to start")
        r = front.request("DELETE", "/api/v1/jobs/" + jid)
        self.assertEqual(r.status, 202, r)
        j = front.wait_job(jid, timeout=20 * SLOW)
        self.assertEqual(j["state"], "cancelled", j)
        self.assertEqual(front.get("/api/v1/jobs/%s/result" % jid).status, 409)

    def test_worker_never_exceeds_its_budget(self):
        # patchmatch predicts about 1.27 MB for 64x48: a 2 MB budget fits one job, never two
        front = self.front()
        w = self.worker("w", "--workers", "2", "--mem-budget", "2M", "--job-delay-ms", "150")
        ids = [self.submit(front) for _ in range(5)]
        seen = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                m = w.metrics()
                seen.append((metric(m, "pixmend_fleet_worker_running_jobs"),
                             metric(m, "pixmend_fleet_worker_reserved_bytes")))
                time.sleep(0.02)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        for jid in ids:
            self.assertEqual(front.wait_job(jid, timeout=40 * SLOW)["state"], "done")
        stop.set()
        t.join()
        seen = [x for x in seen if x[0] is not None]
        self.assertTrue(seen)
        # the predictions of the jobs it runs together never exceed its budget: never two at once
        self.assertTrue(all(b <= 2 * 1024 * 1024 for _, b in seen), seen)
        one = front.job(ids[0])["resources"]["predicted_bytes"]
        self.assertTrue(2 * one > 2 * 1024 * 1024 >= one, one)
        self.assertEqual(max(b for _, b in seen), one, seen)

    def test_front_with_its_own_workers_and_redis_down(self):
        front = Server(["--redis", self.redis.url, "--workers", "2"])
        self.things.append(front)
        ids = [self.submit(front) for _ in range(4)]
        for jid in ids:
            self.assertEqual(front.wait_job(jid, timeout=30 * SLOW)["state"], "done")
        r = front.post_form("/api/v1/inpaint", {}, {"image": ("i.png", self.img, "image/png"),
                                                    "mask": ("m.png", self.mask, "image/png")})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body[:8], b"\x89PNG\r\n\x1a\n")
        self.redis.kill9()
        r = front.get("/api/v1/jobs/" + ids[0])
        self.assertEqual(r.status, 503, r)
        self.assertIn("unreachable", r.body.decode())
        self.redis.start()
        wait_until(lambda: front.get("/api/v1/jobs/" + ids[0]).status == 200, timeout=10, what="the front to recover")
        self.assertEqual(front.stop(), 0)


class TestFleetStart(unittest.TestCase):
    def test_unreachable_redis_one_line_exit_1(self):
        port = free_port()
        for cmd in (["serve", "--workers", "0", "--listen", "127.0.0.1:0"], ["worker"]):
            with tempfile.TemporaryDirectory() as d:
                p = subprocess.run([PIXMEND] + cmd + ["--redis", "redis://127.0.0.1:%d" % port, "--data-dir", d],
                                   capture_output=True, timeout=30)
            err = p.stderr.decode().strip()
            self.assertEqual(p.returncode, 1, err)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn("127.0.0.1:%d is unreachable" % port, err)

    def test_usage_errors(self):
        for args, what in ((["worker"], "--redis URL is required"),
                           (["serve", "--workers", "0"], "needs --redis"),
                           (["worker", "--redis", "http://x"], "only redis://"),
                           (["serve", "--claim-idle", "3"], "give --redis")):
            p = subprocess.run([PIXMEND] + args, capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(what, p.stderr.decode())


if __name__ == "__main__":
    if not REDIS_SERVER:
        sys.stderr.write("redis-server is not installed (scripts/install-deps test); skipping\n")
        sys.exit(77)
    run_tests(__name__, overall_timeout=300)
