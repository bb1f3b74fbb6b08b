"""Tail detection on a label map (pure NumPy/OpenCV, no ROS).

A connected region (8-connectivity, one class, ignore label excluded) is *small* when its area / frame
area < `small_region_area`. A frame's small-region ratio is the total area of its small regions / frame
area; a frame whose ratio is **below** `tail_threshold` is a likely tail frame (few small objects left:
the analytics lost the detail). The paper runs this on downsampled prediction maps; `downsample` does that
with nearest-neighbour subsampling.

Speed: one `cv2.connectedComponents` per class *present* in the (downsampled) map and one `bincount`
for all region areas (see `_regions`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_SMALL_REGION_AREA = 0.01   # fraction of the frame
DEFAULT_TAIL_THRESHOLD = 0.01      # fraction of the frame (1 % on Cityscapes in the paper)
DEFAULT_DOWNSAMPLE = 4


@dataclass(frozen=True)
class TailResult:
    small_region_ratio: float   # total area of small regions / frame area
    is_tail: bool
    num_small_regions: int
    num_regions: int
    tail_threshold: float
    small_region_area: float
    downsample: int
    time_ms: float


def _check(labels: np.ndarray, small_region_area: float, downsample: int) -> None:
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.size == 0:
        raise ValueError(f'label map must be a non-empty 2-D array, got {getattr(labels, "shape", type(labels))}')
    if not 0.0 < float(small_region_area) <= 1.0:
        raise ValueError(f'small_region_area must be in (0, 1], got {small_region_area!r}')
    if int(downsample) < 1:
        raise ValueError(f'downsample must be >= 1, got {downsample!r}')


def _downsample(labels: np.ndarray, downsample: int) -> np.ndarray:
    if downsample == 1:
        return labels
    return labels[::downsample, ::downsample]


def _regions(labels: np.ndarray, small_region_area: float, ignore: int, want_mask: bool):
    """(small area [px], n small, n regions, small mask or None) of a label map.

    Hand-written because OpenCV labels binary images only: one `connectedComponents` per class present
    (its ids shifted to a running base into one global id image), then a single `bincount` gives every
    region's area. `connectedComponentsWithStats` per class costs ~4x more on small maps.
    """
    lab = np.ascontiguousarray(labels, dtype=np.uint8)
    bound = small_region_area * lab.size
    counts = np.bincount(lab.ravel(), minlength=256)
    ids = np.zeros(lab.shape, np.int32)
    binary = np.empty_like(lab)
    base = 0
    for c in np.flatnonzero(counts):
        if c == ignore:
            continue
        cv2.compare(lab, int(c), cv2.CMP_EQ, dst=binary)
        n, cc = cv2.connectedComponents(binary, connectivity=8, ltype=cv2.CV_32S)
        if base:
            np.add(cc, base, out=cc, where=binary.view(bool))
        ids += cc
        base += n - 1
    if base == 0:
        return 0, 0, 0, (np.zeros(lab.shape, bool) if want_mask else None)
    areas = np.bincount(ids.ravel(), minlength=base + 1)[1:]
    small = areas < bound
    mask = None
    if want_mask:
        lut = np.concatenate(([False], small))
        mask = lut[ids]
    return int(areas[small].sum()), int(small.sum()), int(base), mask


def small_region_mask(labels: np.ndarray, small_region_area: float = DEFAULT_SMALL_REGION_AREA,
                      ignore: int = 255, downsample: int = 1) -> np.ndarray:
    """Boolean mask (at the label map's resolution) of the pixels that belong to small regions.

    These are the "detailed regions" of the ASR loss (the paper's Eq. 3). With `downsample` > 1 the
    regions are found on the subsampled map and the mask is scaled back with nearest neighbour.
    """
    _check(labels, small_region_area, downsample)
    small = _downsample(labels, int(downsample))
    _, _, _, mask = _regions(small, small_region_area, ignore, want_mask=True)
    if downsample == 1:
        return mask
    up = cv2.resize(mask.view(np.uint8), (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_NEAREST)
    return up.astype(bool)


def analyze(labels: np.ndarray, small_region_area: float = DEFAULT_SMALL_REGION_AREA,
            tail_threshold: float = DEFAULT_TAIL_THRESHOLD, downsample: int = DEFAULT_DOWNSAMPLE,
            ignore: int = 255) -> TailResult:
    """The tail detector's verdict on one label map."""
    t0 = time.perf_counter()
    _check(labels, small_region_area, downsample)
    if not 0.0 <= float(tail_threshold) <= 1.0:
        raise ValueError(f'tail_threshold must be in [0, 1], got {tail_threshold!r}')
    small = _downsample(labels, int(downsample))
    small_area, n_small, n_all, _ = _regions(small, small_region_area, ignore, want_mask=False)
    ratio = small_area / small.size
    return TailResult(small_region_ratio=float(ratio), is_tail=bool(ratio < tail_threshold),
                      num_small_regions=n_small, num_regions=n_all, tail_threshold=float(tail_threshold),
                      small_region_area=float(small_region_area), downsample=int(downsample),
                      time_ms=(time.perf_counter() - t0) * 1000.0)
