"""The resource guard in `pixmend serve`: the admission gate driven by a
scripted GPU through the real NVML dlopen path (the fake library of
tests/fakes), the memory budget (413 naming what fits), the metrics parsed
by real parsers, and an overload of large and small jobs."""
import os
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import Server, WSClient, png_bytes, test_image, test_mask, wait_until  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

FAKE_NVML = os.environ.get("PM_FAKE_NVML", "")
GPU_TOTAL = 8 << 30


class Gpu:
    """The fake NVML's script: one GPU whose used memory the test sets."""

    def __init__(self, tmpdir):
        self.path = os.path.join(tmpdir, "nvml-script")
        self.set(0.5)

    def set(self, fraction, util=30):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("1 %d %d %d\n" % (int(GPU_TOTAL * fraction), GPU_TOTAL, util))
        os.replace(tmp, self.path)

    def env(self):
        return {"PIXMEND_NVML_LIBRARY": FAKE_NVML, "PM_FAKE_NVML_FILE": self.path}


def metrics(srv):
    """{(name, frozenset(labels)): value}, parsed by prometheus_client."""
    out = {}
    for fam in text_string_to_metric_families(srv.get("/metrics").body.decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric(srv, name, **labels):
    return metrics(srv).get((name, frozenset(labels.items())))


def write_memlaw(data_dir, a, b):
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "memlaw.json"), "w") as f:
        f.write('{"version": 1, "models": [\n  {"model": "patchmatch", "a": %d, "b": %g, "source": "test"}\n]}\n'
                % (a, b))


def vm_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


