"""WebSocket events at /ws: ordered per job, filters, many clients, clients
that vanish or never read."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import ServerCase, WSClient, png_bytes, test_mask, wait_until  # noqa: E402

TERMINAL = ("done", "failed", "cancelled")


def job_events(msgs, job_id):
    return [m for m in msgs if m.get("job") == job_id]


def ended(job_id):
    return lambda msgs: any(m.get("job") == job_id and m["type"] in TERMINAL for m in msgs)


class Events(ServerCase):
    server_args = ["--job-delay-ms", "400", "--threads", "1"]

    def assertOrdered(self, events, final):
        types = [e["type"] for e in events]
        self.assertEqual(types[0], "queued", types)
        self.assertEqual(types[1], "started", types)
        self.assertEqual(types[-1], final, types)
        self.assertTrue(all(t == "progress" for t in types[2:-1]), types)
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(set(seqs)), len(seqs))
        # progress counts up within each phase (a phase is a run of one `max`;
        # the test delay and the engine are two phases here)
        prog = [(e["progress"]["max"], e["progress"]["value"]) for e in events if e["type"] == "progress"]
        for (m0, v0), (m1, v1) in zip(prog, prog[1:]):
            if m0 == m1:
                self.assertLessEqual(v0, v1, prog)
            self.assertLessEqual(v1, m1)

    def test_status_on_connect(self):
        ws = WSClient(self.srv.port)
        try:
            first = ws.recv_json()
            self.assertEqual(first["type"], "status")
            self.assertEqual(first["state"], "ready")
            for k in ("queue", "running", "workers", "admission"):
                self.assertIn(k, first)
        finally:
            ws.close()

    def test_job_events_in_order(self):
        ws = WSClient(self.srv.port)
        try:
            jid = self.srv.submit(self.img_png, self.mask_png).json()["id"]
            msgs = ws.collect(ended(jid))
            ev = job_events(msgs, jid)
            self.assertOrdered(ev, "done")
            self.assertEqual(ev[0]["queue_position"], 0)
            self.assertGreaterEqual(len([e for e in ev if e["type"] == "progress"]), 2)
            self.assertEqual(ev[-1]["result_url"], "/api/v1/jobs/%s/result" % jid)
            self.assertEqual(self.srv.get(ev[-1]["result_url"]).status, 200)
        finally:
            ws.close()

    def test_filter_by_job_and_cancel_event(self):
        a = self.srv.submit(self.img_png, self.mask_png).json()["id"]
        b = self.srv.submit(self.img_png, self.mask_png).json()["id"]
        ws = WSClient(self.srv.port, "/ws?job=" + b)
        try:
            self.assertEqual(ws.recv_json()["type"], "status")
            wait_until(lambda: self.srv.job(b)["state"] in ("queued", "running"), what="b")
            self.assertEqual(self.srv.request("DELETE", "/api/v1/jobs/" + b).status, 202)
            msgs = ws.collect(ended(b))
            self.assertTrue(all(m.get("job") in (None, b) for m in msgs if m["type"] != "status"), msgs)
            self.assertEqual(msgs[-1]["type"], "cancelled")
            self.assertEqual(msgs[-1]["error"]["code"], "cancelled")
            self.srv.wait_job(a)
        finally:
            ws.close()

    def test_failed_event_carries_message(self):
        ws = WSClient(self.srv.port)
        try:
            full = png_bytes(test_mask(64, 48, box=(0, 0, 63, 47)))
            jid = self.srv.submit(self.img_png, full).json()["id"]
            ev = job_events(ws.collect(ended(jid)), jid)
            self.assertOrdered(ev, "failed")
            self.assertEqual(ev[-1]["error"]["code"], "no_source")
            self.assertGreater(len(ev[-1]["error"]["message"]), 10)
        finally:
            ws.close()

    def test_many_clients_all_get_every_event_in_order(self):
        clients = [WSClient(self.srv.port) for _ in range(12)]
        try:
            ids = [self.srv.submit(self.img_png, self.mask_png, priority=p).json()["id"] for p in (3, 7)]
            seen = []
            for ws in clients:
                msgs = ws.collect(lambda m: all(ended(i)(m) for i in ids))
                for i in ids:
                    self.assertOrdered(job_events(msgs, i), "done")
                seen.append([(m["seq"], m["type"], m["job"]) for m in msgs if m.get("job") in ids])
            # every client saw the same events in the same order
            for other in seen[1:]:
                self.assertEqual(other, seen[0])
        finally:
            for ws in clients:
                ws.close()
        wait_until(lambda: self.srv.get("/api/v1/stats").json()["websocket"]["clients"] == 0,
                   what="WebSocket clients to be gone")

    def test_vanishing_and_silent_clients_cost_nothing(self):
        # clients that drop the TCP connection without a close frame
        for _ in range(10):
            WSClient(self.srv.port).abort()
        # a client that never reads a byte
        silent = WSClient(self.srv.port)
        watcher = WSClient(self.srv.port)
        try:
            t0 = time.time()
            ids = [self.srv.submit(self.img_png, self.mask_png).json()["id"] for _ in range(3)]
            msgs = watcher.collect(lambda m: all(ended(i)(m) for i in ids), timeout=30)
            for i in ids:
                self.assertOrdered(job_events(msgs, i), "done")
            # three jobs of 0.4 s each: not held up by the silent client
            self.assertLess(time.time() - t0, 10)
            wait_until(lambda: self.srv.get("/api/v1/stats").json()["websocket"]["clients"] == 2,
                       what="aborted clients to be reaped")
        finally:
            silent.abort()
            watcher.close()
        wait_until(lambda: self.srv.get("/api/v1/stats").json()["websocket"]["clients"] == 0,
                   what="all clients to be reaped")
        h = self.srv.get("/healthz")
        self.assertEqual(h.status, 200)


if __name__ == "__main__":
    pmtest.run_tests(__name__)
