"""Reference LaMa "big-lama" generator (FFC ResNet) in PyTorch, written from the
facts in /work/shared/models.md, plus a writer for checkpoints in the official
PyTorch Lightning layout with random weights.

Used by the golden tests (tests/golden/lama_golden.py) and the benchmark
(bench/lama/bench_lama.py). Run with /usr/bin/python3 (Debian torch 1.13).
"""
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class FourierUnit(nn.Module):
    """rfft2 (ortho) -> [Re, Im] interleaved channels -> 1x1 conv -> BN -> ReLU -> irfft2."""

    def __init__(self, ch):
        super().__init__()
        self.conv_layer = nn.Conv2d(2 * ch, 2 * ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        n, c, h, w = x.shape
        f = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
        # channel 2c = Re F_c, channel 2c+1 = Im F_c
        f = torch.stack((f.real, f.imag), dim=2).reshape(n, 2 * c, h, w // 2 + 1)
        f = self.relu(self.bn(self.conv_layer(f)))
        f = f.reshape(n, c, 2, h, w // 2 + 1)
        z = torch.complex(f[:, :, 0].contiguous(), f[:, :, 1].contiguous())
        return torch.fft.irfftn(z, s=(h, w), dim=(-2, -1), norm="ortho")


class SpectralTransform(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        hid = cout // 2
        self.conv1 = nn.Sequential(nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid),
                                   nn.ReLU(inplace=True))
        self.fu = FourierUnit(hid)
        self.conv2 = nn.Conv2d(hid, cout, 1, bias=False)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(x + self.fu(x))


class FFC(nn.Module):
    """Fast Fourier convolution: local/global split; only the branches with
    non-zero channels exist (as in the checkpoint)."""

    def __init__(self, cin, cout, k, ratio_in, ratio_out, stride=1, padding=0):
        super().__init__()
        in_g = int(cin * ratio_in)
        in_l = cin - in_g
        out_g = int(cout * ratio_out)
        out_l = cout - out_g
        self.in_g = in_g

        def conv(a, b):
            return nn.Conv2d(a, b, k, stride, padding, bias=False, padding_mode="reflect")
        if in_l and out_l:
            self.convl2l = conv(in_l, out_l)
        if in_l and out_g:
            self.convl2g = conv(in_l, out_g)
        if in_g and out_l:
            self.convg2l = conv(in_g, out_l)
        if in_g and out_g:
            self.convg2g = SpectralTransform(in_g, out_g)
        self.out_l, self.out_g = out_l, out_g

    def forward(self, x):
        xl, xg = x if isinstance(x, tuple) else (x, 0)
        ol, og = 0, 0
        if self.out_l:
            ol = self.convl2l(xl)
            if hasattr(self, "convg2l"):
                ol = ol + self.convg2l(xg)
        if self.out_g:
            og = self.convl2g(xl)
            if hasattr(self, "convg2g"):
                og = og + self.convg2g(xg)
        return ol, og


class FFC_BN_ACT(nn.Module):
    def __init__(self, cin, cout, k, ratio_in, ratio_out, stride=1, padding=0):
        super().__init__()
        self.ffc = FFC(cin, cout, k, ratio_in, ratio_out, stride, padding)
        if self.ffc.out_l:
            self.bn_l = nn.BatchNorm2d(self.ffc.out_l)
        if self.ffc.out_g:
            self.bn_g = nn.BatchNorm2d(self.ffc.out_g)

    def forward(self, x):
        # in-place ReLU as in the published FFC_BN_ACT (act_l/act_g inplace=True)
        ol, og = self.ffc(x)
        if self.ffc.out_l:
            ol = F.relu_(self.bn_l(ol))
        if self.ffc.out_g:
            og = F.relu_(self.bn_g(og))
        return ol, og


class FFCResBlock(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        self.conv1 = FFC_BN_ACT(dim, dim, 3, ratio, ratio, padding=1)
        self.conv2 = FFC_BN_ACT(dim, dim, 3, ratio, ratio, padding=1)

    def forward(self, x):
        xl, xg = x
        yl, yg = self.conv2(self.conv1((xl, xg)))
        return xl + yl, xg + yg


class Concat(nn.Module):
    def forward(self, x):
        return torch.cat(x, dim=1)


class FFCResNetGenerator(nn.Module):
    """generator.model.<i> layout of big-lama (ngf 64, 18 blocks); ngf and
    blocks may be reduced for tests."""

    def __init__(self, ngf=64, blocks=18, ratio=0.75):
        super().__init__()
        self.ngf, self.blocks = ngf, blocks
        # FFC_BN_ACT returns (local, global) with global 0 where it has no
        # global channels; the next FFC ignores an empty global input.
        layers = [nn.ReflectionPad2d(3), FFC_BN_ACT(4, ngf, 7, 0, 0)]
        ch = ngf
        for i in range(3):
            out_ratio = ratio if i == 2 else 0
            layers.append(FFC_BN_ACT(ch, ch * 2, 3, 0, out_ratio, stride=2, padding=1))
            ch *= 2
        for _ in range(blocks):
            layers.append(FFCResBlock(ch, ratio))
        layers.append(Concat())
        for _ in range(3):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1),
                       nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Sigmoid()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def randomize(model, seed):
    """Random conv weights (fan-in scaled) and non-trivial BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                w = m.weight
                fan_in = w.shape[1] * w.shape[2] * w.shape[3]
                if isinstance(m, nn.ConvTranspose2d):
                    fan_in = w.shape[0] * w.shape[2] * w.shape[3] / 4
                w.copy_(torch.randn(w.shape, generator=g) * (1.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                # the last BatchNorms of a residual block get small scales so
                # that 18 blocks of random weights keep the residual stream
                # (and the sigmoid output) in a useful range
                lo, span = (0.05, 0.1) if ".conv2.bn_" in name else (0.8, 0.4)
                m.weight.copy_(lo + span * torch.rand(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(1234)
    model.eval()
    return model


def make_model(ngf=64, blocks=18, seed=0):
    return randomize(FFCResNetGenerator(ngf, blocks), seed)


def save_checkpoint(model, path, seed=0):
    """Writes the official layout: {'state_dict': {'generator.*', some
    'evaluator.*'}, 'hyper_parameters': {... incl. a foreign-class object}}."""
    g = torch.Generator().manual_seed(seed + 7)
    sd = {}
    for k, v in model.state_dict().items():
        sd["generator." + k] = v.clone()
    sd["evaluator.scores.ssim.weight"] = torch.randn(1, 1, 11, 11, generator=g)
    sd["evaluator.scores.lpips.net.lin0.model.1.weight"] = torch.randn(1, 64, 1, 1, generator=g)
    sd["evaluator.scores.fid.model.Conv2d_1a_3x3.conv.weight"] = torch.randn(32, 3, 3, 3, generator=g)
    hp = {
        "generator": {"kind": "ffc_resnet", "input_nc": 4, "output_nc": 3, "ngf": model.ngf,
                      "n_downsampling": 3, "n_blocks": model.blocks, "add_out_act": "sigmoid"},
        "training_model": {"kind": "default"},
        "location": types.SimpleNamespace(data_root_dir="/data", out_root_dir="/out"),
    }
    torch.save({"epoch": 40, "global_step": 1000, "pytorch-lightning_version": "1.2.9",
                "state_dict": sd, "hyper_parameters": hp}, path)


def load_checkpoint(path):
    """Builds a reference model from a checkpoint (shapes tell ngf and blocks)."""
    ck = torch.load(path, map_location="cpu")
    sd = {k[len("generator."):]: v for k, v in ck["state_dict"].items() if k.startswith("generator.")}
    ngf = sd["model.1.ffc.convl2l.weight"].shape[0]
    blocks = 0
    while "model.%d.conv1.ffc.convl2l.weight" % (5 + blocks) in sd:
        blocks += 1
    m = FFCResNetGenerator(ngf, blocks)
    m.load_state_dict(sd, strict=True)
    m.eval()
    return m


def predict(model, img_u8, mask_u8):
    """The reference prediction: img HxWx3 uint8, mask HxW uint8 -> HxWx3 uint8."""
    h, w = mask_u8.shape
    img = torch.from_numpy(img_u8.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    mask = torch.from_numpy(mask_u8.astype(np.float32) / 255.0)[None, None]
    ph, pw = (8 - h % 8) % 8, (8 - w % 8) % 8
    img = F.pad(img, (0, pw, 0, ph), mode="replicate")
    mask = F.pad(mask, (0, pw, 0, ph), mode="replicate")
    mask = (mask > 0).float()
    x = torch.cat([img * (1 - mask), mask], dim=1)
    with torch.no_grad():
        pred = model(x)
    res = mask * pred + (1 - mask) * img
    res = res[0, :, :h, :w].permute(1, 2, 0).numpy()
    return np.clip(res * 255, 0, 255).astype(np.uint8)


def save_state_dict(sd, path):
    """Writes a bare generator state dict (keys without 'generator.') in the
    official checkpoint layout, as it is (for damaged-checkpoint tests)."""
    torch.save({"state_dict": {"generator." + k: v for k, v in sd.items()},
                "hyper_parameters": {"generator": {"kind": "ffc_resnet"}}}, path)