@unittest.skipUnless(FAKE_NVML and os.path.exists(FAKE_NVML), "PM_FAKE_NVML (the fake NVML library) is not built")
class Gate(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pmguard-")
        self.gpu = Gpu(self.tmp.name)
        self.srv = Server(["--sample-interval", "0.05", "--pause-at", "0.85", "--resume-below", "0.75",
                           "--threads", "1"], env=self.gpu.env())

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0)
        self.srv.cleanup()
        self.tmp.cleanup()

    def test_gpu_gauge_pauses_and_resumes(self):
        srv = self.srv
        # The fake GPU is seen through NVML: stats, metrics.
        wait_until(lambda: srv.get("/api/v1/stats").json()["gpus"], what="a GPU in /api/v1/stats")
        st = srv.get("/api/v1/stats").json()
        self.assertEqual(st["gpus"][0]["name"], "Fake GPU 0")
        self.assertEqual(st["gpus"][0]["mem_total_bytes"], GPU_TOTAL)
        self.assertFalse(st["admission"]["paused"])
        self.assertAlmostEqual(st["admission"]["gauge"], 0.5, places=2)
        self.assertEqual((st["admission"]["high_mark"], st["admission"]["low_mark"]), (0.85, 0.75))
        m = metrics(srv)
        self.assertEqual(m[("pixmend_gpu_memory_used_bytes", frozenset({"gpu": "0", "name": "Fake GPU 0"}.items()))],
                         GPU_TOTAL // 2)
        self.assertAlmostEqual(m[("pixmend_gpu_utilization_ratio",
                                  frozenset({"gpu": "0", "name": "Fake GPU 0"}.items()))], 0.3)
        self.assertEqual(m[("pixmend_admission_paused", frozenset())], 0)
        self.assertEqual(srv.get("/readyz").status, 200)
        ws = WSClient(srv.port)

        # 0.9: paused. One log line, the counter, a WebSocket event, /readyz 503, the metric.
        self.gpu.set(0.9)
        ev = ws.collect(lambda ms: any(x["type"] == "paused" for x in ms), timeout=20)
        paused = [x for x in ev if x["type"] == "paused"][0]
        self.assertAlmostEqual(paused["admission"]["gauge"], 0.9, places=2)
        self.assertGreater(paused["t"], 1e9)
        self.assertEqual(paused["admission"]["source"], "gpu0")
        r = srv.get("/readyz")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json()["state"], "paused")
        self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual(metric(srv, "pixmend_admission_paused"), 1)
        self.assertEqual(metric(srv, "pixmend_admission_pauses_total"), 1)
        lines = [ln for ln in srv.log().splitlines() if "admission_paused" in ln]
        self.assertEqual(len(lines), 1, lines)
        for kv in ("gauge=0.900", "high=0.85", "low=0.75", "source=gpu0"):
            self.assertIn(kv, lines[0])

        # While paused a submission still queues (202) and does not start.
        img, mask = png_bytes(test_image(64, 48)), png_bytes(test_mask(64, 48))
        r = srv.submit(img, mask)
        self.assertEqual(r.status, 202)
        jid = r.json()["id"]
        self.assertEqual(srv.job(jid)["state"], "queued")
        # 0.8 is between the marks: still paused.
        self.gpu.set(0.8)
        wait_until(lambda: abs(srv.get("/api/v1/stats").json()["admission"]["gauge"] - 0.8) < 0.01,
                   what="the gauge to read 0.8")
        self.assertEqual(srv.get("/readyz").status, 503)
        self.assertEqual(srv.job(jid)["state"], "queued")

        # 0.7: resumed; the queued job runs.
        self.gpu.set(0.7)
        ev = ws.collect(lambda ms: any(x["type"] == "resumed" for x in ms), timeout=20)
        self.assertAlmostEqual([x for x in ev if x["type"] == "resumed"][0]["admission"]["gauge"], 0.7, places=2)
        j = srv.wait_job(jid, timeout=30)
        self.assertEqual(j["state"], "done")
        res = j["resources"]
        self.assertGreater(res["predicted_bytes"], 0)
        self.assertGreater(res["peak_bytes"], 0)
        self.assertGreaterEqual(res["wall_s"], 0)
        self.assertGreaterEqual(res["cpu_s"], 0)
        self.assertEqual(j["lane"], "fast")
        wait_until(lambda: srv.get("/readyz").status == 200, what="/readyz 200 after the resume")
        self.assertEqual(metric(srv, "pixmend_admission_paused"), 0)
        self.assertEqual(metric(srv, "pixmend_admission_resumes_total"), 1)
        self.assertEqual(len([ln for ln in srv.log().splitlines() if "admission_resumed" in ln]), 1)
        st = srv.get("/api/v1/stats").json()
        self.assertEqual([t["paused"] for t in st["admission"]["transitions"]], [True, False])
        self.assertEqual(st["admission"]["pauses"], 1)
        self.assertTrue(st["samples"])
        self.assertEqual(len(st["cpu"]["per_core"]), os.cpu_count())
        self.assertEqual(st["recent_jobs"][0]["id"], jid)
        ws.close()


class Memory(unittest.TestCase):
    def test_413_names_the_largest_size_and_no_gpu_rows(self):
        tmp = tempfile.TemporaryDirectory(prefix="pmguard-")
        data = os.path.join(tmp.name, "data")
        write_memlaw(data, 1000000, 1000)  # 1 MB + 1000 B/px
        srv = Server(["--mem-budget", "8000000"], data_dir=data,
                     env={"PIXMEND_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"})
        try:
            r = srv.submit(png_bytes(test_image(120, 80)), png_bytes(test_mask(120, 80)))
            self.assertEqual(r.status, 413)
            msg = r.json()["error"]["message"]
            self.assertIn("this 120x80 inpaint job needs about", msg)
            self.assertIn("the largest image that fits is about 102x68", msg)
            # A size that fits is accepted and runs.
            r = srv.submit(png_bytes(test_image(100, 60)), png_bytes(test_mask(100, 60)))
            self.assertEqual(r.status, 202)
            self.assertEqual(srv.wait_job(r.json()["id"])["state"], "done")
            h = srv.get("/healthz").json()
            self.assertEqual(h["status"], "ok")
            for k in ("rss_bytes", "budget_bytes", "reserved_bytes", "host_available_bytes", "host_total_bytes"):
                self.assertIn(k, h["memory"])
            self.assertEqual(h["memory"]["budget_bytes"], 8000000)
            self.assertIn("cgroup_max_bytes", h["memory"])
            # No GPU: no GPU rows anywhere.
            self.assertEqual(srv.get("/api/v1/stats").json()["gpus"], [])
            text = srv.get("/metrics").body.decode()
            self.assertNotIn("pixmend_gpu_", text)
            fams = {f.name for f in text_string_to_metric_families(text)}
            for name in ("pixmend_jobs", "pixmend_queue_depth", "pixmend_job_duration_seconds",
                         "pixmend_queue_wait_seconds", "pixmend_admission_paused", "pixmend_admission_pauses",
                         "pixmend_memory_budget_bytes", "pixmend_memory_reserved_bytes",
                         "pixmend_process_resident_memory_bytes", "pixmend_cpu_usage_ratio",
                         "pixmend_disk_write_seconds"):
                self.assertIn(name, fams)
            self.assertEqual(metric(srv, "pixmend_memory_budget_bytes"), 8000000)
            # promtool agrees with the exposition (when installed).
            try:
                p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                                   timeout=30)
            except FileNotFoundError:
                p = None
            if p is not None:
                out = (p.stdout + p.stderr).decode()
                self.assertEqual(p.returncode, 0, out)
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()
            tmp.cleanup()


