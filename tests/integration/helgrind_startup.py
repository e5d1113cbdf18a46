"""The start-up of `pixmend serve` under valgrind's helgrind: from the moment
the process starts, client threads hammer /healthz, /readyz, /api/v1/models,
/api/v1/stats and /ws while the server loads its models (the built-in one and
a small LaMa checkpoint the test writes with PyTorch, so that loading takes a
while) and starts its workers; then one job runs and SIGTERM stops it. Passes when the server exits
0 and helgrind reports no data race or lock-order error in pixmend's code
(a report whose racing accesses happen inside a library, such as civetweb's
own stop flag, is out of scope).
Run: PIXMEND=build/pixmend /usr/bin/python3 helgrind_startup.py"""
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from pmtest import PIXMEND, WSClient, job_files, multipart, png_bytes, test_image, test_mask  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hammer(port, path, stop, counts):
    while not stop.is_set():
        try:
            if path == "/ws":
                ws = WSClient(port, timeout=5)
                ws.close()
                status = 101
            else:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", path)
                status = c.getresponse().status
                c.close()
            counts[path] = counts.get(path, 0) + 1
            counts.setdefault("statuses", set()).add(status)
        except OSError:
            time.sleep(0.005)  # not listening yet
        except Exception:  # noqa: BLE001 - a half-started server may answer oddly; keep hammering
            time.sleep(0.005)


SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")
OURS = {f for d in os.listdir(SRC) if os.path.isdir(os.path.join(SRC, d))
        for f in os.listdir(os.path.join(SRC, d)) if f.endswith(".c")}


def pixmend_races(log):
    """The helgrind reports with a frame in one of pixmend's source files
    (valgrind names a frame's file without its folder)."""
    text = open(log, errors="replace").read()
    blocks = re.split(r"(?m)^==\d+== ----------------------------------------------------------------\s*$", text)
    found = []
    for b in blocks:
        access = re.split(r"(?m)^==\d+==\s+(?:Address 0x|Block was alloc)", b)[0]  # not the allocation's stack
        # the innermost frame of each racing access ("at ..."): a race inside a
        # library (civetweb's stop flag, read by its own threads) is its own
        frames = set(re.findall(r"(?m)^==\d+==\s+at 0x[0-9A-F]+: .*\((\w+\.c):\d+\)$", access))
        if ("Possible data race" in b or "lock order" in b) and frames & OURS:
            found.append(b.strip())
    return found


SKIP = 77


def lama_checkpoint(work):
    """A small LaMa checkpoint in the official layout, or None without torch."""
    try:
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "golden"))
        import lama_ref  # noqa: E402
    except ImportError as e:
        print("skipped: %s (install python3-torch)" % e)
        return None
    path = os.path.join(work, "lama.ckpt")
    lama_ref.save_checkpoint(lama_ref.make_model(16, 2, 1), path, 1)
    return path


def main():
    tmp = tempfile.TemporaryDirectory(prefix="pmtest-hg-")
    log = os.path.join(tmp.name, "helgrind.log")
    ckpt = lama_checkpoint(tmp.name)
    if not ckpt:
        sys.exit(SKIP)
    port = free_port()
    cmd = ["valgrind", "--tool=helgrind", "--num-callers=30", "--log-file=" + log, PIXMEND, "serve",
           "--listen", "127.0.0.1:%d" % port, "--data-dir", os.path.join(tmp.name, "data"),
           "--threads", "1", "--model", "lama=" + ckpt, "--log-file", os.path.join(tmp.name, "server.log")]
    stop, counts = threading.Event(), {}
    threads = [threading.Thread(target=hammer, args=(port, p, stop, counts), daemon=True)
               for p in ("/healthz", "/readyz", "/api/v1/models", "/api/v1/stats", "/ws")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for t in threads:
        t.start()
    try:
        line = proc.stdout.readline().decode(errors="replace")
        assert "pixmend serving" in line, "no start-up line: %r" % line
        time.sleep(2)  # readers go on while the workers start
        img, mask = png_bytes(test_image()), png_bytes(test_mask())
        ctype, body = multipart({"model": "patchmatch"}, job_files(img, mask))  # engine threads: pthreads
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/api/v1/inpaint", body=body, headers={"Content-Type": ctype})
        assert c.getresponse().status == 200
        stop.set()
        for t in threads:
            t.join(10)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(120)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    served = {k: v for k, v in counts.items() if k != "statuses"}
    print("requests answered during the run:", served)
    assert rc == 0, "pixmend serve exited %d under helgrind" % rc
    assert all(served.get(p, 0) > 0 for p in ("/healthz", "/api/v1/models", "/ws")), served
    races = pixmend_races(log)
    for r in races[:5]:
        print(r, "\n")
    if os.environ.get("PM_KEEP_LOG"):
        print("log kept:", log)
    else:
        tmp.cleanup()
    if races:
        print("helgrind: %d report(s) in pixmend's code" % len(races))
        sys.exit(1)
    print("helgrind: no race or lock-order report in pixmend's code")


if __name__ == "__main__":
    main()
