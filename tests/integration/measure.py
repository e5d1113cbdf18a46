"""Prints figures for `pixmend serve` (not a test; not run by CTest):
end-to-end time of a synchronous inpaint against the job's own run time
(X-Pixmend-Seconds) measured in the same run, and the submit cost and
throughput of small asynchronous jobs, and the time to accept a job with a
large image. Run: PIXMEND=build/pixmend /usr/bin/python3 tests/integration/measure.py
(--submit-only: only the last)"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from pmtest import Server, job_files, png_bytes, test_image, test_mask  # noqa: E402


def jpeg_bytes(img, quality=90):
    import io
    b = io.BytesIO()
    img.save(b, "JPEG", quality=quality)
    return b.getvalue()


def submit_cost():
    """Median time to accept an asynchronous job with a large image: the
    server checks the upload, saves it and journals the job. Jobs wait
    (--job-delay-ms) so that no worker competes for the CPU."""
    srv = Server(["--threads", "1", "--queue-max", "256", "--max-wait", "0", "--max-pixels", "30M",
                  "--job-delay-ms", "600000"])
    try:
        for (w, h, kind) in ((1280, 960, "PNG"), (4000, 3000, "JPEG"), (4000, 3000, "PNG")):
            im = test_image(w, h)
            img = jpeg_bytes(im) if kind == "JPEG" else png_bytes(im)
            mask = png_bytes(test_mask(w, h))
            name = "image.jpg" if kind == "JPEG" else "image.png"
            times = []
            for _ in range(9):
                t0 = time.perf_counter()
                r = srv.post_form("/api/v1/jobs", {}, job_files(img, mask, image_name=name))
                times.append(time.perf_counter() - t0)
                assert r.status == 202, r
                srv.request("DELETE", "/api/v1/jobs/" + r.json()["id"])
            print("submit %dx%d %s (%.1f MB) + PNG mask (%.0f KB): %.1f ms median of %d"
                  % (w, h, kind, len(img) / 1e6, len(mask) / 1e3, statistics.median(times) * 1e3, len(times)))
    finally:
        srv.stop()
        srv.cleanup()


def main():
    if "--submit-only" in sys.argv:
        submit_cost()
        return
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
    submit_cost()


if __name__ == "__main__":
    main()
