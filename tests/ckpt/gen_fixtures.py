#!/usr/bin/python3
"""Writes the checkpoint fixtures for tests/unit/test_ckpt.c into OUTDIR.

Every fixture is written the way the real tools write it (torch.save, a
safetensors file laid out by hand), plus a manifest that says, for each way
of opening a fixture, which tensors the C reader must find and where their
reference bytes are:

  file <fixture> <prefix or -> <tensor count>
  t <name> <dtype> <ndim> <dims...> <blob> <raw offset> <raw length> <f32 offset or -1>

The blob holds each tensor's bytes laid out contiguously in its own dtype
(as numpy/torch see them), then, for floating tensors, the float32 values
that torch's .float() gives. Other lines name fixtures that must fail:

  bad <fixture> <error name> <text the message must contain>

Usage: gen_fixtures.py OUTDIR
"""
import collections
import io
import json
import os
import pathlib
import struct
import sys
import types
import zipfile
import zlib

import numpy as np
import torch

OUT = sys.argv[1]
torch.manual_seed(1234)
np.random.seed(1234)

# ---------------------------------------------------------------- foreign
# Classes pixmend must skip. They live in modules registered in sys.modules,
# so the pickles name them as the real packages would ("omegaconf.dictconfig
# DictConfig"), and the loader on the C side can import none of them.
omegaconf = types.ModuleType("omegaconf")
dictconfig = types.ModuleType("omegaconf.dictconfig")
sys.modules["omegaconf"] = omegaconf
sys.modules["omegaconf.dictconfig"] = dictconfig


class DictConfig:
    def __init__(self, content):
        self._content = content
        self._metadata = {"flags": {"readonly": False}, "key": None}

    def __getstate__(self):
        return {"_content": self._content, "_metadata": self._metadata, "_parent": None}


DictConfig.__module__ = "omegaconf.dictconfig"
dictconfig.DictConfig = DictConfig

callbacks_mod = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
sys.modules["pytorch_lightning"] = types.ModuleType("pytorch_lightning")
sys.modules["pytorch_lightning.callbacks"] = types.ModuleType("pytorch_lightning.callbacks")
sys.modules["pytorch_lightning.callbacks.model_checkpoint"] = callbacks_mod


class ModelCheckpoint:
    def __init__(self):
        self.monitor = "val_ssim_fid100_f1_total_mean"
        self.best_model_score = torch.tensor(0.875)  # a tensor inside a foreign object
        self.best_k_models = {"/x/epoch=3.ckpt": torch.tensor(0.8)}
        self.dirpath = pathlib.PosixPath("/experiments/big-lama/models")


ModelCheckpoint.__module__ = "pytorch_lightning.callbacks.model_checkpoint"
callbacks_mod.ModelCheckpoint = ModelCheckpoint


class AttrDict(dict):
    """A dict subclass: pickled with NEWOBJ, then SETITEMS and BUILD."""


class Reduced:
    """An object whose __reduce__ names a foreign function."""

    def __reduce__(self):
        return (os.path.join, ("a", "b"))


class MyTensor(torch.Tensor):
    pass


# ---------------------------------------------------------------- manifest
manifest = []
blobs = {}


def blob_add(blob, data):
    b = blobs.setdefault(blob, bytearray())
    off = len(b)
    b.extend(data)
    return off


DT = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
      torch.float64: "float64", torch.int64: "int64", torch.int32: "int32", torch.int16: "int16",
      torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool"}


def raw_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def flatten(d, prefix=""):
    """Flattens nested dicts as pixmend does; a later duplicate name wins."""
    out = {}
    for k, v in d.items():
        if isinstance(k, str):
            name = prefix + "." + k if prefix else k
        elif isinstance(k, int) and not isinstance(k, bool):
            name = prefix + "." + str(k) if prefix else str(k)
        else:
            continue
        if isinstance(v, torch.Tensor):
            out.pop(name, None)
            out[name] = v
        elif type(v) in (dict, collections.OrderedDict):
            for n2, v2 in flatten(v, name).items():
                out.pop(n2, None)
                out[n2] = v2
    return out


ref_cache = {}


