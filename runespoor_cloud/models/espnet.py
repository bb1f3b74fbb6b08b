"""ESPNet (Mehta et al., ECCV 2018) semantic segmentation, p/q depth multipliers, with its light decoder.

Re-written after the authors' MIT-licensed reference (sacmehta/ESPNet, ``test/Model.py``) so that the
published state_dicts load with ``strict=True``: module names and shapes are theirs. One difference between
the two published decoders is a constructor argument: the Cityscapes model's last decoder conv reads the
16-channel ``output0`` (16 + C inputs), the CamVid model's reads the 19-channel ``output0_cat`` (19 + C).
:func:`espnet_args_from_state_dict` reads classes/p/q/skip from a file's tensor shapes.
"""
from __future__ import annotations

import torch
from torch import nn

from runespoor_cloud.models.registry import register


class CBR(nn.Module):
    """Conv + BN + PReLU."""

    def __init__(self, n_in, n_out, k, stride=1):
        super().__init__()
        pad = (k - 1) // 2
        self.conv = nn.Conv2d(n_in, n_out, (k, k), stride=stride, padding=(pad, pad), bias=False)
        self.bn = nn.BatchNorm2d(n_out, eps=1e-3)
        self.act = nn.PReLU(n_out)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class BR(nn.Module):
    """BN + PReLU."""

    def __init__(self, n_out):
        super().__init__()
        self.bn = nn.BatchNorm2d(n_out, eps=1e-3)
        self.act = nn.PReLU(n_out)

    def forward(self, x):
        return self.act(self.bn(x))


class C(nn.Module):
    """Plain conv, no bias (dilation d)."""

    def __init__(self, n_in, n_out, k, stride=1, d=1):
        super().__init__()
        pad = (k - 1) // 2 * d
        self.conv = nn.Conv2d(n_in, n_out, (k, k), stride=stride, padding=(pad, pad), bias=False, dilation=d)

    def forward(self, x):
        return self.conv(x)


class _ESP(nn.Module):
    """Reduce -> split into 5 dilated branches -> hierarchical feature fusion -> merge."""

    def __init__(self, n_in, n_out, reduce_k, stride):
        super().__init__()
        n = n_out // 5
        n1 = n_out - 4 * n
        self.c1 = C(n_in, n, reduce_k, stride)
        self.d1 = C(n, n1, 3, 1, 1)
        self.d2 = C(n, n, 3, 1, 2)
        self.d4 = C(n, n, 3, 1, 4)
        self.d8 = C(n, n, 3, 1, 8)
        self.d16 = C(n, n, 3, 1, 16)

    def _merge(self, x):
        o = self.c1(x)
        add1 = self.d2(o)
        add2 = add1 + self.d4(o)
        add3 = add2 + self.d8(o)
        add4 = add3 + self.d16(o)
        return torch.cat([self.d1(o), add1, add2, add3, add4], 1)


class DownSamplerB(_ESP):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out, 3, 2)
        self.bn = nn.BatchNorm2d(n_out, eps=1e-3)
        self.act = nn.PReLU(n_out)

    def forward(self, x):
        return self.act(self.bn(self._merge(x)))


class DilatedParllelResidualBlockB(_ESP):
    def __init__(self, n_in, n_out, add=True):
        super().__init__(n_in, n_out, 1, 1)
        self.bn = BR(n_out)
        self.add = add

    def forward(self, x):
        y = self._merge(x)
        if self.add:
            y = x + y
        return self.bn(y)


class InputProjectionA(nn.Module):
    """The image average-pooled `times` times by 2 (no parameters)."""

    def __init__(self, times):
        super().__init__()
        self.pool = nn.ModuleList([nn.AvgPool2d(3, stride=2, padding=1) for _ in range(times)])

    def forward(self, x):
        for pool in self.pool:
            x = pool(x)
        return x


class ESPNetEncoder(nn.Module):
    """ESPNet-C."""

    def __init__(self, classes=20, p=2, q=8):
        super().__init__()
        self.level1 = CBR(3, 16, 3, 2)
        self.sample1 = InputProjectionA(1)
        self.sample2 = InputProjectionA(2)
        self.b1 = BR(16 + 3)
        self.level2_0 = DownSamplerB(16 + 3, 64)
        self.level2 = nn.ModuleList([DilatedParllelResidualBlockB(64, 64) for _ in range(p)])
        self.b2 = BR(128 + 3)
        self.level3_0 = DownSamplerB(128 + 3, 128)
        self.level3 = nn.ModuleList([DilatedParllelResidualBlockB(128, 128) for _ in range(q)])
        self.b3 = BR(256)
        self.classifier = C(256, classes, 1, 1)


@register('espnet')
class ESPNet(nn.Module):
    """ESPNet with the RUM decoder. ``skip`` = 'output0' (Cityscapes release) or 'output0_cat' (CamVid)."""

    def __init__(self, classes: int = 20, p: int = 2, q: int = 8, skip: str = 'output0'):
        super().__init__()
        if skip not in ('output0', 'output0_cat'):
            raise ValueError(f"skip must be 'output0' or 'output0_cat', not {skip!r}")
        self.skip = skip
        self.encoder = ESPNetEncoder(classes, p, q)
        self.level3_C = C(128 + 3, classes, 1, 1)
        self.br = nn.BatchNorm2d(classes, eps=1e-3)
        self.conv = CBR((16 if skip == 'output0' else 19) + classes, classes, 3, 1)
        self.up_l3 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False))
        self.combine_l2_l3 = nn.Sequential(BR(2 * classes),
                                           DilatedParllelResidualBlockB(2 * classes, classes, add=False))
        self.up_l2 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False), BR(classes))
        self.classifier = nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalised BGR Bx3xHxW (H, W multiples of 8) -> logits BxCxHxW."""
        e = self.encoder
        output0 = e.level1(x)
        inp1 = e.sample1(x)
        inp2 = e.sample2(x)
        output0_cat = e.b1(torch.cat([output0, inp1], 1))
        output1_0 = e.level2_0(output0_cat)
        output1 = output1_0
        for layer in e.level2:
            output1 = layer(output1)
        output1_cat = e.b2(torch.cat([output1, output1_0, inp2], 1))
        output2_0 = e.level3_0(output1_cat)
        output2 = output2_0
        for layer in e.level3:
            output2 = layer(output2)
        output2_cat = e.b3(torch.cat([output2_0, output2], 1))
        output2_c = self.up_l3(self.br(e.classifier(output2_cat)))
        output1_c = self.level3_C(output1_cat)
        comb = self.up_l2(self.combine_l2_l3(torch.cat([output1_c, output2_c], 1)))
        skip = output0 if self.skip == 'output0' else output0_cat
        return self.classifier(self.conv(torch.cat([comb, skip], 1)))


def espnet_args_from_state_dict(sd: dict) -> dict:
    """classes, p, q and skip of a published ESPNet state_dict, read from its keys and tensor shapes."""
    classes = int(sd['classifier.weight'].shape[0])
    p = len({k.split('.')[2] for k in sd if k.startswith('encoder.level2.')})
    q = len({k.split('.')[2] for k in sd if k.startswith('encoder.level3.')})
    skip_ch = int(sd['conv.conv.weight'].shape[1]) - classes
    skip = {16: 'output0', 19: 'output0_cat'}.get(skip_ch)
    if skip is None:
        raise ValueError(f'decoder conv takes {skip_ch} + {classes} channels; expected 16 or 19 + classes')
    return {'classes': classes, 'p': p, 'q': q, 'skip': skip}
