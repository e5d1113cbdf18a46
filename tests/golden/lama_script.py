"""TorchScript forms of the LaMa reference (lama_ref.py), written the way
IOPaint and the ComfyUI nodes use big-lama.pt: a module whose
forward(image, mask) masks the image, runs the generator and blends.

lama_ref's modules are traceable but not scriptable (tuples holding 0,
hasattr); ScriptGenerator is a twin with the same module tree and parameter
names (absent branches are nn.Identity, which hold no tensors), so the
reference weights load into it strictly and torch.jit.script compiles it.
"""
import linecache
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import lama_ref


class InpaintWrapper(nn.Module):
    """forward(image, mask) as IOPaint calls big-lama.pt: image 1x3xHxW and
    mask 1x1xHxW in [0, 1], the generator under `generator`."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, image, mask):
        masked = image * (1 - mask)
        pred = self.generator(torch.cat([masked, mask], dim=1))
        return mask * pred + (1 - mask) * image


class FourierUnitS(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv_layer = nn.Conv2d(2 * ch, 2 * ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * ch)

    def forward(self, x):
        n, c, h, w = x.shape
        f = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
        f = torch.stack((f.real, f.imag), dim=2).reshape(n, 2 * c, h, w // 2 + 1)
        f = F.relu(self.bn(self.conv_layer(f)))
        f = f.reshape(n, c, 2, h, w // 2 + 1)
        z = torch.complex(f[:, :, 0].contiguous(), f[:, :, 1].contiguous())
        return torch.fft.irfftn(z, s=(h, w), dim=(-2, -1), norm="ortho")


class SpectralS(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        hid = cout // 2
        self.conv1 = nn.Sequential(nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU(inplace=True))
        self.fu = FourierUnitS(hid)
        self.conv2 = nn.Conv2d(hid, cout, 1, bias=False)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(x + self.fu(x))


class FFCS(nn.Module):
    def __init__(self, cin, cout, k, ratio_in, ratio_out, stride=1, padding=0):
        super().__init__()
        in_g = int(cin * ratio_in)
        in_l = cin - in_g
        out_g = int(cout * ratio_out)
        out_l = cout - out_g

        def conv(a, b):
            return nn.Conv2d(a, b, k, stride, padding, bias=False, padding_mode="reflect")
        self.convl2l = conv(in_l, out_l) if in_l and out_l else nn.Identity()
        self.convl2g = conv(in_l, out_g) if in_l and out_g else nn.Identity()
        self.convg2l = conv(in_g, out_l) if in_g and out_l else nn.Identity()
        self.convg2g = SpectralS(in_g, out_g) if in_g and out_g else nn.Identity()
        self.has_g = bool(in_g)
        self.out_l, self.out_g = out_l, out_g

    def forward(self, xl: torch.Tensor, xg: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        ol = xl
        og: Optional[torch.Tensor] = None
        if self.out_l > 0:
            ol = self.convl2l(xl)
            if self.has_g and xg is not None:
                ol = ol + self.convg2l(xg)
        if self.out_g > 0:
            o = self.convl2g(xl)
            if self.has_g and xg is not None:
                o = o + self.convg2g(xg)
            og = o
        return ol, og


class FFCBNS(nn.Module):
    def __init__(self, cin, cout, k, ratio_in, ratio_out, stride=1, padding=0):
        super().__init__()
        self.ffc = FFCS(cin, cout, k, ratio_in, ratio_out, stride, padding)
        self.bn_l = nn.BatchNorm2d(self.ffc.out_l) if self.ffc.out_l else nn.Identity()
        self.bn_g = nn.BatchNorm2d(self.ffc.out_g) if self.ffc.out_g else nn.Identity()

    def forward(self, xl: torch.Tensor, xg: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        ol, og = self.ffc(xl, xg)
        ol = F.relu(self.bn_l(ol))
        if og is not None:
            og = F.relu(self.bn_g(og))
        return ol, og


class ResS(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        self.conv1 = FFCBNS(dim, dim, 3, ratio, ratio, padding=1)
        self.conv2 = FFCBNS(dim, dim, 3, ratio, ratio, padding=1)

    def forward(self, xl: torch.Tensor, xg: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        yl, yg = self.conv1(xl, xg)
        yl, yg = self.conv2(yl, yg)
        assert xg is not None and yg is not None
        return xl + yl, xg + yg


class ScriptGenerator(nn.Module):
    """lama_ref.FFCResNetGenerator's tree (model.<i>) with scriptable parts."""

    def __init__(self, ngf, blocks, ratio=0.75):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), FFCBNS(4, ngf, 7, 0, 0)]
        ch = ngf
        for i in range(3):
            layers.append(FFCBNS(ch, ch * 2, 3, 0, ratio if i == 2 else 0, stride=2, padding=1))
            ch *= 2
        layers += [ResS(ch, ratio) for _ in range(blocks)]
        layers.append(nn.Identity())  # Concat in the reference: no tensors
        for _ in range(3):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1), nn.BatchNorm2d(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Sigmoid()]
        self.model = nn.ModuleList(layers)


def script_generator(ref):
    """A ScriptGenerator holding ref's weights, its forward written out for
    ref's block count (TorchScript indexes a ModuleList of mixed modules
    only with literals)."""
    B = ref.blocks
    lines = ["def forward(self, x: torch.Tensor) -> torch.Tensor:",
             "    x = self.model[0](x)",
             "    l, g = self.model[1](x, None)"]
    lines += ["    l, g = self.model[%d](l, g)" % i for i in range(2, 5 + B)]
    lines += ["    assert g is not None", "    x = torch.cat([l, g], dim=1)"]
    lines += ["    x = self.model[%d](x)" % i for i in list(range(6 + B, 15 + B)) + list(range(15 + B, 18 + B))]
    lines.append("    return x")
    src = "\n".join(lines) + "\n"
    fname = "<lama_script forward %d>" % B
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)  # TorchScript reads the source
    ns = {"torch": torch}
    exec(compile(src, fname, "exec"), ns)
    cls = type("FFCResNetGenerator", (ScriptGenerator,), {"forward": ns["forward"]})
    m = cls(ref.ngf, B)
    m.load_state_dict(ref.state_dict(), strict=True)
    return m.eval()


def save_traced(ref, path, size=64):
    """torch.jit.trace of InpaintWrapper(ref), as big-lama.pt is made."""
    g = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, size, size, generator=g)
    mask = (torch.rand(1, 1, size, size, generator=g) > 0.5).float()
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(InpaintWrapper(ref).eval(), (image, mask)), path)


def save_scripted(ref, path):
    """torch.jit.script of InpaintWrapper(ScriptGenerator with ref's weights)."""
    torch.jit.save(torch.jit.script(InpaintWrapper(script_generator(ref)).eval()), path)


assert lama_ref  # the reference whose tree ScriptGenerator repeats
