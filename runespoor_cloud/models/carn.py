"""CARN and CARN-M (Ahn et al., "Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual
Network", ECCV 2018), single-scale, for x2, x3, x4, x6 (x3 then x2) and x8 (three x2 stages).

Written after the authors' MIT-licensed reference (nmhkahn/CARN: carn.py, carn_m.py, ops.py) with the same
module names, so their multi-scale ``carn_m.pth`` (up2/up3/up4 heads) initialises the body of every scale
here and the upsampler stages whose shapes match (:func:`init_from_carn_m`). Input and output: RGB in [0, 1].
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from runespoor_cloud.models.registry import ModelFileError, register

_DIV2K_MEAN = (0.4488, 0.4371, 0.4040)

#: upsampling stages per scale (each stage: conv to f*f*C, ReLU, PixelShuffle(f))
STAGES = {1: (), 2: (2,), 3: (3,), 4: (2, 2), 6: (3, 2), 8: (2, 2, 2)}


class MeanShift(nn.Module):
    """Fixed 1x1 conv adding/subtracting the DIV2K mean (kept as a conv for key compatibility)."""

    def __init__(self, mean_rgb, sub):
        super().__init__()
        sign = -1.0 if sub else 1.0
        self.shifter = nn.Conv2d(3, 3, 1, 1, 0)
        self.shifter.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.shifter.bias.data = torch.tensor([m * sign for m in mean_rgb])
        for p in self.shifter.parameters():
            p.requires_grad = False

    def forward(self, x):
        return self.shifter(x)


class BasicBlock(nn.Module):
    def __init__(self, n_in, n_out, k=1, stride=1, pad=0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_in, n_out, k, stride, pad), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.body(x)


class ResidualBlock(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_in, n_out, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(n_out, n_out, 3, 1, 1))

    def forward(self, x):
        return F.relu(self.body(x) + x)


class EResidualBlock(nn.Module):
    """CARN-M's efficient residual block: two group convs and a 1x1 pointwise conv."""

    def __init__(self, n_in, n_out, group=1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_in, n_out, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(n_out, n_out, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(n_out, n_out, 1, 1, 0))

    def forward(self, x):
        return F.relu(self.body(x) + x)


class Upsampler(nn.Module):
    def __init__(self, channels, scale, group=1):
        super().__init__()
        if scale not in STAGES:
            raise ValueError(f'unsupported scale {scale}; one of {sorted(STAGES)}')
        mods: list[nn.Module] = []
        for f in STAGES[scale]:
            mods += [nn.Conv2d(channels, f * f * channels, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
                     nn.PixelShuffle(f)]
        self.body = nn.Sequential(*mods)

    def forward(self, x):
        return self.body(x)


class CascadingBlock(nn.Module):
    """Local cascade: three residual units, each output concatenated and fused by a 1x1 conv.
    CARN-M shares one efficient residual block across the three units (``shared=True``)."""

    def __init__(self, channels, group=1, mobile=False):
        super().__init__()
        self.mobile = mobile
        if mobile:
            self.b1 = EResidualBlock(channels, channels, group=group)
        else:
            self.b1 = ResidualBlock(channels, channels)
            self.b2 = ResidualBlock(channels, channels)
            self.b3 = ResidualBlock(channels, channels)
        self.c1 = BasicBlock(channels * 2, channels)
        self.c2 = BasicBlock(channels * 3, channels)
        self.c3 = BasicBlock(channels * 4, channels)

    def forward(self, x):
        units = (self.b1, self.b1, self.b1) if self.mobile else (self.b1, self.b2, self.b3)
        c = x
        o = x
        for unit, fuse in zip(units, (self.c1, self.c2, self.c3)):
            c = torch.cat([c, unit(o)], 1)
            o = fuse(c)
        return o


class CARN(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 64, group: int = 1, mobile: bool = False):
        super().__init__()
        self.scale = int(scale)
        self.sub_mean = MeanShift(_DIV2K_MEAN, sub=True)
        self.add_mean = MeanShift(_DIV2K_MEAN, sub=False)
        self.entry = nn.Conv2d(3, channels, 3, 1, 1)
        self.b1 = CascadingBlock(channels, group, mobile)
        self.b2 = CascadingBlock(channels, group, mobile)
        self.b3 = CascadingBlock(channels, group, mobile)
        self.c1 = BasicBlock(channels * 2, channels)
        self.c2 = BasicBlock(channels * 3, channels)
        self.c3 = BasicBlock(channels * 4, channels)
        self.upsample = Upsampler(channels, self.scale, group=group if mobile else 1)
        self.exit = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] BxCxhxw -> RGB (about [0,1], not clamped) Bx3x(h*scale)x(w*scale)."""
        x = self.entry(self.sub_mean(x))
        c = x
        o = x
        for block, fuse in zip((self.b1, self.b2, self.b3), (self.c1, self.c2, self.c3)):
            c = torch.cat([c, block(o)], 1)
            o = fuse(c)
        return self.add_mean(self.exit(self.upsample(o)))


@register('carn')
def carn(scale: int = 4, channels: int = 64) -> CARN:
    return CARN(scale=scale, channels=channels, group=1, mobile=False)


@register('carn_m')
def carn_m(scale: int = 4, channels: int = 64, group: int = 4) -> CARN:
    return CARN(scale=scale, channels=channels, group=group, mobile=True)


# where each upsampler stage of a single-scale model is initialised from in the multi-scale carn_m.pth
_CARN_M_UPSAMPLE_SOURCES = {
    2: ['upsample.up2.body.0'],
    3: ['upsample.up3.body.0'],
    4: ['upsample.up4.body.0', 'upsample.up4.body.3'],
    6: ['upsample.up3.body.0', 'upsample.up2.body.0'],
    8: ['upsample.up4.body.0', 'upsample.up4.body.3', 'upsample.up2.body.0'],
}


def init_from_carn_m(model: CARN, path: str | os.PathLike) -> dict:
    """Copy every tensor of the published multi-scale CARN-M whose name and shape fit ``model``; the
    upsampler stages come from the matching heads (x6 = up3 then up2, x8 = up4's two stages then up2).
    Returns {'loaded': [...], 'skipped': [...]} (skipped = model tensors left at their initialisation)."""
    try:
        src = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f'{path}: CARN-M initialisation file is missing') from None
    except Exception as exc:
        raise ModelFileError(f'{path}: unreadable CARN-M file ({type(exc).__name__}: {exc})') from exc
    own = model.state_dict()
    mapping = {k: k for k in src if not k.startswith('upsample.')}
    for i, s in enumerate(_CARN_M_UPSAMPLE_SOURCES.get(model.scale, [])):
        for suffix in ('weight', 'bias'):
            mapping[f'upsample.body.{3 * i}.{suffix}'] = f'{s}.{suffix}'
    new, loaded = {}, []
    for dst, s in mapping.items():
        if dst in own and s in src and tuple(own[dst].shape) == tuple(src[s].shape):
            new[dst] = src[s]
            loaded.append(dst)
    if not loaded:
        raise ModelFileError(f'{path}: no tensor fits {type(model).__name__} (is it a CARN-M state_dict?)')
    model.load_state_dict(new, strict=False)
    return {'loaded': loaded, 'skipped': [k for k in own if k not in new]}
