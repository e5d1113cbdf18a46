"""The weights people already have, read as pixmend's own checkpoints:
TorchScript archives (big-lama.pt as IOPaint makes it: torch.jit.trace and
torch.jit.script of a forward(image, mask) wrapper), PyTorch's legacy
serialization, bare state dicts, Hugging Face and ModelScope folders, and
the caches `pixmend models` and `pixmend serve --models auto` search.

    /usr/bin/python3 formats.py --bin golden_lama --pixmend pixmend --work DIR PART

Parts:
  lama       every form of one reduced LaMa gives the state-dict path's network
             output bit for bit (golden_lama net) and the same PNG (pixmend
             inpaint, 0 LSB); the TorchScript module itself agrees within 1e-4
  ddcolor    DDColor from .pth, legacy .pth, a Hugging Face snapshot folder and
             repository folder, a ModelScope folder: the same PNG (0 LSB)
  bad        another network's TorchScript, a truncated archive, a pickle that
             names os.system: one line on stderr naming the file and the fault
  discover   fake torch hub / Hugging Face / ModelScope caches under a temporary
             HOME and XDG_CACHE_HOME: `pixmend models --json` lists exactly the
             models (by content, decoys left out); serve --models auto loads one
             per task and lists the rest on /api/v1/models
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import numpy as np
    import torch
    import PIL.Image  # noqa: F401
except ImportError as e:  # CTest counts exit 77 as skipped
    print("skip: %s" % e)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "golden_ddcolor"))
import lama_ref  # noqa: E402
import lama_script  # noqa: E402

THREADS = 2
FAILS = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        FAILS.append(msg)


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return r.returncode, r.stdout, r.stderr


def write_png(path, arr):
    from PIL import Image
    Image.fromarray(arr).save(path)


def lama_files(work, ngf=16, blocks=2, seed=3, kinds=None):
    """The reference model and its forms (all, or those in `kinds`), by name."""
    model = lama_ref.make_model(ngf, blocks, seed)
    p = {k: os.path.join(work, v) for k, v in {
        "ckpt": "best.ckpt", "traced": "big-lama.pt", "scripted": "scripted-lama.pt",
        "legacy": "legacy.ckpt", "bare": "generator.pth", "bare_legacy": "generator-legacy.pth"}.items()}
    makers = {
        "ckpt": lambda: lama_ref.save_checkpoint(model, p["ckpt"], seed),
        "traced": lambda: lama_script.save_traced(model, p["traced"]),
        "scripted": lambda: lama_script.save_scripted(model, p["scripted"]),
        "legacy": lambda: torch.save(torch.load(p["ckpt"]), p["legacy"], _use_new_zipfile_serialization=False),
        "bare": lambda: torch.save(model.state_dict(), p["bare"]),
        "bare_legacy": lambda: torch.save(model.state_dict(), p["bare_legacy"], _use_new_zipfile_serialization=False),
    }
    for k, make in makers.items():
        if kinds is None or k in kinds or (k == "ckpt" and "legacy" in kinds):
            make()
    return model, p


def c_net(args, ckpt, x):
    h, w = x.shape[1:]
    fin, fout = os.path.join(args.work, "in.f32"), os.path.join(args.work, "out.f32")
    x.tofile(fin)
    rc, _, err = run([args.bin, "net", ckpt, fin, fout, str(w), str(h), "--threads", str(THREADS)])
    if rc != 0:
        check(False, "golden_lama net %s: %s" % (os.path.basename(ckpt), err.strip()))
        return None
    return np.fromfile(fout, np.float32).reshape(3, h, w)


def part_lama(args):
    model, p = lama_files(args.work)
    g = np.random.default_rng(11)
    h, w = 72, 88
    img = g.random((3, h, w), dtype=np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[20:50, 30:70] = 1
    x = np.concatenate([img * (1 - mask), mask[None]], 0).astype(np.float32)
    ref = c_net(args, p["ckpt"], x)
    with torch.no_grad():
        want = model(torch.from_numpy(x)[None])[0].numpy()
    check(ref is not None and np.abs(ref - want).max() <= 1e-4, "state-dict path agrees with the reference")
    for k in ("traced", "scripted", "legacy", "bare", "bare_legacy"):
        out = c_net(args, p[k], x)
        check(out is not None and np.array_equal(out, ref), "%s: network output bit-identical to best.ckpt" % k)
    # the TorchScript modules themselves compute what pixmend computes from their weights
    image, m = torch.from_numpy(img)[None], torch.from_numpy(mask)[None, None]
    with torch.no_grad():
        blended = (m * torch.from_numpy(want)[None] + (1 - m) * image)[0].numpy()
        for k in ("traced", "scripted"):
            ts = torch.jit.load(p[k])(image, m)[0].numpy()
            check(np.abs(ts - blended).max() <= 1e-4, "%s: torch.jit.load(...)(image, mask) agrees" % k)
    # 8-bit inpainting through the CLI: the same PNG bytes
    u8 = (g.random((61, 77, 3)) * 255).astype(np.uint8)
    mk = np.zeros((61, 77), np.uint8)
    mk[10:40, 20:60] = 255
    write_png(os.path.join(args.work, "img.png"), u8)
    write_png(os.path.join(args.work, "mask.png"), mk)
    outs = {}
    for k in ("ckpt", "traced", "scripted", "legacy"):
        o = os.path.join(args.work, "out-%s.png" % k)
        rc, _, err = run([args.pixmend, "inpaint", os.path.join(args.work, "img.png"),
                          os.path.join(args.work, "mask.png"), "-o", o, "--model", p[k], "--threads", str(THREADS)])
        check(rc == 0, "pixmend inpaint --model %s exits 0 %s" % (os.path.basename(p[k]), err.strip()[-200:]))
        outs[k] = open(o, "rb").read() if rc == 0 else b""
    for k in ("traced", "scripted", "legacy"):
        check(outs[k] and outs[k] == outs["ckpt"], "%s: inpainted PNG identical to best.ckpt's (0 LSB)" % k)


def ddcolor_files(work):
    import ddcolor_ref as ref
    import make_test_ckpt
    torch.set_num_threads(1)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    m = ref.random_model(make_test_ckpt.CFG, seed=9, calibrate_input=x)
    pth, binp = os.path.join(work, "ddcolor.pth"), os.path.join(work, "pytorch_model.bin")
    sd = ref.save_checkpoints(m, pth, binp)
    leg = os.path.join(work, "ddcolor-legacy.pth")
    torch.save({"params": sd}, leg, _use_new_zipfile_serialization=False)
    # a Hugging Face repository folder: refs/main names the snapshot, files link into blobs/
    repo = os.path.join(work, "hub", "models--piddnad--ddcolor_test")
    sha = "0123456789abcdef0123456789abcdef01234567"
    snap = os.path.join(repo, "snapshots", sha)
    os.makedirs(snap)
    os.makedirs(os.path.join(repo, "blobs"))
    os.makedirs(os.path.join(repo, "refs"))
    open(os.path.join(repo, "refs", "main"), "w").write(sha)
    shutil.copy(binp, os.path.join(repo, "blobs", "b1"))
    os.symlink("../../blobs/b1", os.path.join(snap, "pytorch_model.bin"))
    open(os.path.join(snap, "config.json"), "w").write('{"encoder_name": "convnext-t"}')
    # a snapshot with both pytorch_model.bin and model.safetensors: the safetensors one is read
    snap2 = os.path.join(work, "hub", "models--piddnad--ddcolor_both", "snapshots", "c0ffee")
    os.makedirs(snap2)
    shutil.copy(binp, os.path.join(snap2, "pytorch_model.bin"))
    write_safetensors(os.path.join(snap2, "model.safetensors"), sd)
    # a ModelScope folder
    ms = os.path.join(work, "modelscope", "damo", "cv_ddcolor_image-colorization")
    os.makedirs(os.path.join(ms, "resources"))
    shutil.copy(pth, os.path.join(ms, "pytorch_model.pt"))
    open(os.path.join(ms, "configuration.json"), "w").write('{"task": "image-colorization"}')
    open(os.path.join(ms, "README.md"), "w").write("# DDColor\n")
    return {"pth": pth, "bin": binp, "legacy": leg, "hf_repo": repo, "hf_snapshot": snap, "hf_both": snap2,
            "modelscope": ms}


def write_safetensors(path, sd):
    import struct
    header, data = {}, bytearray()
    for name, t in sd.items():
        raw = t.detach().contiguous().numpy().tobytes()
        dt = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data.extend(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + bytes(data))


def part_ddcolor(args):
    p = ddcolor_files(args.work)
    g = np.random.default_rng(5)
    write_png(os.path.join(args.work, "grey.png"), (g.random((40, 56)) * 255).astype(np.uint8))
    outs = {}
    for k, f in p.items():
        o = os.path.join(args.work, "co-%s.png" % k)
        rc, _, err = run([args.pixmend, "colorize", os.path.join(args.work, "grey.png"), "-o", o, "--model", f,
                          "--input-size", "64", "--threads", str(THREADS)])
        check(rc == 0, "pixmend colorize --model %s exits 0 %s" % (k, err.strip()[-300:]))
        outs[k] = open(o, "rb").read() if rc == 0 else b""
    for k in p:
        if k != "pth":
            check(outs[k] and outs[k] == outs["pth"], "%s: colorized PNG identical to ddcolor.pth's (0 LSB)" % k)
    # a folder with two weights files of one kind: refused, naming them
    two = os.path.join(args.work, "two")
    os.makedirs(two)
    shutil.copy(p["pth"], os.path.join(two, "a.pth"))
    shutil.copy(p["legacy"], os.path.join(two, "b.pth"))
    rc, _, err = run([args.pixmend, "colorize", os.path.join(args.work, "grey.png"), "-o",
                      os.path.join(args.work, "x.png"), "--model", two])
    check(rc == 1 and "holding 2 weights files" in err and "a.pth" in err and "b.pth" in err,
          "a folder with two weights files is refused, naming them: %s" % err.strip())


def one_line_error(args, cmd, fname, text):
    rc, out, err = run(cmd)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    check(rc == 1 and len(lines) == 1 and fname in lines[0] and text in lines[0],
          "%s: exit 1, one line naming it and saying '%s' (got %d: %s)" % (fname, text, rc, err.strip()))


def part_bad(args):
    write_png(os.path.join(args.work, "img.png"), np.zeros((16, 16, 3), np.uint8))
    mk = np.zeros((16, 16), np.uint8)
    mk[4:8, 4:8] = 255
    write_png(os.path.join(args.work, "mask.png"), mk)

    def inpaint(model):
        return [args.pixmend, "inpaint", os.path.join(args.work, "img.png"), os.path.join(args.work, "mask.png"),
                "-o", os.path.join(args.work, "o.png"), "--model", model]
    other = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3))
    f = os.path.join(args.work, "resnet-ish.pt")
    torch.jit.save(torch.jit.trace(other, torch.rand(1, 4, 16, 16)), f)
    one_line_error(args, inpaint(f), "resnet-ish.pt", "(TorchScript) is not a LaMa")
    _, p = lama_files(args.work, 8, 1, 1, kinds=("traced", "legacy"))
    data = open(p["traced"], "rb").read()
    cut = os.path.join(args.work, "big-lama-cut.pt")
    open(cut, "wb").write(data[:len(data) // 2])
    one_line_error(args, inpaint(cut), "big-lama-cut.pt", "truncated")
    data = open(p["legacy"], "rb").read()
    cut = os.path.join(args.work, "legacy-cut.ckpt")
    open(cut, "wb").write(data[:len(data) - 1000])
    one_line_error(args, inpaint(cut), "legacy-cut.ckpt", "truncated")
    # a legacy stream whose object calls os.system: refused, and nothing ran
    marker = os.path.join(args.work, "pwned")
    cmd = ("touch " + marker).encode()
    evil = (b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}."
            b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R.\x80\x02].")
    f = os.path.join(args.work, "evil.pth")
    open(f, "wb").write(evil)
    one_line_error(args, inpaint(f), "evil.pth", "names os.system")
    check(not os.path.exists(marker), "nothing in evil.pth was run")


def part_discover(args):
    home = os.path.join(args.work, "home")
    cache = os.path.join(home, ".cache")
    hub = os.path.join(cache, "torch", "hub", "checkpoints")
    os.makedirs(hub)
    model, p = lama_files(args.work, kinds=("traced",))
    shutil.copy(p["traced"], os.path.join(hub, "big-lama.pt"))
    big = lama_ref.make_model(24, 3, 4)  # a larger LaMa: --models auto must pick it
    lama_ref.save_checkpoint(big, os.path.join(hub, "my-lama.ckpt"))
    # decoys: other networks, a pickle of no model, text
    torch.save({"w": torch.ones(3)}, os.path.join(hub, "lama-but-not.pth"))
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(hub, "big-lama-other.pt"))
    open(os.path.join(hub, "notes.txt"), "w").write("not weights\n")
    d = ddcolor_files(os.path.join(args.work))
    shutil.copytree(os.path.join(args.work, "hub"), os.path.join(cache, "huggingface", "hub"), symlinks=True)
    shutil.copytree(os.path.join(args.work, "modelscope"), os.path.join(cache, "modelscope", "hub"))
    shutil.rmtree(os.path.join(cache, "huggingface", "hub", "models--piddnad--ddcolor_both"))
    env = {k: v for k, v in os.environ.items() if k not in (
        "XDG_CACHE_HOME", "TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "MODELSCOPE_CACHE")}
    env["HOME"] = home
    rc, out, err = run([args.pixmend, "models", "--json"], env)
    check(rc == 0, "pixmend models --json exits 0 %s" % err.strip())
    j = json.loads(out) if rc == 0 else {"models": [], "searched": []}
    got = sorted((m["model"], m["format"], os.path.relpath(m["path"], cache)) for m in j["models"])
    want = sorted([
        ("lama", "TorchScript", "torch/hub/checkpoints/big-lama.pt"),
        ("lama", "PyTorch zip", "torch/hub/checkpoints/my-lama.ckpt"),
        ("ddcolor", "PyTorch zip", "huggingface/hub/models--piddnad--ddcolor_test/snapshots/"
         "0123456789abcdef0123456789abcdef01234567/pytorch_model.bin"),
        ("ddcolor", "PyTorch zip", "modelscope/hub/damo/cv_ddcolor_image-colorization/pytorch_model.pt")])
    check(got == want, "models found by content under ~/.cache: %s" % got)
    check([s["dir"] for s in j["searched"]] == [os.path.join(cache, s) for s in (
        "torch/hub/checkpoints", "huggingface/hub", "modelscope/hub")], "the three caches searched")
    lm = [m for m in j["models"] if m["model"] == "lama"]
    check(bool(lm) and lm[0]["variant"] == "ngf 24, 3 blocks" and lm[0]["serve_arg"].startswith("lama=/"),
          "the larger LaMa first, with its variant and serve argument")
    # XDG_CACHE_HOME moves the caches; folders given replace them
    env2 = dict(env, XDG_CACHE_HOME=os.path.join(args.work, "elsewhere"))
    rc, out, _ = run([args.pixmend, "models", "--json"], env2)
    check(rc == 0 and json.loads(out)["models"] == [], "XDG_CACHE_HOME elsewhere: nothing found")
    env3 = dict(env, HOME=os.path.join(args.work, "nohome"), XDG_CACHE_HOME=cache)
    rc, out, _ = run([args.pixmend, "models", "--json"], env3)
    check(rc == 0 and len(json.loads(out)["models"]) == 4, "XDG_CACHE_HOME names the caches: the same four")
    rc, out, _ = run([args.pixmend, "models", "--json", hub], env2)
    check(rc == 0 and len(json.loads(out)["models"]) == 2, "pixmend models DIR lists that folder's two LaMas")
    rc, out, _ = run([args.pixmend, "models"], env)
    check(rc == 0 and "big-lama.pt" in out and "--model " in out and "TorchScript" in out, "text listing")
    rc, _, err = run([args.pixmend, "models", "/nonexistent/x"], env)
    check(rc == 2 and "/nonexistent/x does not exist" in err, "a missing folder is a usage error")
    serve_auto(args, env, cache)


def serve_auto(args, env, cache):
    data = os.path.join(args.work, "serve-data")
    proc = subprocess.Popen([args.pixmend, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                             "--models", "auto", "--threads", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.split("http://127.0.0.1:")[1].split()[0]) if "http://127.0.0.1:" in line else 0
        check(port > 0 and "lama" in line and "ddcolor" in line, "serve --models auto: %s" % line.strip())
        j = {}
        for _ in range(50):
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/models" % port, timeout=5) as r:
                    j = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        loaded = {m["name"] for m in j.get("models", []) if m["loaded"]}
        check(loaded == {"patchmatch", "lama", "ddcolor"}, "/api/v1/models: lama and ddcolor loaded (%s)" % loaded)
        found = j.get("found", {}).get("models", [])
        on = sorted(os.path.relpath(m["path"], cache) for m in found if m["loaded"])
        check(len(found) == 4 and len(on) == 2 and on[1] == "torch/hub/checkpoints/my-lama.ckpt" and
              on[0].split("/")[0] in ("huggingface", "modelscope"),
              "found: 4, one loaded per task, the larger LaMa (%s)" % on)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    check("models_auto: loaded lama from" in err and "model_found: found lama at" in err,
          "the log says what was loaded and what was only found")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--pixmend", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("part", choices=["lama", "ddcolor", "bad", "discover"])
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    args.work = tempfile.mkdtemp(dir=args.work)
    torch.set_num_threads(THREADS)
    {"lama": part_lama, "ddcolor": part_ddcolor, "bad": part_bad, "discover": part_discover}[args.part](args)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
