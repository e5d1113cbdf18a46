"""Every route of `pixmend serve` answering as documented (docs/api.md)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import ServerCase, decode, job_files, png_bytes, test_image, test_mask, wait_until  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the exposition is then parsed by hand below
    text_string_to_metric_families = None


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} from the Prometheus text."""
    out = {}
    if text_string_to_metric_families:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            for kv in rest.rstrip("}").split(","):
                k, v = kv.split("=", 1)
                labels[k] = v.strip('"')
        else:
            name = name_labels
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def unchanged_outside(original, result, mask):
    """True when every pixel outside the mask is identical."""
    o = original.convert("RGB").load()
    r = result.convert("RGB").load()
    m = mask.load()
    w, h = original.size
    return all(o[x, y] == r[x, y] for y in range(h) for x in range(w) if m[x, y] == 0)


class Routes(ServerCase):
    server_args = ["--workers", "1", "--threads", "1"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.img = test_image()
        cls.mask = test_mask()

    def test_startup_line(self):
        self.assertRegex(self.srv.startup_line,
                         r"^pixmend serving on http://127\.0\.0\.1:\d+ \(models: patchmatch\)$")

    def test_healthz_reports_memory(self):
        r = self.srv.get("/healthz")
        self.assertEqual(r.status, 200)
        j = r.json()
        self.assertEqual(j["status"], "ok")
        self.assertGreater(j["memory"]["rss_bytes"], 1 << 20)
        self.assertGreater(j["memory"]["pm_mem_in_use"], 0)
        self.assertGreaterEqual(j["memory"]["pm_mem_peak"], j["memory"]["pm_mem_in_use"])

    def test_readyz_when_ready(self):
        r = self.srv.get("/readyz")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json()["ready"])

    def test_models_lists_patchmatch_as_default(self):
        j = self.srv.get("/api/v1/models").json()
        pm = [m for m in j["models"] if m["name"] == "patchmatch"]
        self.assertEqual(len(pm), 1)
        self.assertTrue(pm[0]["loaded"])
        self.assertTrue(pm[0]["default"])
        self.assertEqual(pm[0]["task"], "inpaint")

    def test_static_index(self):
        r = self.srv.get("/")
        self.assertEqual(r.status, 200)
        self.assertIn(b"pixmend", r.body)
        self.assertIn("text/html", r.header("Content-Type"))

    def test_async_job_lifecycle(self):
        r = self.srv.submit(self.img_png, self.mask_png)
        self.assertEqual(r.status, 202, r)
        j = r.json()
        self.assertEqual(j["state"], "queued")
        self.assertGreaterEqual(j["queue_position"], 0)
        self.assertEqual(r.header("Location"), "/api/v1/jobs/" + j["id"])
        done = self.srv.wait_job(j["id"])
        self.assertEqual(done["state"], "done", done)
        self.assertEqual(done["attempts"], 1)
        self.assertEqual((done["width"], done["height"]), self.img.size)
        res = self.srv.get(done["result_url"])
        self.assertEqual(res.status, 200)
        self.assertEqual(res.header("Content-Type"), "image/png")
        self.assertEqual(len(res.body), done["result_bytes"])
        out = decode(res.body)
        self.assertEqual(out.size, self.img.size)
        self.assertTrue(unchanged_outside(self.img, out, self.mask))
        # the result file lives where the design says: outputs/YYYY/MM/DD/<id>.png
        day = time.strftime("%Y/%m/%d", time.gmtime(done["finished_at"]))
        self.assertTrue(os.path.exists(os.path.join(self.srv.data_dir, "outputs", day, j["id"] + ".png")))

    def test_output_formats(self):
        for fmt, mime, pil in (("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP"),
                               ("png", "image/png", "PNG")):
            j = self.srv.submit(self.img_png, self.mask_png, format=fmt, quality=80).json()
            done = self.srv.wait_job(j["id"])
            self.assertEqual(done["state"], "done", done)
            self.assertEqual(done["format"], fmt)
            res = self.srv.get(done["result_url"])
            self.assertEqual(res.header("Content-Type"), mime)
            self.assertEqual(decode(res.body).format, pil)

    def test_sync_inpaint(self):
        r = self.srv.post_form("/api/v1/inpaint", {}, job_files(self.img_png, self.mask_png))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "image/png")
        self.assertRegex(r.header("X-Pixmend-Job"), "^[0-9a-f]{32}$")
        out = decode(r.body)
        self.assertEqual(out.size, self.img.size)
        self.assertTrue(unchanged_outside(self.img, out, self.mask))
        # a synchronous job is forgotten once answered
        self.assertEqual(self.srv.get("/api/v1/jobs/" + r.header("X-Pixmend-Job")).status, 404)

    def test_mask_resize(self):
        small = png_bytes(self.mask.resize((32, 24), 0))
        r = self.srv.post_form("/api/v1/inpaint", {"mask_resize": "1"}, job_files(self.img_png, small))
        self.assertEqual(r.status, 200, r)
        out = decode(r.body)
        big = self.mask.resize((32, 24), 0).resize(self.img.size, 0)
        self.assertTrue(unchanged_outside(self.img, out, big))

    def test_queue_and_stats(self):
        q = self.srv.get("/api/v1/queue")
        self.assertEqual(q.status, 200)
        qj = q.json()
        for k in ("depth", "max", "running", "queued"):
            self.assertIn(k, qj)
        s = self.srv.get("/api/v1/stats").json()
        self.assertEqual(s["state"], "ready")
        self.assertEqual(s["workers"], 1)
        self.assertEqual(s["threads"], 1)
        for k in ("submitted", "done", "failed", "cancelled", "rejected"):
            self.assertIn(k, s["jobs"])

    def test_metrics_count_jobs(self):
        before = parse_metrics(self.srv.get("/metrics").body.decode())
        done_key = ("pixmend_jobs_total",
                    frozenset({"task": "inpaint", "model": "patchmatch", "outcome": "done"}.items()))
        rej_key = ("pixmend_jobs_total", frozenset({"task": "any", "model": "any", "outcome": "rejected"}.items()))
        j = self.srv.submit(self.img_png, self.mask_png).json()
        self.srv.wait_job(j["id"])
        self.assertEqual(self.srv.submit(b"", self.mask_png).status, 400)
        r = self.srv.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        after = parse_metrics(r.body.decode())
        self.assertEqual(after[done_key], before[done_key] + 1)
        self.assertEqual(after[rej_key], before[rej_key] + 1)
        self.assertIn(("pixmend_queue_depth", frozenset({"lane": "fast"}.items())), after)
        self.assertIn(("pixmend_queue_depth", frozenset({"lane": "normal"}.items())), after)
        self.assertTrue(all(name.startswith("pixmend_") for name, _ in after))
        # histograms: one more start and one more finished run, cumulative buckets
        for h in ("pixmend_queue_wait_seconds", "pixmend_job_run_seconds", "pixmend_job_duration_seconds",
                  "pixmend_disk_write_seconds"):
            key = (h + "_count", frozenset())
            self.assertEqual(after[key], before[key] + 1)
            buckets = sorted(((float(dict(lbl)["le"]), v) for (n, lbl), v in after.items() if n == h + "_bucket"))
            self.assertGreater(len(buckets), 5)
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
            self.assertEqual(buckets[-1], (float("inf"), after[key]))