def expect(fixture, tensors, prefix=None, blob=None):
    """Records what opening `fixture` (with `prefix`) must give."""
    blob = blob or fixture + ".ref"
    kept = {n: t for n, t in tensors.items() if prefix is None or n.startswith(prefix)}
    manifest.append("file %s %s %d" % (fixture, prefix or "-", len(kept)))
    for name, t in kept.items():
        assert " " not in name
        raw = raw_bytes(t)
        key = (blob, id(t))
        if key not in ref_cache:
            ro = blob_add(blob, raw)
            fo = -1
            if t.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
                fo = blob_add(blob, t.detach().float().contiguous().numpy().tobytes())
            ref_cache[key] = (ro, fo, t)  # t kept alive so that id() stays unique
        ro, fo, _ = ref_cache[key]
        dims = " ".join(str(d) for d in t.shape)
        manifest.append("t %s %s %d %s %s %d %d %d" % (name, DT[t.dtype], t.dim(), dims, blob, ro, len(raw), fo))


def bad(fixture, err, text):
    manifest.append("bad %s %s %s" % (fixture, err, text))


def path(name):
    return os.path.join(OUT, name)


# ------------------------------------------------- 1. PyTorch Lightning
def lightning():
    sd = collections.OrderedDict()
    sd["generator.model.1.ffc.convl2l.weight"] = torch.randn(64, 3, 7, 7)
    sd["generator.model.1.bn_l.weight"] = torch.rand(64) + 0.5
    sd["generator.model.1.bn_l.bias"] = torch.randn(64)
    sd["generator.model.1.bn_l.running_mean"] = torch.randn(64)
    sd["generator.model.1.bn_l.running_var"] = torch.rand(64) + 0.1
    sd["generator.model.1.bn_l.num_batches_tracked"] = torch.tensor(123456789012, dtype=torch.int64)
    sd["generator.model.5.conv1.ffc.convg2g.fu.conv_layer.weight"] = torch.randn(16, 16, 1, 1)
    sd["generator.model.5.conv1.ffc.convg2g.fu.bn.weight"] = torch.randn(16)
    sd["generator.model.18.weight"] = torch.randn(512, 256, 3, 3)  # ~4.7 MB
    sd["generator.model.18.bias"] = torch.randn(512)
    sd["generator.model.24.weight"] = torch.randn(64, 3, 7, 7)
    sd["generator.model.24.bias"] = torch.randn(3)
    sd["evaluator.loss_fn.net.conv1.weight"] = torch.randn(32, 3, 3, 3)
    sd["evaluator.loss_fn.net.conv1.bias"] = torch.randn(32)
    sd["evaluator.loss_fn.net.bn1.num_batches_tracked"] = torch.tensor(7)
    sd["discriminator.model0.0.weight"] = torch.randn(8, 3, 4, 4)
    hp = {
        "config": DictConfig({"generator": {"kind": "ffc_resnet", "ngf": 64, "n_blocks": 18},
                              "losses": {"l1": {"weight_missing": 0, "weight_known": 10}},
                              "visualizer": None, "ratio": [0.75, 0.75], "stat": torch.zeros(2)}),
        "lr": 1e-3, "betas": [0.9, 0.999], "nothing": None, "name": "big-lama",
        "ünïcode": "ß", "path": pathlib.PosixPath("/data/places"), "np_scalar": np.float64(0.5),
        "np_array": np.arange(6).reshape(2, 3), "big_int": 2 ** 80, "neg": -5, "neg_big": -(2 ** 40),
        "bytes": b"\x00\x01\xff", "set": {1, 2}, "frozen": frozenset({3}), "tuple": (1, "a", None, 2.5),
        "flag": True, "attrs": AttrDict(a=torch.randn(2), b=1), "reduced": Reduced(),
        "module": torch.nn.Linear(3, 2),
    }
    ckpt = {
        "epoch": 41, "global_step": 123456, "pytorch-lightning_version": "1.2.9",
        "state_dict": sd,
        "callbacks": {ModelCheckpoint: ModelCheckpoint()},
        "optimizer_states": [{"state": {0: {"step": 10, "exp_avg": torch.randn(3), "exp_avg_sq": torch.rand(3)}},
                              "param_groups": [{"lr": 0.001, "betas": (0.5, 0.999), "params": [0, 1]}]}],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": hp,
    }
    torch.save(ckpt, path("best.ckpt"))
    expect("best.ckpt", sd, "generator.")
    expect("best.ckpt", sd)
    expect("best.ckpt", sd, "evaluator.")
    with zipfile.ZipFile(path("best.ckpt")) as z:
        name = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        with open(path("best.data.pkl"), "wb") as f:
            f.write(z.read(name))
    return sd


