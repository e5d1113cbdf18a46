"""One contract per concept: every WebSocket event and every job object the
REST API answers with, captured from a running server, must validate against
docs/events.schema.json, which is closed (additionalProperties false,
every field required): a writer that renames, adds or drops a field fails
here. The objects the schema shares with docs/openapi.yaml must list the same
fields there, and GET /api/v1/models must publish the option table the UI
reads. Skips (77) without python3-jsonschema."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import Server, WSClient, png_bytes, test_image, test_mask, wait_until  # noqa: E402

try:
    import jsonschema
except ImportError:
    print("SKIP: python3-jsonschema is not installed (scripts/install-deps test)")
    sys.exit(77)
import yaml  # noqa: E402

SCHEMA_PATH = os.path.join(pmtest.SOURCE_DIR, "docs", "events.schema.json")
OPENAPI_PATH = os.path.join(pmtest.SOURCE_DIR, "docs", "openapi.yaml")
FAKE_NVML = os.environ.get("PM_FAKE_NVML", "")
TERMINAL = ("done", "failed", "cancelled")
EVENT_TYPES = {"status", "queued", "started", "progress", "done", "failed", "cancelled", "paused", "resumed"}
# The objects both files describe: events.schema.json $defs name -> openapi.yaml component.
SHARED = {"Job": "Job", "JobAccepted": "JobAccepted", "Error": "ErrorBody", "Admission": "Admission",
          "Memory": "Memory", "QueueSummary": "QueueSummary", "WebSocketStats": "WebSocketStats",
          "Resources": "Resources", "Progress": "Progress"}

with open(SCHEMA_PATH) as f:
    SCHEMA = json.load(f)
jsonschema.Draft202012Validator.check_schema(SCHEMA)


def validator(name=None):
    """A validator for the whole event union, or for one of the $defs."""
    schema = SCHEMA if name is None else {"$ref": "#/$defs/" + name, "$defs": SCHEMA["$defs"]}
    return jsonschema.Draft202012Validator(schema)


def check(testcase, name, value, where):
    errors = sorted(validator(name).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        testcase.fail("%s is not a valid %s: %s\n%s" % (
            where, name or "event", "; ".join("%s: %s" % ("/".join(map(str, e.path)), e.message) for e in errors[:5]),
            json.dumps(value)[:600]))


def ended(job_id):
    return lambda msgs: any(m.get("job") == job_id and m["type"] in TERMINAL for m in msgs)


class Contract(unittest.TestCase):
    """A server with a fake GPU whose memory the test sets (for paused and
    resumed events), and slow jobs (so that one can be cancelled queued)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="pmcontract-")
        env = {}
        cls.nvml = os.path.join(cls.tmp.name, "nvml-script")
        if FAKE_NVML and os.path.exists(FAKE_NVML):
            cls.set_gpu(0.1)
            env = {"PIXMEND_NVML_LIBRARY": FAKE_NVML, "PM_FAKE_NVML_FILE": cls.nvml}
        cls.srv = Server(["--threads", "1", "--job-delay-ms", "300", "--sample-interval", "0.05",
                          "--pause-at", "0.85", "--resume-below", "0.75"], env=env)
        cls.img = png_bytes(test_image(64, 48))
        cls.mask = png_bytes(test_mask(64, 48))

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        err = cls.srv.stderr()
        cls.srv.cleanup()
        cls.tmp.cleanup()
        # Under ASan/UBSan a report ends the server non-zero or at least in its stderr.
        if rc != 0 or "runtime error" in err or "Sanitizer" in err:
            raise AssertionError("the server ended with %r: %s" % (rc, err[-2000:]))

    @classmethod
    def set_gpu(cls, fraction):
        total = 8 << 30
        with open(cls.nvml + ".tmp", "w") as f:
            f.write("1 %d %d 30\n" % (int(total * fraction), total))
        os.replace(cls.nvml + ".tmp", cls.nvml)

    def test_every_event_and_job_object_matches_the_schema(self):
        srv = self.srv
        ws = WSClient(srv.port)
        try:
            msgs = [ws.recv_json()]
            accepted = []
            # done (async), failed (a mask of the whole image leaves nothing to copy from),
            # cancelled while queued, and a sync job (result_url null in its events).
            for mask in (self.mask, png_bytes(test_mask(64, 48, box=(0, 0, 63, 47))), self.mask):
                r = srv.submit(self.img, mask)
                self.assertEqual(r.status, 202, r)
                accepted.append(r.json())
            done_id, failed_id, cancel_id = (a["id"] for a in accepted)
            queue = srv.get("/api/v1/queue").json()
            self.assertEqual(srv.request("DELETE", "/api/v1/jobs/" + cancel_id).status, 202)
            r = srv.post_form("/api/v1/inpaint", {}, pmtest.job_files(self.img, self.mask))
            self.assertEqual(r.status, 200, r)
            sync_id = r.header("X-Pixmend-Job")
            msgs += ws.collect(lambda ms: all(ended(j)(ms) for j in (done_id, failed_id, cancel_id, sync_id)))
            if FAKE_NVML and os.path.exists(FAKE_NVML):
                self.set_gpu(0.9)
                msgs += ws.collect(lambda ms: any(m["type"] == "paused" for m in ms))
                self.set_gpu(0.1)
                msgs += ws.collect(lambda ms: any(m["type"] == "resumed" for m in ms))
        finally:
            ws.close()

        # Every event is one of the schema's (checked against its own type's
        # definition first, for a precise message, then against the union).
        for m in msgs:
            own = str(m.get("type", "")).capitalize() + "Event"
            if own in SCHEMA["$defs"]:
                check(self, own, m, "event %s" % m["type"])
            check(self, None, m, "event %s" % m.get("type"))
        wanted = EVENT_TYPES if FAKE_NVML and os.path.exists(FAKE_NVML) else EVENT_TYPES - {"paused", "resumed"}
        self.assertEqual({m["type"] for m in msgs} & wanted, wanted)
        by_job = {j: [m for m in msgs if m.get("job") == j] for j in (done_id, failed_id, cancel_id, sync_id)}
        self.assertEqual(by_job[done_id][-1]["result_url"], "/api/v1/jobs/%s/result" % done_id)
        self.assertIsNone(by_job[sync_id][-1]["result_url"])
        self.assertEqual(by_job[failed_id][-1]["error"]["code"], "no_source")
        self.assertEqual(by_job[cancel_id][-1]["error"]["code"], "cancelled")

        # The REST side of the same jobs.
        for a in accepted:
            check(self, "JobAccepted", a, "POST /api/v1/jobs answer")
        for j in queue["running"] + queue["queued"]:
            check(self, "Job", j, "GET /api/v1/queue item")
        for jid in (done_id, failed_id, cancel_id):  # a sync job is not kept once answered
            j = srv.get("/api/v1/jobs/" + jid).json()
            check(self, "Job", j, "GET /api/v1/jobs/%s (%s)" % (jid, j.get("state")))
            ev = by_job[jid]
            # An event's job fields hold what the job object says.
            self.assertEqual(ev[-1]["state"], j["state"])
            for k in ("result_url", "result_bytes", "error"):
                if k in ev[-1]:
                    self.assertEqual(ev[-1][k], j[k], k)
            queued = [e for e in ev if e["type"] == "queued"]
            self.assertEqual(queued[0]["model"], j["model"])
        st = srv.get("/api/v1/stats").json()
        self.assertGreaterEqual(len(st["recent_jobs"]), 3)
        for j in st["recent_jobs"]:
            check(self, "Job", j, "recent_jobs item")
        check(self, "Admission", st["admission"], "stats admission")
        check(self, "Memory", st["memory"], "stats memory")
        check(self, "WebSocketStats", st["websocket"], "stats websocket")
        self.assertEqual({k: st["queue"][k] for k in ("depth", "max")}, {"depth": 0, "max": st["queue"]["max"]})
        h = srv.get("/healthz").json()
        check(self, "Memory", h["memory"], "/healthz memory")
        check(self, "Admission", h["admission"], "/healthz admission")
        check(self, "Admission", srv.get("/readyz").json()["admission"], "/readyz admission")
        err = srv.get("/api/v1/jobs/" + "f" * 32).json()["error"]
        check(self, "Error", err, "an error answer")

    def test_models_publish_the_option_table(self):
        m = self.srv.get("/api/v1/models").json()
        self.assertEqual(m["formats"], ["png", "jpeg", "webp"])
        size = m["limits"]["input_size"]
        self.assertEqual((size["min"], size["max"], size["step"], size["default"]), (64, 2048, 32, 512))
        self.assertEqual(size["presets"], {"portrait": 512, "building": 1024})
        # The HTTP form obeys the published table, presets included.
        for value, status in ((str(size["min"] - size["step"]), 400), (str(size["max"] + size["step"]), 400),
                              (str(size["min"] + 1), 400), ("building", 404), (str(size["min"]), 404)):
            r = self.srv.post_form("/api/v1/jobs", {"task": "colorize", "input_size": value},
                                   pmtest.job_files(self.img))
            # 404: the value passed and the job was refused only for want of a colorize model.
            self.assertEqual(r.status, status, (value, r))
        for name in ("priority", "quality", "mask_dilate"):
            lim = m["limits"][name]
            r = self.srv.submit(self.img, self.mask, **{name: str(lim["max"] + 1)})
            self.assertEqual(r.status, 400, r)
            self.assertIn("from %d to %d" % (lim["min"], lim["max"]), r.json()["error"]["message"])
            r = self.srv.submit(self.img, self.mask, **{name: str(lim["default"])})
            self.assertEqual(r.status, 202, r)
        wait_until(lambda: self.srv.get("/api/v1/queue").json()["depth"] == 0, timeout=30, what="an empty queue")

    def test_openapi_lists_the_same_fields(self):
        with open(OPENAPI_PATH) as f:
            components = yaml.safe_load(f)["components"]["schemas"]
        defs = SCHEMA["$defs"]
        for ours, theirs in SHARED.items():
            with self.subTest(schema=ours):
                d = defs[ours]
                props = set(d.get("properties", {}))
                if d.get("$ref") == "#/$defs/JobFields":
                    props |= set(defs["JobFields"]["properties"])
                self.assertTrue(theirs in components, "openapi.yaml has no %s" % theirs)
                self.assertEqual(set(components[theirs].get("properties", {})), props)
                self.assertEqual(set(components[theirs].get("required", [])), set(d.get("required", [])))
                self.assertIs(components[theirs].get("additionalProperties"), False)


if __name__ == "__main__":
    pmtest.run_tests(__name__)