class WorkingPixels(unittest.TestCase):
    def test_crop_is_admitted_by_the_box_not_the_photo(self):
        """A 1600x1200 photo with a small masked box: the law applies to the
        box plus its margin (crop), so the job fits a budget the whole photo
        does not."""
        tmp = tempfile.TemporaryDirectory(prefix="pmguard-")
        data = os.path.join(tmp.name, "data")
        write_memlaw(data, 1000000, 100)  # 1 MB + 100 B/px: the whole photo 193 MB
        srv = Server(["--mem-budget", "60000000"], data_dir=data,
                     env={"PIXMEND_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"})
        try:
            w, h = 1600, 1200
            img = png_bytes(test_image(w, h))
            mask = png_bytes(test_mask(w, h, box=(700, 500, 739, 529)))  # 40x30
            r = srv.submit(img, mask, hd_strategy="original")
            self.assertEqual(r.status, 413, r.body)
            self.assertIn("this 1600x1200 inpaint job needs about", r.json()["error"]["message"])
            r = srv.submit(img, mask)  # auto: crop above 800 px
            self.assertEqual(r.status, 202, r.body)
            job = srv.wait_job(r.json()["id"], timeout=60)
            self.assertEqual(job["state"], "done")
            predicted = job["resources"]["predicted_bytes"]
            box = (40 + 256) * (30 + 256)
            # the law at the box, plus 9 bytes a pixel of full-size buffers
            self.assertEqual(predicted, 1000000 + 100 * box + 9 * w * h)
            self.assertLess(job["resources"]["peak_bytes"], predicted)
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()
            tmp.cleanup()


