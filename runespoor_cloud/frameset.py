"""Data set frames held in memory with their edge round trips, for training and evaluation.

Low-resolution inputs are always made with :func:`runespoor_edge.codec.edge_roundtrip` (area downsample,
JPEG, decode) on the whole frame, so SR/ASR training and evaluation get the same bytes the cloud receives
from a robot with the same knobs. The data sets themselves are described in runespoor_common/datasets.py.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from runespoor_common.datasets import get_info, list_samples, load_image, load_label
from runespoor_edge.codec import edge_roundtrip


class FrameSet:
    """A split held in memory: HR frames, labels, and their edge round trips for one (scale, quality).

    ``lr[i]`` is exactly what :func:`edge_roundtrip` gives for ``hr[i]``. ``limit`` keeps the first N frames
    (in sequence order) for quick runs.
    """

    def __init__(self, dataset: str, root: str | os.PathLike, split: str, scale: int, quality: int,
                 limit: int | None = None, size: tuple[int, int] | None = None, with_labels: bool = True,
                 every: int = 1):
        self.info = get_info(dataset)
        self.samples = list_samples(dataset, root, split)[::max(1, every)]
        if limit:
            self.samples = self.samples[:limit]
        self.scale, self.quality = scale, quality
        self.hr, self.labels, self.lr, self.nbytes = [], [], [], []
        for s in self.samples:
            img = load_image(s.image_path)
            lab = load_label(dataset, s.label_path) if (with_labels and s.label_path) else None
            if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
                img = cv2.resize(img, tuple(size), interpolation=cv2.INTER_AREA)
                if lab is not None:
                    lab = cv2.resize(lab, tuple(size), interpolation=cv2.INTER_NEAREST)
            lr, n = edge_roundtrip(img, scale, quality) if scale > 1 else (img, 0)
            self.hr.append(img)
            self.labels.append(lab)
            self.lr.append(lr)
            self.nbytes.append(n)

    def __len__(self) -> int:
        return len(self.hr)


def random_patch(lr: np.ndarray, hr: np.ndarray, scale: int, hr_patch: int, rng: np.random.Generator,
                 extras: tuple[np.ndarray, ...] = (), flip: bool = True):
    """Aligned random crop: an LR patch of hr_patch // scale px and the HR patch it came from (plus the same
    crop of each HR-sized array in ``extras``), randomly flipped left-right. ``hr_patch`` <= 0 = whole frame."""
    lh, lw = lr.shape[:2]
    if hr_patch <= 0:
        p_h, p_w = lh, lw
    else:
        p_h = p_w = max(1, hr_patch // scale)
        p_h, p_w = min(p_h, lh), min(p_w, lw)
    y = int(rng.integers(0, lh - p_h + 1))
    x = int(rng.integers(0, lw - p_w + 1))
    lr_p = lr[y:y + p_h, x:x + p_w]
    sl = (slice(y * scale, (y + p_h) * scale), slice(x * scale, (x + p_w) * scale))
    hr_p = hr[sl]
    ex = [e[sl] for e in extras]
    if flip and rng.random() < 0.5:
        lr_p, hr_p = lr_p[:, ::-1], hr_p[:, ::-1]
        ex = [e[:, ::-1] for e in ex]
    return (np.ascontiguousarray(lr_p), np.ascontiguousarray(hr_p), *[np.ascontiguousarray(e) for e in ex])
