"""Drain on SIGTERM, crash and restart (kill -9), the journal, job timeouts,
result time-to-live and the cap on stored results."""
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import Server, WSClient, decode, job_files, png_bytes, result_bytes_of, test_image, test_mask, wait_until  # noqa: E402


def journal_done_counts(data_dir):
    """{job id: number of transitions to 'done'} read straight from the SQLite journal."""
    db = sqlite3.connect(os.path.join(data_dir, "journal.sqlite"))
    try:
        rows = db.execute("SELECT job_id, count(*) FROM transitions WHERE to_state='done' GROUP BY job_id").fetchall()
        return dict(rows)
    finally:
        db.close()


def journal_states(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "journal.sqlite"))
    try:
        return dict(db.execute("SELECT id, state FROM jobs").fetchall())
    finally:
        db.close()


class Lifecycle(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pmtest-life-")
        self.data = os.path.join(self.tmp.name, "data")
        self.img = png_bytes(test_image())
        self.mask = png_bytes(test_mask())
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.close()
        self.tmp.cleanup()

    def start(self, *args):
        s = Server(list(args) + ["--threads", "1"], data_dir=self.data)
        self.servers.append(s)
        return s

    def submit_many(self, srv, n):
        ids = []
        for _ in range(n):
            r = srv.submit(self.img, self.mask)
            self.assertEqual(r.status, 202, r)
            ids.append(r.json()["id"])
        return ids

    def test_drain_finishes_running_keeps_queued(self):
        srv = self.start("--job-delay-ms", "1500", "--drain-seconds", "20")
        ids = self.submit_many(srv, 3)
        wait_until(lambda: srv.job(ids[0])["state"] == "running", what="first job to run")
        ws = WSClient(srv.port)
        ws.recv_json()
        srv.signal(signal.SIGTERM)
        # not ready, refuses new work with 503, still answers reads
        wait_until(lambda: srv.get("/readyz").status == 503, what="readyz 503")
        self.assertEqual(srv.get("/readyz").json()["state"], "draining")
        r = srv.submit(self.img, self.mask)
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json()["error"]["code"], "draining")
        self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual(srv.get("/healthz").status, 200)
        msgs = ws.collect(lambda m: any(x["type"] == "status" and x["state"] == "draining" for x in m))
        self.assertTrue(msgs)
        self.assertEqual(srv.wait_exit(30), 0)
        states = journal_states(self.data)
        self.assertEqual(states[ids[0]], "done")
        self.assertEqual(states[ids[1]], "queued")
        self.assertEqual(states[ids[2]], "queued")
        self.assertIn("drain_finished", srv.log())
        # the next start runs the queued jobs
        srv2 = self.start("--job-delay-ms", "50")
        for i in ids:
            self.assertEqual(srv2.wait_job(i)["state"], "done")
        self.assertEqual(srv2.stop(), 0)

    def test_drain_grace_expired_interrupts_and_reruns(self):
        srv = self.start("--job-delay-ms", "8000", "--drain-seconds", "0.5")
        (jid,) = self.submit_many(srv, 1)
        wait_until(lambda: srv.job(jid)["state"] == "running", what="job to run")
        t0 = time.time()
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(30), 0)
        self.assertLess(time.time() - t0, 6)
        self.assertEqual(journal_states(self.data)[jid], "running")
        srv2 = self.start("--job-delay-ms", "50")
        j = srv2.wait_job(jid)
        self.assertEqual(j["state"], "done")
        self.assertEqual(j["attempts"], 2)
        self.assertEqual(journal_done_counts(self.data)[jid], 1)
        srv2.stop()

    def test_kill9_restart_every_job_once(self):
        srv = self.start("--job-delay-ms", "300")
        ids = self.submit_many(srv, 8)
        wait_until(lambda: sum(srv.job(i)["state"] == "done" for i in ids) >= 2, timeout=30, what="two done")
        states = {i: srv.job(i)["state"] for i in ids}
        self.assertIn("running", states.values())
        self.assertIn("queued", states.values())
        srv.kill9()
        log1 = srv.log()
        srv2 = self.start("--job-delay-ms", "50")
        self.assertIn("queued again", srv2.log())
        for i in ids:
            j = srv2.wait_job(i, timeout=30)
            self.assertEqual(j["state"], "done", j)
            res = srv2.get(j["result_url"])
            self.assertEqual(res.status, 200)
            self.assertEqual(decode(res.body).size, (64, 48))
        self.assertEqual(srv2.stop(), 0)
        # no job delivered twice: one journaled transition to done, one job_done log line
        counts = journal_done_counts(self.data)
        self.assertEqual({i: counts.get(i) for i in ids}, {i: 1 for i in ids})
        log_done = re.findall(r"job_done: job finished job=([0-9a-f]{32})", log1 + srv2.log())
        self.assertEqual(sorted(log_done), sorted(ids))
        # inputs of finished jobs are gone; one result file per job
        self.assertEqual(os.listdir(os.path.join(self.data, "inputs")), [])
        files = [f for _, _, fs in os.walk(os.path.join(self.data, "outputs")) for f in fs]
        self.assertEqual(sorted(f.split(".")[0] for f in files), sorted(ids))

    def test_restart_keeps_finished_results(self):
        srv = self.start()
        (jid,) = self.submit_many(srv, 1)
        first = srv.get(srv.wait_job(jid)["result_url"]).body
        srv.stop()
        srv2 = self.start()
        j = srv2.job(jid)
        self.assertEqual(j["state"], "done")
        self.assertEqual(srv2.get(j["result_url"]).body, first)
        srv2.stop()

    def test_journal_of_an_earlier_version_is_upgraded(self):
        # A journal as pixmend wrote it before the schema was versioned
        # (user_version 0: task, format, hd_strategy and error_code as C enum
        # integers, file options as bits), with its inputs on disk: the new
        # server upgrades it, runs the queued job and reports the failed one.
        os.makedirs(os.path.join(self.data, "inputs"))
        queued, failed = "0" * 31 + "a", "0" * 31 + "b"
        for kind, data in (("image", self.img), ("mask", self.mask)):
            with open(os.path.join(self.data, "inputs", "%s.%s" % (queued, kind)), "wb") as f:
                f.write(data)
        db = sqlite3.connect(os.path.join(self.data, "journal.sqlite"))
        db.executescript(
            "CREATE TABLE jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL,"
            " task INTEGER NOT NULL, model TEXT NOT NULL, priority INTEGER NOT NULL, format INTEGER NOT NULL,"
            " quality INTEGER NOT NULL, hd_strategy INTEGER NOT NULL, mask_resize INTEGER NOT NULL,"
            " has_mask INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created REAL NOT NULL,"
            " started REAL NOT NULL DEFAULT 0, finished REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
            " result_path TEXT NOT NULL DEFAULT '', result_bytes INTEGER NOT NULL DEFAULT 0,"
            " error_code INTEGER NOT NULL DEFAULT 0, error_message TEXT NOT NULL DEFAULT '',"
            " input_size INTEGER NOT NULL DEFAULT 512, mask_dilate INTEGER NOT NULL DEFAULT 0,"
            " owner TEXT NOT NULL DEFAULT '', file_opts INTEGER NOT NULL DEFAULT 0);"
            "CREATE TABLE transitions(job_id TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,"
            " at REAL NOT NULL, attempt INTEGER NOT NULL);"
            "CREATE INDEX transitions_job ON transitions(job_id);")
        now = time.time()
        db.execute("INSERT INTO jobs(id,state,task,model,priority,format,quality,hd_strategy,mask_resize,has_mask,"
                   "width,height,created,attempts,input_size,mask_dilate,owner,file_opts)"
                   " VALUES(?,'queued',0,'patchmatch',5,3,0,3,0,1,64,48,?,0,512,0,'',0)", (queued, now - 5))
        db.execute("INSERT INTO jobs(id,state,task,model,priority,format,quality,hd_strategy,mask_resize,has_mask,"
                   "width,height,created,started,finished,attempts,error_code,error_message)"
                   " VALUES(?,'failed',0,'patchmatch',5,1,0,0,0,1,64,48,?,?,?,1,-7,'image: the PNG data is damaged')",
                   (failed, now - 4, now - 3, now - 2))
        for jid, to in ((queued, "queued"), (failed, "queued")):
            db.execute("INSERT INTO transitions VALUES(?,'',?,?,0)", (jid, to, now - 5))
        db.commit()
        db.close()
        srv = self.start()
        job = srv.wait_job(queued)
        self.assertEqual(job["state"], "done", job)
        self.assertEqual(job["format"], "webp")
        self.assertEqual(decode(srv.get(job["result_url"]).body).size, (64, 48))
        job = srv.job(failed)
        self.assertEqual(job["state"], "failed", job)
        self.assertEqual(job["error"]["code"], "corrupt_image")
        self.assertIn("damaged", job["error"]["message"])
        db = sqlite3.connect(os.path.join(self.data, "journal.sqlite"))
        try:
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 2)
            self.assertEqual(db.execute("SELECT task, format, hd_strategy FROM jobs WHERE id=?", (queued,)).fetchone(),
                             ("inpaint", "webp", "crop"))
        finally:
            db.close()
        srv.stop()

    def test_second_server_on_same_data_dir_refused(self):
        srv = self.start()
        with self.assertRaises(AssertionError) as cm:
            self.start()
        self.assertIn("in use", str(cm.exception))
        srv.stop()

    def test_job_timeout(self):
        srv = self.start("--job-delay-ms", "5000", "--job-timeout", "0.5")
        (jid,) = self.submit_many(srv, 1)
        j = srv.wait_job(jid, timeout=20)
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["error"]["code"], "timeout")
        self.assertIn("--job-timeout", j["error"]["message"])
        r = srv.post_form("/api/v1/inpaint", {}, job_files(self.img, self.mask))
        self.assertEqual(r.status, 504)
        srv.stop()

    def test_result_ttl(self):
        srv = self.start("--result-ttl", "1")
        (jid,) = self.submit_many(srv, 1)
        j = srv.wait_job(jid)
        path = os.path.join(self.data, "outputs", time.strftime("%Y/%m/%d", time.gmtime(j["finished_at"])),
                            jid + ".png")
        self.assertTrue(os.path.exists(path))
        wait_until(lambda: srv.get("/api/v1/jobs/" + jid).status == 404, timeout=10, what="expiry")
        # the file and the journal row go right after the job leaves the table
        wait_until(lambda: not os.path.exists(path) and jid not in journal_states(self.data), timeout=5,
                   what="result file and journal row to be deleted")
        srv.stop()

    def test_results_cap_evicts_oldest(self):
        size = result_bytes_of(self.img, self.mask)
        cap = size * 5 // 2  # room for two results, not three
        srv = self.start("--results-max-bytes", str(cap))
        ids = []
        for _ in range(4):
            (jid,) = self.submit_many(srv, 1)
            ids.append(jid)
            srv.wait_job(jid)
        self.assertEqual(srv.job(ids[-1])["result_bytes"], size)
        keep = 2
        wait_until(lambda: sum(srv.get("/api/v1/jobs/" + i).status == 200 for i in ids) == keep, timeout=10,
                   what="eviction")
        alive = [srv.get("/api/v1/jobs/" + i).status == 200 for i in ids]
        self.assertEqual(alive, [False] * (4 - keep) + [True] * keep)
        self.assertLessEqual(srv.get("/api/v1/stats").json()["results"]["bytes"], cap)
        srv.stop()


if __name__ == "__main__":
    pmtest.run_tests(__name__)
