"""Prints figures for `pixmend serve` (not a test; not run by CTest):
end-to-end time of a synchronous inpaint against the job's own run time
(X-Pixmend-Seconds) measured in the same run, and the submit cost and
throughput of small asynchronous jobs.
Run: PIXMEND=build/pixmend /usr/bin/python3 tests/integration/measure.py"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from pmtest import Server, job_files, png_bytes, test_image, test_mask  # noqa: E402


def main():
    srv = Server(["--threads", "2", "--queue-max", "256"])
    try:
        for (w, h) in ((64, 48), (512, 384)):
            img, mask = png_bytes(test_image(w, h)), png_bytes(test_mask(w, h))
            tot, eng = [], []
            for _ in range(15):
                t0 = time.perf_counter()
                r = srv.post_form("/api/v1/inpaint", {}, job_files(img, mask))
                tot.append(time.perf_counter() - t0)
                assert r.status == 200, r
                eng.append(float(r.header("X-Pixmend-Seconds")))
            mt, me = statistics.median(tot), statistics.median(eng)
            print("%dx%d sync inpaint: request %.1f ms median, job run %.1f ms median, overhead %.1f ms (%.2fx)"
                  % (w, h, mt * 1e3, me * 1e3, (mt - me) * 1e3, mt / me))
        img, mask = png_bytes(test_image()), png_bytes(test_mask())
        n = 200
        t0 = time.perf_counter()
        ids = [srv.submit(img, mask).json()["id"] for _ in range(n)]
        t_sub = time.perf_counter() - t0
        for i in ids:
            srv.wait_job(i, timeout=120)
        t_all = time.perf_counter() - t0
        print("%d async 64x48 jobs: submit %.2f ms/job (inputs fsync'ed + journal commit), all done in %.2f s "
              "(%.0f jobs/s)" % (n, t_sub / n * 1e3, t_all, n / t_all))
    finally:
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    main()