# ---------------------------------------------------------- 2. DDColor
def ddcolor():
    sd = collections.OrderedDict()
    sd["encoder.arch.stages.0.0.gamma"] = torch.randn(96)
    sd["encoder.arch.stages.0.0.dwconv.weight"] = torch.randn(96, 1, 7, 7).half()
    sd["encoder.arch.stages.0.0.pwconv1.weight"] = torch.randn(384, 96).bfloat16()
    sd["decoder.layers.0.shuf.conv.0.weight_orig"] = torch.randn(64, 32, 3, 3).double()
    sd["decoder.layers.0.shuf.conv.0.weight_u"] = torch.randn(64)
    sd["decoder.layers.0.shuf.bn.num_batches_tracked"] = torch.tensor(0)
    sd["refine_net.0.0.weight_orig"] = torch.randn(2, 103, 1, 1)
    sd["mean"] = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    sd["std"] = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    # float16 edge values: subnormals, infinities, NaN, signed zero
    sd["f16_edges"] = torch.tensor([0.0, -0.0, 6e-8, -6e-8, 6.1e-5, 65504.0, float("inf"), -float("inf"), 1.0, -2.5],
                                   dtype=torch.float16)
    sd["f64_rounding"] = torch.tensor([1.0 + 2 ** -30, 0.1, 1e-300, 3.4e38, -1e-45], dtype=torch.float64)
    torch.save({"params": sd}, path("ddcolor.pth"))
    expect("ddcolor.pth", sd)
    # protocol 4 and 5 pickles: FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE
    torch.save({"params": sd}, path("ddcolor_p4.pth"), pickle_protocol=4)
    expect("ddcolor_p4.pth", sd, blob="ddcolor.pth.ref")
    torch.save({"params": sd}, path("ddcolor_p5.pth"), pickle_protocol=5)
    expect("ddcolor_p5.pth", sd, blob="ddcolor.pth.ref")
    # BasicSR keeps both; the EMA weights are the ones to use
    ema = collections.OrderedDict((k, torch.randn(3)) for k in ("a.weight", "b.weight"))
    raw = collections.OrderedDict((k, torch.randn(3)) for k in ("a.weight", "b.weight"))
    torch.save({"params": raw, "params_ema": ema}, path("ema.pth"))
    expect("ema.pth", ema)
    return sd