class Scheduling(ServerCase):
    """Priorities, cancellation and not-ready results, with jobs held by --job-delay-ms."""

    server_args = ["--job-delay-ms", "600", "--threads", "1"]

    def submit(self, **fields):
        r = self.srv.submit(self.img_png, self.mask_png, **fields)
        self.assertEqual(r.status, 202, r)
        return r.json()["id"]

    def wait_running(self, job_id):
        wait_until(lambda: self.srv.job(job_id)["state"] == "running", what="job to start")

    def test_priority_order_and_fifo(self):
        blocker = self.submit()
        self.wait_running(blocker)
        low = self.submit(priority=1)
        mid1 = self.submit(priority=5)
        high = self.submit(priority=9)
        mid2 = self.submit(priority=5)
        q = self.srv.get("/api/v1/queue").json()
        order = [j["id"] for j in q["queued"]]
        self.assertEqual(order, [high, mid1, mid2, low])
        self.assertEqual([self.srv.job(i)["queue_position"] for i in order], [0, 1, 2, 3])
        self.assertEqual([j["id"] for j in q["running"]], [blocker])
        fin = {i: self.srv.wait_job(i, timeout=30)["started_at"] for i in [blocker] + order}
        started = sorted(fin, key=fin.get)
        self.assertEqual(started, [blocker, high, mid1, mid2, low])

    def test_cancel_queued_and_running(self):
        running = self.submit()
        self.wait_running(running)
        queued = self.submit()
        r = self.srv.request("DELETE", "/api/v1/jobs/" + queued)
        self.assertEqual(r.status, 202)
        self.assertEqual(r.json()["state"], "cancelled")
        r = self.srv.request("DELETE", "/api/v1/jobs/" + running)
        self.assertEqual(r.status, 202)
        j = self.srv.wait_job(running)
        self.assertEqual(j["state"], "cancelled")
        self.assertEqual(j["error"]["code"], "cancelled")
        # a finished job cannot be cancelled
        self.assertEqual(self.srv.request("DELETE", "/api/v1/jobs/" + running).status, 409)
        # neither has a result
        self.assertEqual(self.srv.get("/api/v1/jobs/%s/result" % queued).status, 409)
        # its inputs are gone from the data directory
        self.assertFalse(os.path.exists(os.path.join(self.srv.data_dir, "inputs", queued + ".image")))

    def test_result_not_ready(self):
        jid = self.submit()
        r = self.srv.get("/api/v1/jobs/%s/result" % jid)
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json()["error"]["code"], "not_ready")
        self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual(self.srv.wait_job(jid)["state"], "done")

    def test_progress_reported(self):
        jid = self.submit()
        seen = wait_until(lambda: (lambda j: j if j["state"] == "running" and j["progress"]["max"] > 0 else None)(
            self.srv.job(jid)), what="progress")
        self.assertLessEqual(seen["progress"]["value"], seen["progress"]["max"])
        self.srv.wait_job(jid)


if __name__ == "__main__":
    pmtest.run_tests(__name__)