@unittest.skipUnless(FAKE_NVML and os.path.exists(FAKE_NVML), "PM_FAKE_NVML (the fake NVML library) is not built")
class Overload(unittest.TestCase):
    LARGE = (512, 384)   # 196608 px: 10 MB + 100 B/px = 29.7 MB predicted
    SMALL = (64, 48)     # 3072 px: 10.3 MB
    BUDGET = 75000000    # two large + one small; never three large

    def test_overload(self):
        tmp = tempfile.TemporaryDirectory(prefix="pmguard-")
        gpu = Gpu(tmp.name)
        data = os.path.join(tmp.name, "data")
        write_memlaw(data, 10000000, 100)
        srv = Server(["--workers", "3", "--threads", "1", "--mem-budget", str(self.BUDGET), "--queue-max", "26",
                      "--fast-lane-pixels", "100000", "--job-delay-ms", "300", "--sample-interval", "0.05"],
                     data_dir=data, env=gpu.env())
        try:
            baseline_kb = vm_kb(srv.proc.pid, "VmRSS")
            large = (png_bytes(test_image(*self.LARGE)), png_bytes(test_mask(*self.LARGE)))
            small = (png_bytes(test_image(*self.SMALL, seed=3)), png_bytes(test_mask(*self.SMALL)))
            answers = []
            lock = threading.Lock()

            def send(kind, pair):
                r = srv.submit(*pair, timeout=60)
                with lock:
                    answers.append((kind, r))

            def burst(kind, pair, n):
                ts = [threading.Thread(target=send, args=(kind, pair)) for _ in range(n)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(90)

            burst("large", large, 25)
            burst("small", small, 8)
            statuses = sorted({r.status for _, r in answers})
            self.assertTrue(set(statuses) <= {202, 429}, [r for _, r in answers if r.status not in (202, 429)])
            for _, r in answers:
                if r.status == 429:
                    self.assertGreaterEqual(int(r.header("Retry-After")), 1)
                    self.assertEqual(r.json()["error"]["code"], "queue_full")
            self.assertIn(429, statuses)  # 25 + 8 > 26 waiting with 3 workers
            ids = {"large": [r.json()["id"] for k, r in answers if k == "large" and r.status == 202],
                   "small": [r.json()["id"] for k, r in answers if k == "small" and r.status == 202]}
            self.assertEqual(len(ids["large"]), 25)
            self.assertTrue(ids["small"])

            # Pause and resume in the middle of it, through the fake GPU.
            wait_until(lambda: all(srv.job(i)["state"] != "queued" for i in ids["small"]), timeout=60,
                       what="the small jobs to start")
            gpu.set(0.95)
            wait_until(lambda: srv.get("/readyz").status == 503, timeout=20, what="intake to pause")
            self.assertEqual(metric(srv, "pixmend_admission_paused"), 1)
            gpu.set(0.5)
            wait_until(lambda: srv.get("/readyz").status == 200, timeout=20, what="intake to resume")

            done = {}
            for kind in ("large", "small"):
                for i in ids[kind]:
                    j = srv.wait_job(i, timeout=120)
                    self.assertEqual(j["state"], "done", j)
                    done[i] = j
            # Small jobs overtook large ones queued before them.
            last_small = max(done[i]["finished_at"] for i in ids["small"])
            later_large = [i for i in ids["large"] if done[i]["finished_at"] > last_small]
            self.assertGreaterEqual(len(later_large), 5, "only %d large jobs finished after the small ones"
                                    % len(later_large))
            # Never three large jobs at once: the budget held.
            spans = sorted((done[i]["started_at"], done[i]["finished_at"]) for i in ids["large"])
            for t in {s for s, _ in spans}:
                self.assertLessEqual(sum(1 for s, e in spans if s <= t < e), 2)
            # The server's peak RSS stayed under baseline + budget (not under
            # AddressSanitizer, whose shadow memory and quarantine of freed
            # blocks are not the program's).
            if os.environ.get("PM_SANITIZE") != "1":
                self.assertLess(vm_kb(srv.proc.pid, "VmHWM") * 1024, baseline_kb * 1024 + self.BUDGET)
            m = metrics(srv)
            self.assertEqual(m[("pixmend_admission_pauses_total", frozenset())], 1)
            self.assertEqual(m[("pixmend_admission_resumes_total", frozenset())], 1)
            self.assertEqual(m[("pixmend_memory_reserved_bytes", frozenset())], 0)
            self.assertEqual(m[("pixmend_jobs_total", frozenset({"task": "inpaint", "model": "patchmatch",
                                                                 "outcome": "done"}.items()))],
                             len(ids["large"]) + len(ids["small"]))
            log = srv.log()
            self.assertEqual(log.count("admission_paused"), 1)
            self.assertEqual(log.count("admission_resumed"), 1)
            print("overload: %d accepted, %d refused (429); %d large jobs finished after the last small one"
                  % (len(ids["large"]) + len(ids["small"]), sum(1 for _, r in answers if r.status == 429),
                     len(later_large)), file=sys.stderr)
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()
            tmp.cleanup()


if __name__ == "__main__":
    pmtest.run_tests(__name__)
