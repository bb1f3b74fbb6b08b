"""Frozen semantic segmentation for the cloud: a registered architecture + its weight file + preprocessing.

``Segmenter.predict`` takes an RGB uint8 frame and returns class ids; ``forward_rgb01`` is the differentiable
path used by ASR/CloudSeg training (RGB in [0, 1] -> logits), with the model's own preprocessing done on
tensors: BGR, ``(img*255 - mean) / std / 255`` (ESPNet's recipe, the data sets' mean/std in
runespoor_common/datasets.py).

Speed is an option of the same object (runespoor_cloud/inference.py): ``options=PLAIN`` (the default) runs
the reference code below; any other options run a prepared copy of the model through a ModelRunner, with
the normalisation as one 1x1 convolution and a reused input buffer. ``forward_rgb01`` (training) always
uses the reference model.
"""
from __future__ import annotations

import copy
import os
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runespoor_common import paths
from runespoor_common.datasets import DatasetInfo, get_info
from runespoor_cloud.inference import (PLAIN, InferenceOptions, ModelRunner, check_rgb, configure_threads, fold_for,
                        grad_context)
from runespoor_cloud.models import ModelFileError, build, load_state_strict, short_load_error
from runespoor_cloud.models.espnet import espnet_args_from_state_dict


def default_weights(arch: str = 'espnet', dataset: str = 'camvid', model_dir: str | os.PathLike | None = None
                    ) -> Path:
    if arch != 'espnet':
        raise ValueError(f'no default weight file for segmentation architecture {arch!r}; pass weights=')
    return paths.model_dir(model_dir) / 'espnet' / f'espnet_p_2_q_8_{dataset}.pth'


def read_state_dict(weights: str | os.PathLike) -> dict:
    """The state_dict in a segmentation weight file (tensors only, no model built). Raises ModelFileError
    naming the file."""
    weights = Path(weights)
    if not weights.is_file():
        raise ModelFileError(f'{weights}: segmentation weight file is missing')
    try:
        sd = torch.load(weights, map_location='cpu', weights_only=True)
    except Exception as exc:
        raise ModelFileError(f'{weights}: truncated or unreadable weight file ({short_load_error(exc)})') from None
    if isinstance(sd, dict) and 'state_dict' in sd and isinstance(sd['state_dict'], dict):
        sd = sd['state_dict']
    if not isinstance(sd, dict):
        raise ModelFileError(f'{weights}: expected a state_dict, found {type(sd).__name__}')
    return {k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}  # DataParallel prefix


def model_args(arch: str, sd: dict, weights) -> dict:
    """The architecture arguments the tensors in `sd` say (ESPNet: classes, p, q, skip)."""
    if arch != 'espnet':
        return {}
    try:
        return espnet_args_from_state_dict(sd)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise ModelFileError(f'{weights}: not an ESPNet state_dict ({exc})') from None


def check_outputs(n_out: int | None, dataset: str, weights) -> None:
    """Refuse a model whose output count is not the data set's (its classes, or its classes + void): a
    Cityscapes model (20 outputs) read as CamVid (11 + void) would label every frame with wrong ids."""
    info = get_info(dataset)
    if n_out is None or n_out in (info.num_classes, info.num_classes + 1):
        return
    fits = [name for name in ('camvid', 'cityscapes')
            if name != info.name and n_out in (get_info(name).num_classes, get_info(name).num_classes + 1)]
    hint = f'; {n_out} outputs fit {fits[0]}: weights of another data set?' if fits else ''
    raise ModelFileError(f'{weights}: model has {n_out} outputs, {dataset} needs {info.num_classes} '
                         f'(+1 void = {info.num_classes + 1}){hint}')


def check_weights(arch: str, weights: str | os.PathLike, dataset: str) -> int | None:
    """Validate a segmentation weight file for `dataset` without building the model (what commands run
    before they load models): readable, the architecture's tensors, the data set's output count. Returns
    the output count."""
    sd = read_state_dict(weights)
    n_out = model_args(arch, sd, weights).get('classes')
    check_outputs(n_out, dataset, weights)
    return n_out


def load_segmentation_model(arch: str, weights: str | os.PathLike) -> torch.nn.Module:
    """Build `arch` to fit the published state_dict in `weights` and load it strictly."""
    weights = Path(weights)
    sd = read_state_dict(weights)
    model = build(arch, **model_args(arch, sd, weights))
    load_state_strict(model, sd, weights)
    return model