# ------------------------------------------------------ 3. bare state dict
def bare():
    base = torch.randn(40, 30)
    shared = torch.arange(100, dtype=torch.float32) * 0.5
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.nn.Parameter(torch.randn(8, 4, 3, 3))
    sd["transposed"] = base.t()                       # strides (1, 30)
    sd["slice_offset"] = shared[10:30].view(4, 5)     # contiguous, storage offset 10
    sd["slice_offset2"] = shared[50:53]               # same storage, offset 50
    sd["columns"] = base[5:9, 2:7]                    # strided, offset
    sd["expanded"] = torch.randn(3, 1).expand(3, 4)   # stride 0
    sd["permuted"] = torch.randn(2, 3, 4, 5).permute(3, 1, 0, 2)
    sd["every_other"] = torch.randn(50)[::2]
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0, 3)
    sd["half_t"] = torch.randn(6, 5).half().t()       # non-contiguous float16
    sd["ints"] = torch.tensor([-(2 ** 31), 2 ** 31 - 1, 0], dtype=torch.int32)
    sd["shorts"] = torch.tensor([-32768, 32767], dtype=torch.int16)
    sd["bytes_s"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["bytes_u"] = torch.tensor([0, 255], dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    sd["longs"] = torch.tensor([-(2 ** 62), 2 ** 62], dtype=torch.int64)
    sd["sub"] = torch.randn(7).as_subclass(MyTensor)  # _rebuild_from_type_v2
    sd["ünï.weight"] = torch.randn(2)
    sd["block"] = {"w": torch.randn(2, 2), "inner": {"b": torch.randn(2)}}
    sd["layers"] = {0: torch.randn(1), 1: torch.randn(1)}
    sd["dup.x"] = torch.ones(2)
    sd["dup"] = {"x": torch.full((2,), 7.0)}          # flattens to dup.x; the later one wins
    sd["not_a_tensor"] = [torch.randn(2)]             # lists are not walked
    torch.save(sd, path("pytorch_model.bin"))
    expect("pytorch_model.bin", flatten(sd))
    expect("pytorch_model.bin", flatten(sd), "block.")
    return sd


# ------------------------------------------------------- 4. safetensors
ST = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
      torch.bool: "BOOL"}


def write_safetensors(fname, tensors, extra=None, pad_to=None):
    header, data = {"__metadata__": {"format": "pt", "note": "quote \" and \\u00e9"}}, bytearray()
    for name, t in tensors.items():
        raw = raw_bytes(t)
        header[name] = {"dtype": ST[t.dtype], "shape": list(t.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data.extend(raw)
    for name, (dtype, shape, nbytes) in (extra or {}).items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + nbytes]}
        data.extend(b"\x01" * nbytes)
    h = json.dumps(header).encode()  # ensure_ascii: names come out as \\u escapes
    if pad_to:
        h += b" " * (-len(h) % pad_to)
    with open(path(fname), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + bytes(data))


def safetensors():
    ts = collections.OrderedDict()
    ts["model.embed.weight"] = torch.randn(10, 6)
    ts["model.half"] = torch.randn(5, 3).half()
    ts["model.bf"] = torch.randn(4).bfloat16()
    ts["model.double"] = torch.randn(3, 2).double()
    ts["model.longs"] = torch.tensor([1, -2, 3 ** 30])
    ts["model.u8"] = torch.tensor([1, 2, 250], dtype=torch.uint8)
    ts["model.mask"] = torch.tensor([True, False])
    ts["model.scalar"] = torch.tensor(2.5)
    ts["model.empty"] = torch.zeros(0)
    ts["modèle.poids"] = torch.randn(3)
    ts["model.big"] = torch.randn(300, 200)
    # header length 8k+odd: the data start is misaligned, so floats get copied
    write_safetensors("model.safetensors", ts, extra={"model.fp8": ("F8_E4M3", [4], 4)})
    expect("model.safetensors", ts)
    expect("model.safetensors", ts, "model.")
    write_safetensors("aligned.safetensors", ts, pad_to=8)
    expect("aligned.safetensors", ts)
    return ts


# --------------------------------------------------- 5. re-packed archives
def repack_deflate(src, dst, folder):
    """Re-zips with deflate and another folder name (as zip tools would)."""
    with zipfile.ZipFile(path(src)) as zi, zipfile.ZipFile(path(dst), "w", zipfile.ZIP_DEFLATED) as zo:
        for n in zi.namelist():
            zo.writestr(folder + "/" + n.split("/", 1)[1], zi.read(n))
        zo.writestr(folder + "/byteorder", "little")  # as torch >= 2.1 writes


def repack_stored(src, dst):
    with zipfile.ZipFile(path(src)) as zi, zipfile.ZipFile(path(dst), "w", zipfile.ZIP_STORED) as zo:
        for i, n in enumerate(zi.namelist()):
            zo.writestr(n, zi.read(n))
            if i == 0:
                zo.writestr("padding-" + "x" * 3, b"y")  # shifts what follows off alignment


def repack_zip64(src, dst):
    """Writes every entry with ZIP64 sizes and offsets, and ZIP64 end records."""
    out = bytearray()
    central = bytearray()
    with zipfile.ZipFile(path(src)) as zi:
        names = zi.namelist()
        for n in names:
            data = zi.read(n)
            crc = zlib.crc32(data)
            nb = n.encode()
            off = len(out)
            x64 = struct.pack("<HHQQ", 1, 16, len(data), len(data))
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(x64))
            out += nb + x64 + data
            cx = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                                   len(nb), len(cx), 0, 0, 0, 0, 0xFFFFFFFF)
            central += nb + cx
    cd_off = len(out)
    out += central
    eocd64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(names), len(names), len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path(dst), "wb") as f:
        f.write(out)


