"""Fleet benchmark, side by side in one run (docs/benchmarks.md, Fleet):

1. Overhead: a small job (64x48 inpainting, PatchMatch) through the
   synchronous route of a single box (`pixmend serve`) and of a fleet (a
   `serve --redis --workers 0` front, Redis, one `pixmend worker`), in
   alternating rounds; prints the median and p90 of each and the difference.
2. Throughput: a queue of CPU-bound jobs (PatchMatch on 640x480 with a large
   hole) drained by one worker with one engine thread, then by two workers
   with one thread each; prints jobs/s of each and the ratio.

Starts its own redis-server (loopback, temporary directory, AOF with
appendfsync everysec, as docs/operations.md recommends). Prints the load
average before and after: on a shared machine the figures move with it.

    /usr/bin/python3 bench/fleet/bench_fleet.py [ROUNDS] [JOBS]
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
import test_fleet as tf  # noqa: E402
from pmtest import Server, png_bytes, test_image, test_mask, wait_until  # noqa: E402


def sync_once(srv, img, mask):
    t0 = time.perf_counter()
    r = srv.post_form("/api/v1/inpaint", {}, {"image": ("i.png", img, "image/png"),
                                               "mask": ("m.png", mask, "image/png")})
    dt = time.perf_counter() - t0
    assert r.status == 200, r
    return dt


def p(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def overhead(rounds):
    redis = tf.Redis()
    redis.cmd("CONFIG", "SET", "appendfsync", "everysec")
    single = Server(["--workers", "1"])
    front = Server(["--redis", redis.url, "--workers", "0"])
    worker = tf.Worker(redis, "bench-w1")
    img, mask = png_bytes(test_image()), png_bytes(test_mask())
    for _ in range(20):  # warm up both paths
        sync_once(single, img, mask)
        sync_once(front, img, mask)
    a, b = [], []
    for _ in range(rounds):
        a.append(sync_once(single, img, mask))
        b.append(sync_once(front, img, mask))
    for t in (worker, front, single):
        t.cleanup()
    redis.cleanup()
    ma, mb = statistics.median(a) * 1e3, statistics.median(b) * 1e3
    print("overhead: %d rounds of a 64x48 inpainting (synchronous route), alternating" % rounds)
    print("  single box      median %.2f ms  p90 %.2f ms" % (ma, p(a, 0.9) * 1e3))
    print("  front+Redis+worker median %.2f ms  p90 %.2f ms" % (mb, p(b, 0.9) * 1e3))
    print("  difference      median %+.2f ms  (goal: within 5 ms)" % (mb - ma))


def drain(redis, front, nworkers, jobs, img, mask):
    workers = [tf.Worker(redis, "bench-t%d" % i, ["--threads", "1"]) for i in range(nworkers)]
    t0 = time.perf_counter()
    ids = []
    for _ in range(jobs):
        r = front.submit(img, mask)
        assert r.status == 202, r
        ids.append(r.json()["id"])
    for jid in ids:  # polled slowly: the client shares the two cores with the workers
        wait_until(lambda: front.job(jid)["state"] in ("done", "failed"), timeout=600, step=0.5)
    dt = time.perf_counter() - t0
    recs = [front.job(jid) for jid in ids]
    bad = [r["id"] for r in recs if r["state"] != "done"]
    assert not bad, bad
    for w in workers:
        w.cleanup()
    # The workers' own span, from the first start to the last finish: the
    # submissions and the client's polling fall outside it.
    span = max(r["finished_at"] for r in recs) - min(r["started_at"] for r in recs)
    return jobs / span, jobs / dt


def throughput(jobs):
    redis = tf.Redis()
    redis.cmd("CONFIG", "SET", "appendfsync", "everysec")
    front = Server(["--redis", redis.url, "--workers", "0", "--queue-max", "1000"])
    img = png_bytes(test_image(640, 480))
    mask = png_bytes(test_mask(640, 480, box=(160, 120, 400, 330)))
    one = drain(redis, front, 1, jobs, img, mask)
    two = drain(redis, front, 2, jobs, img, mask)
    front.cleanup()
    redis.cleanup()
    print("throughput: %d PatchMatch jobs (640x480, 240x210 hole), --threads 1 per worker" % jobs)
    print("  (jobs/s over the workers' span, first start to last finish; in brackets over the client's")
    print("   whole wait, submissions and polling included)")
    print("  one worker   %.3f jobs/s  (%.3f)" % one)
    print("  two workers  %.3f jobs/s  (%.3f)" % two)
    print("  ratio        %.2fx  (%.2fx)  (goal: >= 1.8x on two free cores)" % (two[0] / one[0], two[1] / one[1]))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    print("cores: %d; load average before: %s" % (os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg())))
    overhead(rounds)
    throughput(jobs)
    print("load average after: %s" % " ".join("%.2f" % x for x in os.getloadavg()))


if __name__ == "__main__":
    main()