class Segmenter:
    """Frozen segmentation model (eval mode, requires_grad False) with its preprocessing.

    ``options``: :class:`~runespoor_cloud.inference.InferenceOptions` (default PLAIN, the reference path;
    ``OPTIMIZED`` is what the segmentation node runs)."""

    def __init__(self, arch: str = 'espnet', weights: str | os.PathLike | None = None, dataset: str = 'camvid',
                 device: str | torch.device = 'cpu', threads: int | None = None,
                 model_dir: str | os.PathLike | None = None, options: InferenceOptions = PLAIN):
        if threads:
            configure_threads(threads)
        self.arch = arch
        self.info: DatasetInfo = get_info(dataset)
        self.weights = Path(weights) if weights else default_weights(arch, dataset, model_dir)
        self.device = torch.device(device)
        model = load_segmentation_model(arch, self.weights)
        n_out = int(model.classifier.weight.shape[1]) if hasattr(model, 'classifier') else None
        check_outputs(n_out, dataset, self.weights)
        self.num_outputs = n_out
        model.eval().to(self.device)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        # BGR order, 0-255 scale
        self._mean = torch.tensor(self.info.mean_bgr, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.info.std_bgr, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._prepare(options)

    def _prepare(self, options: InferenceOptions) -> None:
        """Settle `options` for the device; with any optimisation, a prepared copy of the model (self.model
        stays the reference, for training)."""
        self.options = options.resolved(self.device)
        self.fast = not self.options.plain
        self.runner = None
        if self.fast:
            self.runner = ModelRunner(self.model, self.options, self.device, self.options.seg_precision,
                                      fold_for(self.arch), graph=self.options.seg_graph)
            # RGB 0..255 -> BGR, (v - mean) / std / 255 as one 1x1 convolution: a per-pixel channel
            # permutation + affine map (exact; no padding involved)
            mean = torch.tensor(self.info.mean_bgr, dtype=torch.float32)
            std = torch.tensor(self.info.std_bgr, dtype=torch.float32)
            w = torch.zeros(3, 3, 1, 1)
            for c in range(3):  # output channel c (BGR) reads input channel 2 - c (RGB)
                w[c, 2 - c, 0, 0] = 1.0 / (std[c] * 255.0)
            self._norm_w = w.to(self.device, self.runner.dtype)
            self._norm_b = (-mean / (std * 255.0)).to(self.device, self.runner.dtype)
        self._frame_buf: torch.Tensor | None = None
        self._lock = threading.RLock()  # the reused buffer: one frame at a time (multi-threaded executors)

    def with_options(self, options: InferenceOptions) -> 'Segmenter':
        """The same model run with other options (the weight file is not read again)."""
        other = copy.copy(self)
        other._prepare(options)
        return other

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] Bx3xHxW -> the model's input (BGR, (img - mean) / std / 255)."""
        bgr = x.flip(1) * 255.0
        return (bgr - self._mean) / self._std / 255.0

    def forward_rgb01(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable: RGB [0,1] Bx3xHxW -> logits Bx(num_classes)xHxW (extra outputs such as void dropped).

        Sizes that are not multiples of 8 are padded (replicate) for the network and cropped back."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'expected Bx3xHxW, got {tuple(x.shape)}')
        h, w = x.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        inp = self.preprocess(x.to(self.device, torch.float32))
        if ph or pw:
            inp = F.pad(inp, (0, pw, 0, ph), mode='replicate')
        logits = self.model(inp)[:, :, :h, :w]
        return logits[:, :self.num_classes]

    # ---- the optimised path (self.fast): input RGB 0..255, the model run by self.runner
    def normalize255(self, x255: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 Bx3xHxW (any dtype) -> the model's normalized BGR input (run dtype/layout)."""
        x = self.runner.prepare(x255)
        return F.conv2d(x, self._norm_w, self._norm_b)

    def logits255(self, x255: torch.Tensor) -> torch.Tensor:
        h, w = x255.shape[-2:]
        inp = self.normalize255(x255)
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            inp = F.pad(inp, (0, pw, 0, ph), mode='replicate')
        out = self.runner(inp)
        return out[:, :self.num_classes, :h, :w]

    def labels255(self, x255: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 Bx3xHxW -> uint8 labels BxHxW (on the model's device); either path."""
        if not self.fast:
            return self.predict_tensor(x255.float() / 255.0).to(torch.uint8)
        with grad_context(self.options):
            return self.logits255(x255).argmax(1).to(torch.uint8)

    def _frame_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        """RGB uint8 HxWx3 -> 1x3xHxW float 0..255 in a buffer reused while the size stays the same.
        The HxWx3 array viewed as 1x3xHxW is already channels-last: one conversion pass, no transpose."""
        src = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
        buf = self._frame_buf
        if buf is None or buf.shape != src.shape:
            buf = self._frame_buf = torch.empty(src.shape, dtype=self.runner.dtype, device=self.device,
                                                memory_format=self.runner.memory_format)
        buf.copy_(src, non_blocking=True)
        return buf

    # ---- both paths
    def predict_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] Bx3xHxW -> int64 labels BxHxW."""
        if self.fast:
            with grad_context(self.options):
                return self.logits255(x.float() * 255.0).argmax(1)
        with torch.no_grad():
            return self.forward_rgb01(x).argmax(1)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 -> uint8 HxW class ids (argmax over the real classes)."""
        check_rgb(rgb, 'predict')
        if self.fast:
            with self._lock, grad_context(self.options):
                return self.labels255(self._frame_tensor(rgb))[0].cpu().numpy()
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0)
            return self.predict_tensor(x)[0].to(torch.uint8).cpu().numpy()

    def warmup(self, size: tuple[int, int], repeats: int = 2) -> None:
        """Run the model on a black frame of `size` (w, h): graph tracing happens now, not on the first
        real frame."""
        for _ in range(repeats):
            self.predict(np.zeros((size[1], size[0], 3), np.uint8))