# ------------------------------------------------------------ 6. failures
def failures():
    torch.save(torch.nn.Linear(2, 2), path("whole_module.pt"))
    bad("whole_module.pt", "PM_ECHECKPOINT", "torch.nn.modules.linear.Linear object")
    torch.save(torch.ones(3), path("one_tensor.pt"))
    bad("one_tensor.pt", "PM_ECHECKPOINT", "holds a single tensor")
    torch.jit.save(torch.jit.script(torch.nn.Identity()), path("ts_empty.pt"))
    bad("ts_empty.pt", "PM_ECHECKPOINT", "with no parameters or buffers")
    with zipfile.ZipFile(path("nopkl.zip"), "w") as z:
        z.writestr("weights/readme.txt", "no pickle here")
    bad("nopkl.zip", "PM_EFORMAT", "without a data.pkl entry")
    # a storage entry removed from the archive
    with zipfile.ZipFile(path("ddcolor.pth")) as zi, zipfile.ZipFile(path("nostorage.pth"), "w") as zo:
        for n in zi.namelist():
            if not n.endswith("/data/3"):
                zo.writestr(n, zi.read(n))
    bad("nostorage.pth", "PM_ECORRUPT", "which the archive lacks")
    # one flipped byte in a stored tensor: the CRC catches it
    data = bytearray(open(path("ddcolor.pth"), "rb").read())
    with zipfile.ZipFile(path("ddcolor.pth")) as z:
        info = z.getinfo([n for n in z.namelist() if n.endswith("/data/0")][0])
    lh = info.header_offset
    start = lh + 30 + struct.unpack("<H", data[lh + 26:lh + 28])[0] + struct.unpack("<H", data[lh + 28:lh + 30])[0]
    data[start + 5] ^= 0x40
    open(path("flipped.pth"), "wb").write(data)
    bad("flipped.pth", "PM_ECORRUPT", "fails its CRC check")
    # a tensor of 1.6 MB: its CRC is checked in pieces on several threads and
    # combined; intact it must read back, with one byte flipped in its last
    # piece (any piece) it must not
    large = {"w": torch.randn(400003)}
    torch.save(large, path("large.pth"))
    expect("large.pth", large)
    data = bytearray(open(path("large.pth"), "rb").read())
    with zipfile.ZipFile(path("large.pth")) as z:
        info = z.getinfo([n for n in z.namelist() if n.endswith("/data/0")][0])
    lh = info.header_offset
    start = lh + 30 + struct.unpack("<H", data[lh + 26:lh + 28])[0] + struct.unpack("<H", data[lh + 28:lh + 30])[0]
    for name, at in (("large_flip_last.pth", info.file_size - 3), ("large_flip_mid.pth", info.file_size // 2 + 1)):
        flipped = bytearray(data)
        flipped[start + at] ^= 0x01
        open(path(name), "wb").write(flipped)
        bad(name, "PM_ECORRUPT", "fails its CRC check")
    big = bytearray(open(path("ddcolor.pth"), "rb").read())
    # a big-endian byteorder record (as a big-endian machine would write)
    with zipfile.ZipFile(path("ddcolor.pth")) as zi, zipfile.ZipFile(path("bigendian.pth"), "w") as zo:
        for n in zi.namelist():
            zo.writestr(n, zi.read(n))
        zo.writestr(zi.namelist()[0].split("/")[0] + "/byteorder", "big")
    bad("bigendian.pth", "PM_EUNSUPPORTED", "big-endian")
    del big
    with open(path("garbage.bin"), "wb") as f:
        f.write(bytes(range(7, 250)) * 5)
    bad("garbage.bin", "PM_EFORMAT", "neither a PyTorch checkpoint")
    open(path("zero.ckpt"), "wb").close()
    bad("zero.ckpt", "PM_EEMPTY", "is empty")
    with open(path("page.ckpt"), "w") as f:
        f.write("\n<!DOCTYPE html><html><body>404</body></html>\n")
    bad("page.ckpt", "PM_EFORMAT", "HTML page")
    with open(path("lfs.ckpt"), "w") as f:
        f.write("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    bad("lfs.ckpt", "PM_EFORMAT", "Git LFS pointer")
    import pickle
    with open(path("plain.pkl"), "wb") as f:
        pickle.dump({"a": 1}, f, protocol=2)
    bad("plain.pkl", "PM_EFORMAT", "bare Python pickle")


# ---------------------------------------------------- 7. hostile pickles
def pstr(t):
    b = t.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def pint(v):
    return b"\x8a\x08" + struct.pack("<q", v)


def put(i):
    return b"r" + struct.pack("<I", i)


def get(i):
    return b"j" + struct.pack("<I", i)


def ptensor(shape, stride, offset=0, key="0", storage=b"torch\nFloatStorage\n"):
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + b"(" + pstr("storage") + b"c" + storage + pstr(key) + pstr("cpu")
            + pint(4) + b"tQ" + pint(offset) + b"(" + b"".join(pint(v) for v in shape) + b"t("
            + b"".join(pint(v) for v in stride) + b"t\x89ccollections\nOrderedDict\n)RtR")


def hostile_zip(fname, pickle_bytes, storage=b"\0" * 16):
    with zipfile.ZipFile(path(fname), "w") as z:
        z.writestr("h/data.pkl", pickle_bytes)
        z.writestr("h/data/0", storage)
        z.writestr("h/version", "3\n")


def hostile():
    # dicts sharing their children: 2^31 names from a few hundred bytes
    p = b"\x80\x02}" + put(0) + b"0"
    for i in range(1, 31):
        p += b"}(" + pstr("a") + get(i - 1) + pstr("b") + get(i - 1) + b"u" + put(i) + b"0"
    hostile_zip("dag.pth", p + get(30) + b".")
    bad("dag.pth", "PM_ECORRUPT", "share or nest so much")
    hostile_zip("cycle.pth", b"\x80\x02}" + put(0) + pstr("x") + get(0) + b"s.")
    bad("cycle.pth", "PM_ECORRUPT", "nest more than 32 deep")
    hostile_zip("memo.pth", b"\x80\x02}r\xff\xff\xff\xff.")
    bad("memo.pth", "PM_ECORRUPT", "memo index")
    hostile_zip("getfirst.pth", b"\x80\x02" + get(3) + b".")
    bad("getfirst.pth", "PM_ECORRUPT", "read before it is written")
    hostile_zip("underflow.pth", b"\x80\x02}(R.")
    bad("underflow.pth", "PM_ECORRUPT", "stack is empty")
    hostile_zip("nostop.pth", b"\x80\x02}" + pstr("a"))
    bad("nostop.pth", "PM_ETRUNCATED", "without a STOP")
    hostile_zip("badop.pth", b"\x80\x02}\xff.")
    bad("badop.pth", "PM_ECORRUPT", "unknown opcode 0xff")
    hostile_zip("longstr.pth", b"\x80\x02X\xff\xff\xff\x7fabc.")
    bad("longstr.pth", "PM_ETRUNCATED", "ends inside an opcode")
    hostile_zip("expand.pth", b"\x80\x02}" + pstr("w") + ptensor([1 << 20, 1 << 20], [0, 0]) + b"s.")
    bad("expand.pth", "PM_ECORRUPT", "would need 4398046511104 bytes")
    hostile_zip("oob.pth", b"\x80\x02}" + pstr("w") + ptensor([5], [1]) + b"s.")
    bad("oob.pth", "PM_ECORRUPT", "reaches past the 4 elements")
    hostile_zip("offset.pth", b"\x80\x02}" + pstr("w") + ptensor([2], [1], offset=3) + b"s.")
    bad("offset.pth", "PM_ECORRUPT", "storage offset 3")
    hostile_zip("stride.pth", b"\x80\x02}" + pstr("w") + ptensor([3], [1 << 62]) + b"s.")
    bad("stride.pth", "PM_ECORRUPT", "reaches past")
    hostile_zip("negshape.pth", b"\x80\x02}" + pstr("w") + ptensor([-1], [1]) + b"s.")
    bad("negshape.pth", "PM_ECORRUPT", "negative size")
    hostile_zip("bigshape.pth", b"\x80\x02}" + pstr("w") + ptensor([1 << 40, 1 << 40], [1, 1]) + b"s.")
    bad("bigshape.pth", "PM_ECORRUPT", "impossible shape")
    hostile_zip("traversal.pth", b"\x80\x02}" + pstr("w") + ptensor([1], [1], key="../0") + b"s.")
    bad("traversal.pth", "PM_ECORRUPT", "which the archive lacks")
    # an unknown storage type (complex numbers): skipped, not fatal
    hostile_zip("complex.pth", b"\x80\x02}(" + pstr("w") + ptensor([1], [1], storage=b"torch\nComplexFloatStorage\n")
                + pstr("v") + ptensor([2], [1]) + b"u.")
    expect("complex.pth", {"v": torch.zeros(2)})


# ------------------------------------------- 8. legacy and TorchScript
class Head(torch.nn.Module):
    """A small network with nested, shared and indexed submodules."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                        torch.nn.ReLU())
        self.proj = torch.nn.Conv2d(4, 2, 1)
        self.register_buffer("scale", torch.tensor([0.5, 2.0], dtype=torch.float64))

    def forward(self, x):
        return self.proj(self.body(x)) * self.scale.float()[None, :, None, None]


class Wrapper(torch.nn.Module):
    """As IOPaint wraps a generator: forward(image, mask)."""

    def __init__(self, net):
        super().__init__()
        self.generator = net

    def forward(self, image, mask):
        return self.generator(image * (1 - mask)) * mask + image[:, :2] * (1 - mask)


def randomized(m):
    with torch.no_grad():
        for t in m.state_dict().values():
            if t.dtype.is_floating_point:
                t.copy_(torch.randn(t.shape, dtype=t.dtype))
    return m.eval()


def legacy_and_torchscript():
    # legacy: a state dict with views (slices sharing a storage), several dtypes, nesting
    base = torch.randn(6, 5)
    sd = {"w": base, "row": base[2], "col": base[:, 1], "half": torch.randn(3, 2).half(),
          "bf": torch.randn(4).bfloat16(), "n": torch.tensor(12345678901234, dtype=torch.int64),
          "nested": {"x": torch.arange(7, dtype=torch.int32), "flag": torch.tensor([True, False])},
          "empty": torch.zeros(0, 3), "note": "kept out"}
    torch.save({"state_dict": sd, "epoch": 3}, path("legacy_sd.pt"), _use_new_zipfile_serialization=False)
    expect("legacy_sd.pt", flatten(sd))
    torch.save({"a": torch.ones(2)}, path("legacy.pt"), _use_new_zipfile_serialization=False)
    expect("legacy.pt", {"a": torch.ones(2)})
    torch.save({"b": torch.arange(5.0)}, path("legacy_p4.pt"), _use_new_zipfile_serialization=False, pickle_protocol=4)
    expect("legacy_p4.pt", {"b": torch.arange(5.0)})
    # a truncated legacy file: the appended storages end early
    data = open(path("legacy_sd.pt"), "rb").read()
    open(path("legacy_cut.pt"), "wb").write(data[:len(data) - 20])
    bad("legacy_cut.pt", "PM_ETRUNCATED", "truncated")
    # TorchScript: scripted, traced, and traced inside a wrapper (names under generator.)
    head = randomized(Head())
    x = torch.randn(1, 3, 8, 8)
    torch.jit.save(torch.jit.script(head), path("ts_script.pt"))
    expect("ts_script.pt", dict(head.state_dict()))
    torch.jit.save(torch.jit.trace(head, x), path("ts_gen.pt"))
    expect("ts_gen.pt", dict(head.state_dict()))
    wrap = Wrapper(head).eval()
    torch.jit.save(torch.jit.trace(wrap, (x, (x[:, :1] > 0).float())), path("ts_wrapped.pt"))
    expect("ts_wrapped.pt", dict(wrap.state_dict()))
    lin = torch.nn.Linear(2, 2)
    torch.jit.save(torch.jit.script(lin), path("scripted.pt"))
    expect("scripted.pt", dict(lin.state_dict()))
    # a truncated TorchScript archive: the zip's directory is gone
    data = open(path("ts_gen.pt"), "rb").read()
    open(path("ts_cut.pt"), "wb").write(data[:len(data) * 2 // 3])
    bad("ts_cut.pt", "PM_ETRUNCATED", "ts_cut.pt")


def write_tar_legacy(fname, storages, tensors, obj):
    """PyTorch's format before 0.4, as torch.load's legacy_load reads it: a
    tar with 'storages' (count; per storage (key, location, type), int64
    element count, bytes; then the views list), 'tensors' (count; per tensor
    (key, storage key, type), int32 ndim, 4 pad bytes, int64 sizes, strides,
    offset) and 'pickle' (the object, tensors as persistent ids str(key))."""
    import pickle as pk
    import tarfile

    class Ref:
        def __init__(self, key):
            self.key = key

    class P(pk.Pickler):
        def persistent_id(self, o):
            return str(o.key) if isinstance(o, Ref) else None

    st = pk.dumps(len(storages), protocol=2)
    for key, flat in storages.items():
        typ = {torch.float32: torch.FloatStorage, torch.float16: torch.HalfStorage, torch.int64: torch.LongStorage}
        st += pk.dumps((key, "cpu", typ[flat.dtype]), protocol=2) + struct.pack("<q", flat.numel()) + raw_bytes(flat)
    st += pk.dumps([], protocol=2)
    ts = pk.dumps(len(tensors), protocol=2)
    for key, (skey, shape, stride, offset) in tensors.items():
        ts += pk.dumps((key, skey, torch.FloatTensor), protocol=2) + struct.pack("<i", len(shape)) + b"\0" * 4
        ts += struct.pack("<%dq" % len(shape), *shape) + struct.pack("<%dq" % len(stride), *stride)
        ts += struct.pack("<q", offset)
    buf = io.BytesIO()
    P(buf, protocol=2).dump(obj(Ref))
    with tarfile.open(path(fname), "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("sys_info", pk.dumps({"little_endian": True}, protocol=2)), ("pickle", buf.getvalue()),
                           ("tensors", ts), ("storages", st)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def tar_legacy():
    a, h, n = torch.randn(30), torch.randn(6).half(), torch.tensor([123456789012345])
    storages = {101: a, 102: h, 103: n}
    tensors = {1: (101, (6, 5), (5, 1), 0), 2: (101, (5,), (1,), 10), 3: (101, (6,), (5,), 1),
               4: (102, (3, 2), (2, 1), 0), 5: (103, (), (), 0)}
    write_tar_legacy("tar_legacy.pt", storages, tensors,
                     lambda R: {"state_dict": {"w": R(1), "row": R(2), "col": R(3), "half": R(4), "n": R(5)},
                                "epoch": 2})
    sd = torch.load(path("tar_legacy.pt"))["state_dict"]  # torch reads it: the layout is right
    assert torch.equal(sd["col"], a.view(6, 5)[:, 1]) and torch.equal(sd["row"], a[10:15])
    expect("tar_legacy.pt", flatten(sd))
    import tarfile
    with tarfile.open(path("tar_legacy.pt")) as t:
        cut = t.getmember("storages").offset_data + 150  # inside the storages member
    open(path("tar_cut.pt"), "wb").write(open(path("tar_legacy.pt"), "rb").read()[:cut])
    bad("tar_cut.pt", "PM_ETRUNCATED", "truncated")


def refused():
    """Pickles naming what no checkpoint needs: refused before anything else."""
    hostile_zip("system.pth", b"\x80\x02}" + pstr("w") + b"cposix\nsystem\n" + pstr("echo pwned") + b"\x85Rs.")
    bad("system.pth", "PM_ECORRUPT", "names posix.system")
    hostile_zip("eval.pth", b"\x80\x02cbuiltins\neval\n" + pstr("1") + b"\x85R.")
    bad("eval.pth", "PM_ECORRUPT", "names builtins.eval")
    # a TorchScript archive (constants.pkl present) naming a foreign class
    with zipfile.ZipFile(path("ts_foreign.pt"), "w") as z:
        z.writestr("m/data.pkl", b"\x80\x02cnumpy\nndarray\n)\x81.")
        z.writestr("m/constants.pkl", b"\x80\x02).")
        z.writestr("m/version", "3\n")
    bad("ts_foreign.pt", "PM_ECORRUPT", "a TorchScript module tree names only")
    # legacy stream whose object pickle calls os.system
    legacy = (b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}."
              + b"\x80\x02cos\nsystem\n" + pstr("id") + b"\x85R." + b"\x80\x02].")
    open(path("legacy_system.pt"), "wb").write(legacy)
    bad("legacy_system.pt", "PM_ECORRUPT", "names os.system")


def main():
    os.makedirs(OUT, exist_ok=True)
    lightning()
    ddcolor()
    sd = bare()
    safetensors()
    repack_deflate("pytorch_model.bin", "deflated.bin", "my-model-v2")
    expect("deflated.bin", flatten(sd), blob="pytorch_model.bin.ref")
    repack_stored("pytorch_model.bin", "restored.bin")  # storages no longer aligned
    expect("restored.bin", flatten(sd), blob="pytorch_model.bin.ref")
    repack_zip64("ddcolor.pth", "zip64.pth")
    with zipfile.ZipFile(path("zip64.pth")) as z:  # Python reads it back: the layout is valid
        assert z.testzip() is None
    sd2 = torch.load(path("zip64.pth"))["params"]
    assert all(torch.equal(sd2[k], v) for k, v in sd2.items())
    expect("zip64.pth", sd2, blob="ddcolor.pth.ref")
    failures()
    hostile()
    legacy_and_torchscript()
    tar_legacy()
    refused()
    for name, b in blobs.items():
        with open(path(name), "wb") as f:
            f.write(b)
    with open(path("manifest.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(manifest) + "\n")


main()
