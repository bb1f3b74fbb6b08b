"""Restore the source resolution of a received low-resolution frame: bilinear, SR, ASR or CloudSeg.

One model per (method, scale), loaded once at construction from
``<weights_dir>/<dataset>/<method>_x<scale>.pt`` (the project's own weights, see models/README.md), strictly;
a missing or mismatched file raises :class:`ModelFileError` naming it. ``bilinear`` needs no file. A model
passed in ``models=`` (a model being trained, or a stand-in of the right architecture) is used instead of
its file.

Speed is an option of the same object (runespoor_cloud/inference.py): ``options=PLAIN`` (the default) runs
the reference code below, eager fp32; any other options run each model through a ModelRunner (folded,
channels-last, frozen graph, reduced precision), with the reference path as the fallback.
"""
from __future__ import annotations

import copy
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from runespoor_common import paths
from runespoor_cloud.inference import (PLAIN, InferenceOptions, ModelRunner, check_rgb, configure_threads, fold_bn_generic,
                        grad_context)
from runespoor_cloud.models import ModelFileError, load_checkpoint, read_checkpoint

METHODS = ('bilinear', 'sr', 'asr', 'cloudseg')


def weight_path(weights_dir: str | os.PathLike, dataset: str, method: str, scale: int) -> Path:
    return Path(weights_dir) / dataset / f'{method}_x{int(scale)}.pt'


def check_record(path: Path, ckpt: dict, dataset: str, method: str, scale: int, model_scale: int | None = None
                 ) -> None:
    """What a checkpoint records must fit the use: its upsampling scale, and (where the file records them)
    the data set and method it was trained for. Raises ModelFileError naming the file."""
    got = int(ckpt['model_args'].get('scale', model_scale if model_scale is not None else scale))
    if got != scale:
        raise ModelFileError(f'{path}: model upsamples x{got}, expected x{scale}')
    for key, want in (('dataset', dataset), ('method', method)):
        if ckpt.get(key) not in (None, want):
            raise ModelFileError(f'{path}: trained as {key} {ckpt[key]!r}, expected {want!r}')


