"""Tail detection on a label map (pure NumPy/OpenCV, no ROS).

A connected region (8-connectivity, one class, ignore label excluded) is *small* when its area / frame
area < `small_region_area`. A frame's small-region ratio is the total area of its small regions / frame
area; a frame whose ratio is **below** `tail_threshold` is a likely tail frame (few small objects left:
the analytics lost the detail). That is the paper's rule (`rule='below'`); where the profiling data shows
the opposite (on CamVid, worse frames have *more* small regions) the fitted profile says `rule: above`.
The threshold may differ per scale the frame was sent at (`scale_thresholds` in the profile): the
restored label maps of coarser scales carry more small spurious regions. The paper runs this on
downsampled prediction maps; `downsample` does that with nearest-neighbour subsampling.

Speed (see `_regions`): one `cv2.connectedComponents` per class *present*, on that class's bounding box
only, and one `bincount` for the region areas: ~0.2 ms CPU per 480x360 CamVid label map at the default
downsample 4 (`runespoor bench` measures it on the target machine).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from runespoor_edge.codec import VALID_SCALES

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
    rule: str = 'below'


def _check(labels: np.ndarray, small_region_area: float, downsample: int) -> None:
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.size == 0:
        raise ValueError(f'label map must be a non-empty 2-D array, got {getattr(labels, "shape", type(labels))}')
    if labels.dtype != np.uint8:
        if labels.dtype.kind not in 'iub':
            raise ValueError(f'label map must hold integer class ids, got dtype {labels.dtype}')
        if labels.min() < 0 or labels.max() > 255:
            raise ValueError(f'label map class ids must be 0..255, got {labels.min()}..{labels.max()}')
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

    Hand-written because OpenCV labels binary images only (and scipy/skimage are not dependencies).
    Per class present: one comparison to a binary mask, its bounding box, and `connectedComponents` on that
    box only (small-object classes have small boxes). A class whose *total* area is already below the
    small-region bound has only small regions: its area and region count are taken as they are. The
    other classes' region ids are shifted to a running base into one id image, and a single `bincount`
    gives all their region areas.
    Measured (CamVid val, 101 label maps at 480x360, CPU time per frame on the shared 2-core dev machine):
    downsample 4 (120x90) 0.20-0.24 ms, downsample 1 1.6-1.7 ms; wall time was 0.4-0.5 ms / 3.3 ms there
    under a load average of 5 (CPU share ~40 %). `connectedComponents` over the full frame for every class
    took 0.23-0.30 ms / 3.0-3.5 ms CPU; `connectedComponentsWithStats` per class ~1.4 ms at 120x90; one
    labelling pass over all class masks stacked into one image (a zero row between classes) costs as much
    as the per-class calls (labelling costs per pixel), so what helps is labelling fewer pixels.
    """
    lab = np.ascontiguousarray(labels, dtype=np.uint8)
    size = lab.size
    if size < 1 << 24:   # calcHist counts in float32: exact below 2^24 pixels, and ~2x faster than bincount
        counts = cv2.calcHist([lab], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        counts = np.bincount(lab.ravel(), minlength=256)
    binary = np.empty_like(lab)
    ids = None
    mask = np.zeros(lab.shape, bool) if want_mask else None
    base = small_area = n_small = 0
    for c in np.flatnonzero(counts):
        if c == ignore:
            continue
        np.equal(lab, c, out=binary.view(bool))   # not cv2.compare: OpenCV reads an (n<=4)x1 map as a scalar
        x, y, w, h = cv2.boundingRect(binary)
        box = binary[y:y + h, x:x + w]
        n, cc = cv2.connectedComponents(box, connectivity=8, ltype=cv2.CV_32S)
        if counts[c] / size < small_region_area:        # all of this class's regions are small
            small_area += int(counts[c])
            n_small += n - 1
            if want_mask:
                mask[y:y + h, x:x + w] |= box.view(bool)
            continue
        if ids is None:
            ids = np.zeros(lab.shape, np.int32)
        np.add(cc, base, out=ids[y:y + h, x:x + w], where=box.view(bool))  # region id + base on the class
        base += n - 1
    n_all = n_small + base
    if base:
        areas = np.bincount(ids.ravel(), minlength=base + 1)[1:]
        small = areas / size < small_region_area
        small_area += int(areas[small].sum())
        n_small += int(small.sum())
        if want_mask and small.any():
            mask |= np.concatenate(([False], small))[ids]
    return small_area, n_small, n_all, mask


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


def parse_scale_thresholds(value) -> dict[int, float]:
    """Per-scale tail thresholds from a parameter string '2:0.05,4:0.06' or a profile's {scale: threshold}
    mapping -> {2: 0.05, 4: 0.06}; '' -> {}. Raises ValueError naming the bad entry."""
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = [item.partition(':')[::2] for item in str(value).split(',') if item.strip()]
    out = {}
    for scale, thr in items:
        try:
            s, t = int(scale), float(thr)
        except (TypeError, ValueError):
            raise ValueError(f'scale_thresholds entry {scale}:{thr}: expected SCALE:FRACTION, e.g. "4:0.06"') from None
        if s not in VALID_SCALES or not 0.0 <= t <= 1.0:
            raise ValueError(f'scale_thresholds entry {scale}:{thr}: scale must be one of {list(VALID_SCALES)} '
                             f'and the threshold in [0, 1]')
        out[s] = t
    return out


def format_scale_thresholds(thresholds: dict[int, float]) -> str:
    """{4: 0.06, 8: 0.11} -> '4:0.06,8:0.11' (the parameter's form)."""
    return ','.join(f'{s}:{t:g}' for s, t in sorted(thresholds.items()))


def analyze(labels: np.ndarray, small_region_area: float = DEFAULT_SMALL_REGION_AREA,
            tail_threshold: float = DEFAULT_TAIL_THRESHOLD, downsample: int = DEFAULT_DOWNSAMPLE,
            ignore: int = 255, rule: str = 'below') -> TailResult:
    """The tail detector's verdict on one label map: a tail frame when the small-region ratio is below
    `tail_threshold` (rule 'below', the paper's) or above it (rule 'above': fitted by `runespoor profile`
    where worse frames have more small regions, as on CamVid)."""
    t0 = time.perf_counter()
    _check(labels, small_region_area, downsample)
    if not 0.0 <= float(tail_threshold) <= 1.0:
        raise ValueError(f'tail_threshold must be in [0, 1], got {tail_threshold!r}')
    if rule not in ('below', 'above'):
        raise ValueError(f"rule must be 'below' or 'above', got {rule!r}")
    small = _downsample(labels, int(downsample))
    small_area, n_small, n_all, _ = _regions(small, small_region_area, ignore, want_mask=False)
    ratio = small_area / small.size
    is_tail = ratio < tail_threshold if rule == 'below' else ratio > tail_threshold
    return TailResult(small_region_ratio=float(ratio), is_tail=bool(is_tail),
                      num_small_regions=n_small, num_regions=n_all, tail_threshold=float(tail_threshold),
                      small_region_area=float(small_region_area), downsample=int(downsample),
                      time_ms=(time.perf_counter() - t0) * 1000.0, rule=rule)
