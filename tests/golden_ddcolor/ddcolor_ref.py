#!/usr/bin/python3
"""A PyTorch reference of DDColor, written from /work/shared/models.md (the
architecture as published), in the official checkpoint key layout, for any
configuration (depths, dims, nf, hidden, queries, scales, layers, FFN width).

Used by the golden tests (tests/golden_ddcolor/golden_ddcolor.py) and by the
benchmark (bench/ddcolor). Also the reference pipeline, which uses cv2 for the
colour conversions and the resize exactly as DDColor's inference pipeline does.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CONFIG_L = dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536), nf=512, hidden=256,
                queries=100, scales=3, layers=9, ffn=2048, heads=8)
CONFIG_T = dict(CONFIG_L, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))


# ---------------------------------------------------------------- encoder

class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor (ConvNeXt's channels_first)."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.dwconv = nn.Conv2d(d, d, 7, padding=3, groups=d)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.pwconv1 = nn.Linear(d, 4 * d)
        self.pwconv2 = nn.Linear(4 * d, d)
        self.gamma = nn.Parameter(torch.ones(d))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, depths, dims):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0]))] +
            [nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2)) for i in range(3)])
        self.stages = nn.ModuleList([nn.Sequential(*[Block(dims[i]) for _ in range(depths[i])]) for i in range(4)])
        for i in range(4):
            self.add_module("norm%d" % i, LayerNorm2d(dims[i]))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)  # in the file, unused

    def forward(self, x):
        feats = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            feats.append(getattr(self, "norm%d" % i)(x))  # the normalised copy feeds the decoder only
        return feats


class Encoder(nn.Module):
    def __init__(self, depths, dims):
        super().__init__()
        self.arch = ConvNeXt(depths, dims)


# ---------------------------------------------------------- pixel decoder

def sn(conv):
    return nn.utils.spectral_norm(conv)


class ShuffleBlur(nn.Module):
    """1x1 conv (spectral norm) [-> BN] -> ReLU -> pixel shuffle -> replication pad
    (left 1, top 1) -> 2x2 average pool, stride 1."""

    def __init__(self, ni, nf, scale, extra_bn):
        super().__init__()
        layers = [sn(nn.Conv2d(ni, nf * scale * scale, 1, bias=not extra_bn))]
        if extra_bn:
            layers.append(nn.BatchNorm2d(nf * scale * scale))
        self.conv = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x):
        x = F.pixel_shuffle(F.relu(self.conv(x)), self.scale)
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


class UnetBlockWide(nn.Module):
    def __init__(self, up_in, x_in, n_out):
        super().__init__()
        self.shuf = ShuffleBlur(up_in, n_out, 2, True)
        self.bn = nn.BatchNorm2d(x_in)
        self.conv = nn.Sequential(sn(nn.Conv2d(n_out + x_in, n_out, 3, padding=1, bias=False)),
                                  nn.ReLU(), nn.BatchNorm2d(n_out))

    def forward(self, up_in, skip):
        up = self.shuf(up_in)
        return self.conv(F.relu(torch.cat([up, self.bn(skip)], 1)))


# ---------------------------------------------------------- colour decoder

def sine_pos(h, w, hidden):
    """DETR-style sine positions, [h*w, hidden]: y half then x half, sin/cos interleaved."""
    npf = hidden // 2
    y = torch.arange(1, h + 1, dtype=torch.float32)[:, None].expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float32)[None, :].expand(h, w)
    eps, scale = 1e-6, 2 * math.pi
    y = y / (y[-1:, :] + eps) * scale
    x = x / (x[:, -1:] + eps) * scale
    dim_t = torch.arange(npf, dtype=torch.float32)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    px = x[:, :, None] / dim_t
    py = y[:, :, None] / dim_t
    px = torch.stack((px[:, :, 0::2].sin(), px[:, :, 1::2].cos()), dim=3).flatten(2)
    py = torch.stack((py[:, :, 0::2].sin(), py[:, :, 1::2].cos()), dim=3).flatten(2)
    return torch.cat((py, px), dim=2).reshape(h * w, hidden)


class SelfAttentionLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads)
        self.norm = nn.LayerNorm(d)

    def forward(self, tgt, qpos):
        q = tgt + qpos
        return self.norm(tgt + self.self_attn(q, q, tgt)[0])


class CrossAttentionLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d, heads)
        self.norm = nn.LayerNorm(d)

    def forward(self, tgt, mem, pos, qpos):
        return self.norm(tgt + self.multihead_attn(tgt + qpos, mem + pos, mem)[0])


class FFNLayer(nn.Module):
    def __init__(self, d, ffn):
        super().__init__()
        self.linear1 = nn.Linear(d, ffn)
        self.linear2 = nn.Linear(ffn, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, tgt):
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    def __init__(self, n_in, n_hidden, n_out, n_layers):
        super().__init__()
        dims = [n_in] + [n_hidden] * (n_layers - 1)
        outs = [n_hidden] * (n_layers - 1) + [n_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, outs))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MultiScaleColorDecoder(nn.Module):
    def __init__(self, in_channels, hidden, queries, heads, ffn, layers, scales, embed_dim):
        super().__init__()
        self.hidden = hidden
        self.num_layers = layers
        self.scales = scales
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer(hidden, heads) for _ in range(layers))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer(hidden, heads) for _ in range(layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden, ffn) for _ in range(layers))
        self.decoder_norm = nn.LayerNorm(hidden)
        self.query_feat = nn.Embedding(queries, hidden)
        self.query_embed = nn.Embedding(queries, hidden)
        self.level_embed = nn.Embedding(scales, hidden)
        self.input_proj = nn.ModuleList(nn.Conv2d(in_channels[i], hidden, 1) for i in range(scales))
        self.color_embed = MLP(hidden, hidden, embed_dim, 3)

    def forward(self, feats, img_features):
        src, pos = [], []
        for i in range(self.scales):
            _, _, h, w = feats[i].shape
            pos.append(sine_pos(h, w, self.hidden)[:, None, :])  # [HW, 1, C]
            s = self.input_proj[i](feats[i]).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(s.permute(2, 0, 1))  # [HW, 1, C]
        qpos = self.query_embed.weight[:, None, :]
        out = self.query_feat.weight[:, None, :]
        for i in range(self.num_layers):
            lvl = i % self.scales
            out = self.transformer_cross_attention_layers[i](out, src[lvl], pos[lvl], qpos)
            out = self.transformer_self_attention_layers[i](out, qpos)
            out = self.transformer_ffn_layers[i](out)
        out = self.decoder_norm(out).transpose(0, 1)  # [1, Q, C]
        embed = self.color_embed(out)
        return torch.einsum("bqc,bchw->bqhw", embed, img_features)


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dims, nf = cfg["dims"], cfg["nf"]
        self.layers = nn.ModuleList([UnetBlockWide(dims[3], dims[2], nf),
                                     UnetBlockWide(nf, dims[1], nf),
                                     UnetBlockWide(nf, dims[0], nf // 2)])
        self.last_shuf = ShuffleBlur(nf // 2, nf // 2, 4, False)
        self.color_decoder = MultiScaleColorDecoder([nf, nf, nf // 2], cfg["hidden"], cfg["queries"], cfg["heads"],
                                                    cfg["ffn"], cfg["layers"], cfg["scales"], nf // 2)


class DDColor(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        self.encoder = Encoder(cfg["depths"], cfg["dims"])
        self.decoder = Decoder(cfg)
        self.refine_net = nn.Sequential(nn.Sequential(sn(nn.Conv2d(cfg["queries"] + 3, 2, 1))))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x - self.mean) / self.std
        f = self.encoder.arch(x)
        d = self.decoder
        out0 = d.layers[0](f[3], f[2])  # stride 16
        out1 = d.layers[1](out0, f[1])  # stride 8
        out2 = d.layers[2](out1, f[0])  # stride 4
        out3 = d.last_shuf(out2)  # stride 1
        feats = [out0, out1, out2][:d.color_decoder.scales]
        q = d.color_decoder(feats, out3)
        return self.refine_net(torch.cat([q, x], 1))


# ---------------------------------------------------- random checkpoints

def _init_spectral(module, g, u_scale=1.0):
    """Stored u, v after one power iteration from random vectors: u.(W v) is
    close to, but not, the largest singular value (as in a trained file)."""
    w = module.weight_orig.detach().reshape(module.weight_orig.shape[0], -1)
    v = torch.randn(w.shape[1], generator=g)
    v = v / v.norm()
    u = w @ v
    u = u / u.norm()
    v = w.t() @ u
    v = v / v.norm()
    u = w @ v
    u = u / u.norm()
    module.weight_u.copy_(u * u_scale)
    module.weight_v.copy_(v)


@torch.no_grad()
def random_model(cfg, seed=0, calibrate_input=None, ab_std=25.0):
    """A DDColor with random, non-trivial weights: random BatchNorm statistics,
    layer-scale gamma and LayerNorm affine terms, stored spectral-norm vectors.
    When calibrate_input is given, the refine conv's u is scaled so that the
    output ab has about `ab_std` standard deviation (a realistic colour range)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    m = DDColor(cfg).eval()
    for mod in m.modules():
        if isinstance(mod, (nn.LayerNorm, LayerNorm2d)):
            mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape, generator=g))
            mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
        elif isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.copy_(0.5 + torch.rand(c, generator=g))
            mod.bias.copy_(0.2 * torch.randn(c, generator=g))
            mod.running_mean.copy_(0.2 * torch.randn(c, generator=g))
            mod.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
            mod.num_batches_tracked.fill_(1000)
        elif isinstance(mod, Block):
            mod.gamma.copy_(0.2 + 0.4 * torch.rand(mod.gamma.shape, generator=g))
        elif isinstance(mod, nn.Conv2d) and mod.bias is not None and not hasattr(mod, "weight_orig"):
            mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
        elif isinstance(mod, nn.Embedding):
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=g))
        elif isinstance(mod, nn.MultiheadAttention):
            mod.in_proj_bias.copy_(0.1 * torch.randn(mod.in_proj_bias.shape, generator=g))
            mod.out_proj.bias.copy_(0.1 * torch.randn(mod.out_proj.bias.shape, generator=g))
    for mod in m.modules():
        if hasattr(mod, "weight_orig"):
            if mod.bias is not None:
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
            _init_spectral(mod, g)
    if calibrate_input is not None:
        out = m(calibrate_input)
        std = float(out.std())
        ref = m.refine_net[0][0]
        ref.weight_u.mul_(std / ab_std)
        ref.bias.mul_(ab_std / max(std, 1e-6))
    return m


