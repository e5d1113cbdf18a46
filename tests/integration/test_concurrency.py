"""Twenty clients at once: asynchronous and synchronous jobs, polling,
downloads and WebSocket watchers, all answered correctly."""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import pmtest  # noqa: E402
from pmtest import Server, WSClient, decode, job_files, png_bytes, test_image, test_mask  # noqa: E402

CLIENTS = 20


class Concurrency(unittest.TestCase):
    def test_twenty_concurrent_clients(self):
        srv = Server(["--queue-max", "64", "--threads", "1"])
        try:
            watcher = WSClient(srv.port)
            images = [(png_bytes(test_image(48 + i % 5 * 8, 40, seed=i)), png_bytes(test_mask(48 + i % 5 * 8, 40)))
                      for i in range(CLIENTS)]
            results = [None] * CLIENTS
            errors = []
            barrier = threading.Barrier(CLIENTS)

            def client(i):
                try:
                    img, mask = images[i]
                    barrier.wait(10)
                    if i % 2 == 0:
                        r = srv.submit(img, mask, priority=i % 10)
                        if r.status != 202:
                            raise AssertionError("submit %d: %r" % (i, r))
                        jid = r.json()["id"]
                        j = srv.wait_job(jid, timeout=60)
                        if j["state"] != "done":
                            raise AssertionError("job %d: %r" % (i, j))
                        data = srv.get(j["result_url"]).body
                        results[i] = (jid, data)
                    else:
                        r = srv.post_form("/api/v1/inpaint", {}, job_files(img, mask), timeout=60)
                        if r.status != 200:
                            raise AssertionError("sync %d: %r" % (i, r))
                        results[i] = (r.header("X-Pixmend-Job"), r.body)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
            self.assertEqual(errors, [])
            self.assertTrue(all(r is not None for r in results))
            # each answer is its own request's image: the pixels outside the
            # mask equal that client's input exactly (the inputs differ by seed,
            # so two answers swapped between clients of one size would fail)
            for i, (jid, data) in enumerate(results):
                w = 48 + i % 5 * 8
                got, sent = decode(data).convert("RGB"), test_image(w, 40, seed=i)
                self.assertEqual(got.size, (w, 40))
                hole = test_mask(w, 40)
                outside = [(x, y) for y in range(40) for x in range(w) if hole.getpixel((x, y)) == 0]
                self.assertEqual([got.getpixel(p) for p in outside], [sent.getpixel(p) for p in outside],
                                 "client %d got another request's image" % i)
            self.assertEqual(len({jid for jid, _ in results}), CLIENTS)
            # the watcher saw every job end exactly once
            ids = {jid for jid, _ in results}
            msgs = watcher.collect(lambda m: ids <= {x["job"] for x in m if x["type"] == "done"}, timeout=30)
            done = [m["job"] for m in msgs if m["type"] == "done"]
            self.assertEqual(sorted(done), sorted(ids))
            watcher.close()
            stats = srv.get("/api/v1/stats").json()
            self.assertEqual(stats["jobs"]["done"], CLIENTS)
            self.assertEqual(stats["queue"]["depth"], 0)
            print("20 clients served in %.2f s" % (time.time() - t0), file=sys.stderr)
        finally:
            self.assertEqual(srv.stop(), 0)
            srv.cleanup()


if __name__ == "__main__":
    pmtest.run_tests(__name__)
