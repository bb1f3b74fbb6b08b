"""Frozen semantic segmentation for the cloud: a registered architecture + its weight file + preprocessing.

``Segmenter.predict`` takes an RGB uint8 frame and returns class ids; ``forward_rgb01`` is the differentiable
path used by ASR/CloudSeg training (RGB in [0, 1] -> logits), with the model's own preprocessing done on
tensors: BGR, ``(img*255 - mean) / std / 255`` (ESPNet's recipe, see shared/README).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runespoor_common import paths
from .datasets import DatasetInfo, get_info
from .models import ModelFileError, build, load_state_strict


def default_weights(arch: str = 'espnet', dataset: str = 'camvid', model_dir: str | os.PathLike | None = None
                    ) -> Path:
    if arch != 'espnet':
        raise ValueError(f'no default weight file for segmentation architecture {arch!r}; pass weights=')
    return paths.model_dir(model_dir) / 'espnet' / f'espnet_p_2_q_8_{dataset}.pth'


def load_segmentation_model(arch: str, weights: str | os.PathLike) -> torch.nn.Module:
    """Build `arch` to fit the published state_dict in `weights` and load it strictly."""
    weights = Path(weights)
    if not weights.is_file():
        raise ModelFileError(f'{weights}: segmentation weight file is missing')
    try:
        sd = torch.load(weights, map_location='cpu', weights_only=True)
    except Exception as exc:
        raise ModelFileError(f'{weights}: truncated or unreadable weight file ({type(exc).__name__}: {exc})') from exc
    if isinstance(sd, dict) and 'state_dict' in sd and isinstance(sd['state_dict'], dict):
        sd = sd['state_dict']
    if not isinstance(sd, dict):
        raise ModelFileError(f'{weights}: expected a state_dict, found {type(sd).__name__}')
    sd = {k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}  # DataParallel prefix
    if arch == 'espnet':
        from .models.espnet import espnet_args_from_state_dict
        try:
            args = espnet_args_from_state_dict(sd)
        except (KeyError, ValueError, IndexError) as exc:
            raise ModelFileError(f'{weights}: not an ESPNet state_dict ({exc})') from exc
    else:
        args = {}
    model = build(arch, **args)
    load_state_strict(model, sd, weights)
    return model


class Segmenter:
    """Frozen segmentation model (eval mode, requires_grad False) with its preprocessing."""

    def __init__(self, arch: str = 'espnet', weights: str | os.PathLike | None = None, dataset: str = 'camvid',
                 device: str | torch.device = 'cpu', threads: int | None = None,
                 model_dir: str | os.PathLike | None = None):
        if threads:
            torch.set_num_threads(int(threads))
        self.arch = arch
        self.info: DatasetInfo = get_info(dataset)
        self.weights = Path(weights) if weights else default_weights(arch, dataset, model_dir)
        self.device = torch.device(device)
        model = load_segmentation_model(arch, self.weights)
        n_out = int(model.classifier.weight.shape[1]) if hasattr(model, 'classifier') else None
        if n_out is not None and n_out < self.info.num_classes:
            raise ModelFileError(f'{self.weights}: model has {n_out} outputs, {dataset} needs '
                                 f'{self.info.num_classes}')
        self.num_outputs = n_out
        model.eval().to(self.device)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        # BGR order, 0-255 scale
        self._mean = torch.tensor(self.info.mean_bgr, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.info.std_bgr, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

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

    @torch.no_grad()
    def predict_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] Bx3xHxW -> int64 labels BxHxW."""
        return self.forward_rgb01(x).argmax(1)

    @torch.no_grad()
    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 -> uint8 HxW class ids (argmax over the real classes)."""
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f'predict expects an RGB uint8 HxWx3 array, got '
                             f'{getattr(rgb, "dtype", type(rgb))} {getattr(rgb, "shape", "")}')
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0)
        return self.predict_tensor(x)[0].to(torch.uint8).cpu().numpy()