def state_dict(m):
    return {k: v.detach().clone().contiguous() for k, v in m.state_dict().items()}


def save_checkpoints(m, pth_path=None, bin_path=None):
    sd = state_dict(m)
    if pth_path:
        torch.save({"params": sd}, pth_path)
    if bin_path:
        torch.save(sd, bin_path)
    return sd


# ---------------------------------------------------- reference pipeline

@torch.no_grad()
def pipeline(model, img_bgr_u8, input_size, upsample="nearest"):
    """DDColor's inference pipeline (cv2 for Lab and resizing) on an 8-bit BGR
    image; returns the 8-bit BGR result."""
    import cv2
    h, w = img_bgr_u8.shape[:2]
    img = (img_bgr_u8 / 255.0).astype(np.float32)
    orig_l = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)[:, :, :1]
    img = cv2.resize(img, (input_size, input_size))
    img_l = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)[:, :, :1]
    gray_lab = np.concatenate((img_l, np.zeros_like(img_l), np.zeros_like(img_l)), axis=-1)
    gray_rgb = cv2.cvtColor(gray_lab, cv2.COLOR_LAB2RGB)
    x = torch.from_numpy(gray_rgb.transpose((2, 0, 1))).float().unsqueeze(0)
    ab = model(x).cpu()
    if upsample == "nearest":
        ab = F.interpolate(ab, size=(h, w))
    else:
        ab = F.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
    ab = ab[0].float().numpy().transpose(1, 2, 0)
    lab = np.concatenate((orig_l, ab), axis=-1)
    bgr = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    return (bgr * 255.0).round().astype(np.uint8)


if __name__ == "__main__":
    for name, cfg in (("L", CONFIG_L), ("T", CONFIG_T)):
        sd = DDColor(cfg).state_dict()
        n = sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked") and "weight_u" not in k
                and "weight_v" not in k and k not in ("mean", "std"))
        print(name, len(sd), "tensors", "%.1f M parameters" % (n / 1e6))