def check_weights(methods: dict[int, str], weights_dir: str | os.PathLike | None, dataset: str) -> list[str]:
    """Start-up check without building a model (runespoor launch / demo run it before any node starts):
    every weight file the methods need exists, reads, and records the right scale, data set and method."""
    root = Path(weights_dir) if weights_dir else paths.weights_dir()
    errors = []
    for scale, method in sorted(methods.items()):
        if method not in METHODS:
            errors.append(f'unknown restoration method {method!r} for x{scale}; one of {METHODS}')
            continue
        if method == 'bilinear' or int(scale) == 1:
            continue
        path = weight_path(root, dataset, method, int(scale))
        try:
            check_record(path, read_checkpoint(path), dataset, method, int(scale))
        except ModelFileError as exc:
            errors.append(str(exc))
    return errors


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
    """Per-scale restoration, e.g. ``Restorer({2: 'asr', 4: 'asr', 8: 'bilinear'})``.

    ``options``: :class:`~runespoor_cloud.inference.InferenceOptions` (default PLAIN, the reference path;
    ``OPTIMIZED`` is what the restorer node runs). ``models``: {scale: module} used instead of the weight
    files for those scales (as given: the caller owns their mode and gradients)."""

    def __init__(self, methods: dict[int, str], weights_dir: str | os.PathLike | None = None,
                 dataset: str = 'camvid', device: str | torch.device = 'cpu', threads: int | None = None,
                 options: InferenceOptions = PLAIN, models: dict[int, torch.nn.Module] | None = None):
        if threads:
            configure_threads(threads)
        self.weights_dir = Path(weights_dir) if weights_dir else paths.weights_dir()
        self.dataset = dataset
        self.device = torch.device(device)
        self.methods: dict[int, str] = {}
        self.models: dict[int, torch.nn.Module] = {}
        self.files: dict[int, Path] = {}
        given = {int(s): m for s, m in (models or {}).items()}
        for scale, method in methods.items():
            scale = int(scale)
            if method not in METHODS:
                raise ValueError(f'unknown restoration method {method!r} for x{scale}; one of {METHODS}')
            self.methods[scale] = method
            if method == 'bilinear' or scale == 1:
                continue
            if scale in given:
                self.models[scale] = given[scale].to(self.device)
                continue
            path = weight_path(self.weights_dir, dataset, method, scale)
            model, ckpt = load_checkpoint(path, self.device)
            check_record(path, ckpt, dataset, method, scale, getattr(model, 'scale', scale))
            for p in model.parameters():
                p.requires_grad_(False)
            self.models[scale] = model.eval()
            self.files[scale] = path
        self._prepare(options)

    def _prepare(self, options: InferenceOptions) -> None:
        """Settle `options` for the device; with any optimisation, one runner per model (a prepared copy:
        self.models stay the reference, usable for training)."""
        self.options = options.resolved(self.device)
        self.fast = not self.options.plain
        self.runners = {s: ModelRunner(m, self.options, self.device, self.options.sr_precision, fold_bn_generic)
                        for s, m in self.models.items()} if self.fast else {}
        self._in_bufs: dict[int, torch.Tensor] = {}
        self._lock = threading.RLock()  # the reused buffers: one frame at a time (multi-threaded executors)

    def with_options(self, options: InferenceOptions) -> 'Restorer':
        """The same methods and models run with other options (no file is read again)."""
        other = copy.copy(self)
        other._prepare(options)
        return other
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

    def warmup(self, size: tuple[int, int], repeats: int = 2) -> None:
        """Run every scale's model on a black frame of source `size` (w, h), so that graph tracing happens
        now rather than on the first real frame."""
        for scale in sorted(self.methods):
            lr = np.zeros((size[1] // scale, size[0] // scale, 3), np.uint8)
            for _ in range(repeats):
                self.restore(lr, scale, source_size=size)

    def _lr_tensor(self, lr_rgb: np.ndarray, scale: int) -> torch.Tensor:
        """Optimised path: RGB uint8 hxwx3 -> the SR model's input 1x3xhxw in [0,1] (run dtype and layout)
        in a reused buffer: from_numpy + permute are views; one pass converts and scales."""
        runner = self.runners[scale]
        src = torch.from_numpy(np.ascontiguousarray(lr_rgb)).permute(2, 0, 1).unsqueeze(0)
        buf = self._in_bufs.get(scale)
        if buf is None or buf.shape != src.shape:
            buf = self._in_bufs[scale] = torch.empty(src.shape, dtype=runner.dtype, device=self.device,
                                                     memory_format=runner.memory_format)
        if self.device.type == 'cuda':
            buf.copy_(src.pin_memory() if torch.cuda.is_available() else src, non_blocking=True)
            return buf.mul_(1.0 / 255.0)
        # one fused pass on CPU: uint8 * (1/255) -> run dtype, written into the buffer
        torch.mul(src, 1.0 / 255.0, out=buf)
        return buf

    def restore255(self, lr_rgb: np.ndarray, scale: int, size_hw: tuple[int, int]) -> torch.Tensor:
        """RGB uint8 LR -> restored RGB 1x3xHxW with integer values 0..255 on the device (float32 from a
        model, what restore()'s uint8 round trip gives; uint8 from bilinear), ready for
        Segmenter.labels255 without a round trip through NumPy."""
        scale = int(scale)
        H, W = size_hw
        if scale == 1 or self.method(scale) == 'bilinear' or not self.fast:
            rgb = self.restore(lr_rgb, scale, (W, H))
            return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).to(self.device)
        with self._lock, grad_context(self.options):
            out = self.runners[scale](self._lr_tensor(lr_rgb, scale))
            if tuple(out.shape[-2:]) != (H, W):
                out = F.interpolate(out.float(), size=(H, W), mode='bilinear', align_corners=False)
            # quantize like to_uint8 (clamp, *255, round), in fp32 so bf16/fp16 rounding of *255 is avoided
            return out.float().clamp_(0, 1).mul_(255.0).round_()

    def restore(self, lr_rgb: np.ndarray, scale: int, source_size: tuple[int, int] | None = None) -> np.ndarray:
        """RGB uint8 LR frame -> RGB uint8 at source_size (w, h); default size = LR size x scale."""
        check_rgb(lr_rgb, 'restore')
        scale = int(scale)
        h, w = lr_rgb.shape[:2]
        W, H = (int(source_size[0]), int(source_size[1])) if source_size else (w * scale, h * scale)
        method = self.method(scale)
        if scale == 1 or method == 'bilinear':
            if (w, h) == (W, H):
                return lr_rgb
            return cv2.resize(lr_rgb, (W, H), interpolation=cv2.INTER_LINEAR)
        if self.fast:
            return self.restore255(lr_rgb, scale, (H, W))[0].to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        with torch.no_grad():
            return to_uint8(self.restore_tensor(to_tensor(lr_rgb, self.device), scale, (H, W)))
