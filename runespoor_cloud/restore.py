"""Restore the source resolution of a received low-resolution frame: bilinear, SR, ASR or CloudSeg.

One model per (method, scale), loaded once at construction from
``<weights_dir>/<dataset>/<method>_x<scale>.pt`` (the project's own weights, see models/README.md), strictly;
a missing or mismatched file raises :class:`ModelFileError` naming it. ``bilinear`` needs no file.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from runespoor_common import paths
from .models import ModelFileError, load_checkpoint

METHODS = ('bilinear', 'sr', 'asr', 'cloudseg')


def weight_path(weights_dir: str | os.PathLike, dataset: str, method: str, scale: int) -> Path:
    return Path(weights_dir) / dataset / f'{method}_x{int(scale)}.pt'


def to_tensor(rgb: np.ndarray, device: str | torch.device = 'cpu') -> torch.Tensor:
    """RGB uint8 HxWx3 -> float 1x3xHxW in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float 1x3xHxW (about [0, 1]) -> RGB uint8 HxWx3, clamped and rounded."""
    return x[0].detach().clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def bilinear_tensor(x: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (half-pixel centres, as cv2.INTER_LINEAR) of a Bx3xhxw tensor to size_hw."""
    return F.interpolate(x, size=size_hw, mode='bilinear', align_corners=False)


class Restorer:
    """Per-scale restoration, e.g. ``Restorer({2: 'asr', 4: 'asr', 8: 'bilinear'})``."""

    def __init__(self, methods: dict[int, str], weights_dir: str | os.PathLike | None = None,
                 dataset: str = 'camvid', device: str | torch.device = 'cpu', threads: int | None = None):
        if threads:
            torch.set_num_threads(int(threads))
        self.weights_dir = Path(weights_dir) if weights_dir else paths.weights_dir()
        self.dataset = dataset
        self.device = torch.device(device)
        self.methods: dict[int, str] = {}
        self.models: dict[int, torch.nn.Module] = {}
        self.files: dict[int, Path] = {}
        for scale, method in methods.items():
            scale = int(scale)
            if method not in METHODS:
                raise ValueError(f'unknown restoration method {method!r} for x{scale}; one of {METHODS}')
            self.methods[scale] = method
            if method == 'bilinear' or scale == 1:
                continue
            path = weight_path(self.weights_dir, dataset, method, scale)
            model, ckpt = load_checkpoint(path, self.device)
            got = int(ckpt['model_args'].get('scale', getattr(model, 'scale', scale)))
            if got != scale:
                raise ModelFileError(f'{path}: model upsamples x{got}, expected x{scale}')
            for p in model.parameters():
                p.requires_grad_(False)
            self.models[scale] = model.eval()
            self.files[scale] = path

    def method(self, scale: int) -> str:
        if int(scale) == 1:
            return 'bilinear'
        try:
            return self.methods[int(scale)]
        except KeyError:
            raise KeyError(f'no restoration method configured for x{scale} '
                           f'(configured: {sorted(self.methods)})') from None

    def restore_tensor(self, lr: torch.Tensor, scale: int, size_hw: tuple[int, int]) -> torch.Tensor:
        """Bx3xhxw in [0,1] -> Bx3xHxW at ``size_hw`` (not clamped). Differentiable for model methods."""
        scale = int(scale)
        method = self.method(scale)
        lr = lr.to(self.device)
        if scale == 1 or method == 'bilinear':
            if tuple(lr.shape[-2:]) == tuple(size_hw):
                return lr
            return bilinear_tensor(lr, size_hw)
        out = self.models[scale](lr)
        if tuple(out.shape[-2:]) != tuple(size_hw):
            out = bilinear_tensor(out, size_hw)
        return out

    @torch.no_grad()
    def restore(self, lr_rgb: np.ndarray, scale: int, source_size: tuple[int, int] | None = None) -> np.ndarray:
        """RGB uint8 LR frame -> RGB uint8 at source_size (w, h); default size = LR size x scale."""
        if not isinstance(lr_rgb, np.ndarray) or lr_rgb.dtype != np.uint8 or lr_rgb.ndim != 3 \
                or lr_rgb.shape[2] != 3:
            raise ValueError(f'restore expects an RGB uint8 HxWx3 frame, got '
                             f'{getattr(lr_rgb, "dtype", type(lr_rgb))} {getattr(lr_rgb, "shape", "")}')
        scale = int(scale)
        h, w = lr_rgb.shape[:2]
        W, H = (int(source_size[0]), int(source_size[1])) if source_size else (w * scale, h * scale)
        method = self.method(scale)
        if scale == 1 or method == 'bilinear':
            if (w, h) == (W, H):
                return lr_rgb
            return cv2.resize(lr_rgb, (W, H), interpolation=cv2.INTER_LINEAR)
        return to_uint8(self.restore_tensor(to_tensor(lr_rgb, self.device), scale, (H, W)))
