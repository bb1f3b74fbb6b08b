"""Model registry and checkpoint files (timm/BasicSR style).

Architectures register themselves with ``@register('name')``; ``build(name, **model_args)`` rebuilds one.
A checkpoint is a dict ``{'arch', 'model_args', 'state_dict' (CPU tensors), ...extra}`` written to a temp file
in the destination folder and renamed into place, so a crash never leaves a half-written file behind.
``load_checkpoint`` is strict and raises :class:`ModelFileError` naming the file and what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from runespoor_common.fileio import write_atomic

from runespoor_cloud.models.registry import _REGISTRY, ModelFileError, register  # noqa: F401 (the package's public API)

def _ensure_loaded() -> None:
    # importing the architecture modules runs their @register decorators
    from runespoor_cloud.models import carn, espnet  # noqa: F401


def available() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def build(name: str, **model_args) -> nn.Module:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise KeyError(f'unknown architecture {name!r}; registered: {", ".join(sorted(_REGISTRY))}')
    return _REGISTRY[name](**model_args)


def cpu_state_dict(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().to('cpu')
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.clone()
    return out


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to a temp file beside ``path`` then rename (atomic on POSIX)."""
    return write_atomic(path, lambda fh: torch.save(obj, fh), binary=True, fsync=True)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, arch: str, model_args: dict,
                    half: bool = False, **extra) -> Path:
    """Write ``{'arch', 'model_args', 'state_dict', **extra}`` atomically. ``half`` stores fp16 weights."""
    ckpt = {'arch': arch, 'model_args': dict(model_args),
            'state_dict': cpu_state_dict(model, torch.float16 if half else None)}
    ckpt.update(extra)
    return atomic_save(ckpt, path)


def short_load_error(exc: BaseException) -> str:
    """Why torch.load failed, in one line, without torch's advice to load with weights_only=False (never
    right for a file that is not ours)."""
    text = ' '.join(str(exc).split())
    if 'WeightsUnpickler error:' in text:   # not tensors only: garbage, or a pickle with code in it
        detail = text.split('WeightsUnpickler error:', 1)[1].split('Check the documentation', 1)[0].strip()
        return f'not a file of tensors: {detail or "unpickling refused"}'[:200]
    if 'Weights only load failed' in text:
        return 'not a file of tensors'
    return f'{type(exc).__name__}: {text[:200]}' if text else type(exc).__name__


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint dict (no model built), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f'{path}: model file is missing')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise ModelFileError(f'{path}: truncated or unreadable model file ({short_load_error(exc)})') from None
    if not isinstance(ckpt, dict) or not {'arch', 'model_args', 'state_dict'} <= set(ckpt):
        raise ModelFileError(f'{path}: not a Runespoor checkpoint (needs arch, model_args, state_dict; '
                             f'has {sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__})')
    return ckpt


def load_state_strict(model: nn.Module, state_dict: dict, path: str | os.PathLike) -> None:
    """``load_state_dict(strict=True)`` with shape checks first, as a ModelFileError naming ``path``."""
    own = model.state_dict()
    # BatchNorm counters absent from old releases are filled in by torch itself (state_dict version < 2)
    missing = [k for k in own if k not in state_dict and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}'
              for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing keys (e.g. {missing[:3]})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})')
        if shapes:
            parts.append(f'{len(shapes)} wrong shapes (e.g. {shapes[:3]})')
        raise ModelFileError(f'{path}: weights do not fit {type(model).__name__}: ' + '; '.join(parts))
    sd = {k: (v.to(own[k].dtype) if v.is_floating_point() else v) for k, v in state_dict.items()}
    sd.update({k: own[k].new_zeros(()) for k in own if k not in sd})  # num_batches_tracked only
    model.load_state_dict(sd, strict=True)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = 'cpu') -> tuple[nn.Module, dict]:
    """Rebuild the model from ``model_args`` and load its weights strictly. Returns (model in eval, ckpt)."""
    ckpt = read_checkpoint(path)
    try:
        model = build(ckpt['arch'], **ckpt['model_args'])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f'{path}: cannot build {ckpt["arch"]!r} from {ckpt["model_args"]}: {exc}') from exc
    load_state_strict(model, ckpt['state_dict'], path)
    model.to(device).eval()
    return model, ckpt


__all__ = ['ModelFileError', 'register', 'build', 'available', 'save_checkpoint', 'load_checkpoint',
           'read_checkpoint', 'load_state_strict', 'atomic_save', 'cpu_state_dict']
