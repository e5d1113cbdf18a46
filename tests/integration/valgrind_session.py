"""A short scripted session of `pixmend serve` under valgrind (memcheck):
jobs of every kind, refused uploads, WebSocket clients that close, abort or
never read, a cancelled job, a slow client, then SIGTERM. Passes when the
server exits 0 and valgrind reports no errors and no definite or indirect
leaks. Run: PIXMEND=build/pixmend /usr/bin/python3 valgrind_session.py"""
import os
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from pmtest import (Server, WSClient, job_files, multipart, png_bytes, raw_exchange, status_of,  # noqa: E402
                    test_image, test_mask, wait_until)


def main():
    tmp = tempfile.TemporaryDirectory(prefix="pmtest-vg-")
    vlog = os.path.join(tmp.name, "valgrind.log")
    wrapper = ["valgrind", "--tool=memcheck", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
               "--show-leak-kinds=definite,indirect", "--error-exitcode=99", "--num-callers=30",
               "--log-file=" + vlog]
    srv = Server(["--threads", "1", "--request-timeout", "2", "--max-upload", "1M", "--job-delay-ms", "200",
                  "--drain-seconds", "20"], data_dir=os.path.join(tmp.name, "data"), wrapper=wrapper,
                 start_timeout=120)
    try:
        ok = session(srv, vlog)
    finally:
        srv.cleanup()
        tmp.cleanup()
    sys.exit(0 if ok else 1)


def session(srv, vlog):
    t0 = time.time()
    img, mask = png_bytes(test_image()), png_bytes(test_mask())
    watcher = WSClient(srv.port, timeout=60)
    silent = WSClient(srv.port, timeout=60)
    WSClient(srv.port, timeout=60).abort()
    # asynchronous jobs in three formats, one cancelled while queued
    ids = [srv.submit(img, mask, format=f, timeout=120).json()["id"] for f in ("png", "jpeg", "webp", "png")]
    assert srv.request("DELETE", "/api/v1/jobs/" + ids[3], timeout=60).status == 202
    # a synchronous job, with a resized mask
    r = srv.post_form("/api/v1/inpaint", {"mask_resize": "1"}, job_files(img, png_bytes(test_mask(32, 24))),
                      timeout=120)
    assert r.status == 200, r
    # refused uploads
    assert srv.submit(b"", mask, timeout=60).status == 400
    assert srv.submit(img[:200], mask, timeout=60).status == 415
    assert srv.submit(img, png_bytes(test_mask(10, 10)), timeout=60).status == 422
    assert srv.submit(os.urandom(2 << 20), mask, timeout=60).status == 413
    assert srv.post_form("/api/v1/colorize", {}, job_files(img), timeout=60).status == 404
    assert srv.post_form("/api/v1/inpaint", {}, job_files(img, png_bytes(test_mask(64, 48, (0, 0, 63, 47)))),
                         timeout=120).status == 422
    # a slow client and a chunked body over the limit
    ctype, body = multipart({}, job_files(img, mask))
    head = ("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (ctype, len(body))).encode()
    out, _, _ = raw_exchange(srv.port, [head] + [body[i:i + 1] for i in range(60)], delay=0.1, read_timeout=60)
    assert status_of(out) == 408, out[:200]
    # reads
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/queue", "/api/v1/stats", "/api/v1/models", "/"):
        assert srv.get(path, timeout=60).status == 200, path
    for i in ids[:3]:
        j = srv.wait_job(i, timeout=120)
        assert j["state"] == "done", j
        assert srv.get(j["result_url"], timeout=60).status == 200
    watcher.collect(lambda m: sum(1 for x in m if x["type"] == "done" and x["job"] in ids) == 3, timeout=120)
    watcher.close()
    # a job left running for the drain, one queued for the next start
    a = srv.submit(img, mask, timeout=60).json()["id"]
    srv.submit(img, mask, timeout=60)
    wait_until(lambda: srv.job(a)["state"] == "running", timeout=60, what="job to start")
    srv.signal(signal.SIGTERM)
    code = srv.wait_exit(180)
    silent.abort()
    with open(vlog) as f:
        report = f.read()
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    definite = re.search(r"definitely lost: ([\d,]+) bytes", report)
    indirect = re.search(r"indirectly lost: ([\d,]+) bytes", report)
    print("session: %.1f s, exit code %d" % (time.time() - t0, code))
    for line in report.splitlines():
        if re.search(r"(ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|"
                      r"in use at exit)", line):
            print(line)
    ok = code == 0 and summary and summary.group(1) == "0"
    if definite:
        ok = ok and definite.group(1) == "0"
    if indirect:
        ok = ok and indirect.group(1) == "0"
    if not ok:
        print(report[-20000:])
    return ok


if __name__ == "__main__":
    main()
