"""WebSocket events at /ws: ordered per job, filters, many clients, clients
that vanish or never read."""
import json
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import ServerCase, WSClient, job_files, png_bytes, test_image, test_mask, wait_until  # noqa: E402

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

    def test_vanishing_clients_are_reaped(self):
        # clients that drop the TCP connection without a close frame
        for _ in range(10):
            WSClient(self.srv.port).abort()
        watcher = WSClient(self.srv.port)
        try:
            jid = self.srv.submit(self.img_png, self.mask_png).json()["id"]
            self.assertOrdered(job_events(watcher.collect(ended(jid), timeout=30), jid), "done")
            wait_until(lambda: self.srv.get("/api/v1/stats").json()["websocket"]["clients"] == 1,
                       what="aborted clients to be reaped")
        finally:
            watcher.close()
        wait_until(lambda: self.srv.get("/api/v1/stats").json()["websocket"]["clients"] == 0,
                   what="all clients to be reaped")


def job_key(m):
    return (m["job"], m["seq"], m["type"])


def drain(ws, idle=5):
    """Reads until a close frame (returned as its payload), the connection's
    end or `idle` seconds of silence (returned as the exception); returns
    (the job events read as job_key tuples, how it ended)."""
    heard = []
    ws.sock.settimeout(idle)
    try:
        while True:
            op, payload = ws.recv_frame()
            if op == 0x8:
                return heard, payload
            m = json.loads(payload.decode())
            if m.get("job"):
                heard.append(job_key(m))
    except (ConnectionError, OSError) as e:
        return heard, e


class SilentClient(ServerCase):
    """A client that never reads, against a flood of events: tiny synchronous
    jobs from six threads (thousands of events a second) until the silent
    client's socket buffers and its outbox (1024 messages) are full. The
    server must cut it off (docs/api.md: a close frame 1008, no further
    events), keep serving HTTP, and deliver every event to a client that reads."""
    server_args = ["--threads", "1", "--workers", "2"]
    assertOrdered = Events.assertOrdered

    def test_silent_client_is_cut_off_and_delays_nobody(self):
        img, mask = png_bytes(test_image(16, 16)), png_bytes(test_mask(16, 16))
        silent = WSClient(self.srv.port, rcvbuf=4096)
        watcher = WSClient(self.srv.port)
        got, reader_error = [], []

        def read_all():
            try:
                while True:
                    got.append(watcher.recv_json(timeout=60))
            except Exception as e:  # the close at the end of the test
                reader_error.append(e)

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        stop, done, bad = threading.Event(), [], []

        def flood():
            while not stop.is_set():
                r = self.srv.post_form("/api/v1/inpaint", {}, job_files(img, mask), timeout=30)
                (done if r.status == 200 else bad).append(r.status)

        floods = [threading.Thread(target=flood, daemon=True) for _ in range(6)]
        try:
            for t in floods:
                t.start()
            deadline = time.time() + 120
            overflows = 0
            while overflows == 0:
                self.assertLess(time.time(), deadline, "the silent client was never cut off (%d jobs)" % len(done))
                t0 = time.time()
                h = self.srv.get("/healthz", timeout=10)
                self.assertEqual(h.status, 200)
                self.assertLess(time.time() - t0, 2.0, "/healthz took %.1f s during the flood" % (time.time() - t0))
                overflows = self.srv.get("/api/v1/stats").json()["websocket"]["overflows"]
                time.sleep(0.2)
            stop.set()
            for t in floods:
                t.join(30)
            self.assertEqual(bad, [])
            self.assertEqual(overflows, 1, "only the silent client falls behind")
            # after the cut-off: a new job's events reach the reader, not the silent client
            jid = self.srv.submit(self.img_png, self.mask_png).json()["id"]
            wait_until(lambda: ended(jid)(got), timeout=60, what="the reader to see the last job end")
            self.assertOrdered(job_events(got, jid), "done")
            mine = [job_key(m) for m in got if m.get("job")]
            # the reader got every event of every job, each job's in order
            self.assertEqual(len([k for k in mine if k[2] == "done"]), len(done) + 1)
            per_job = {}
            for m in got:
                if m.get("job"):
                    per_job.setdefault(m["job"], []).append(m)
            for events in per_job.values():
                self.assertOrdered(events, "done")
            # the silent client, reading at last, finds a prefix of the same stream
            # and then the close frame 1008; nothing newer, also not later
            heard, end = drain(silent)
            print("# silent client: %d of %d job events, then %r" % (len(heard), len(mine), end))
            self.assertGreater(len(heard), 0)
            self.assertLess(len(heard), len(mine) - 1024, "the silent client was not cut off")
            self.assertEqual(heard, mine[:len(heard)], "the silent client's events are not a prefix of the stream")
            self.assertIsInstance(end, bytes, "no close frame for the silent client")
            self.assertEqual(end[:2], struct.pack(">H", 1008), end)
            later = self.srv.submit(self.img_png, self.mask_png).json()["id"]
            wait_until(lambda: ended(later)(got), timeout=60, what="the reader to see a later job end")
            after, _ = drain(silent, idle=1)
            self.assertEqual(after, [], "events after the close frame")
            self.assertNotIn(jid, [k[0] for k in heard])
            self.assertEqual(self.srv.get("/healthz").status, 200)
        finally:
            stop.set()
            silent.abort()
            watcher.close()
        wait_until(lambda: self.srv.get("/api/v1/stats").json()["websocket"]["clients"] == 0, timeout=30,
                   what="both clients to be reaped")


if __name__ == "__main__":
    pmtest.run_tests(__name__)
