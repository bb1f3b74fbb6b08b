"""Every accuracy and image-quality metric, as pure NumPy functions: confusion matrix, IoU, mIoU, PSNR, SSIM,
the tail-accuracy metrics and the tail detector's threshold fit. Evaluation, profiling, training's
validation, the report and the demo's analysis all score through this module.

SSIM is the standard one (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255): the
mean of the SSIM map per RGB channel, averaged over channels. Hand-written with OpenCV Gaussian filters
because scikit-image is not a dependency of the project; PSNR uses cv2.PSNR's definition (peak 255).

Tail-accuracy definitions (the paper's):

* **Class-wise tail accuracy.** Per scale (and JPEG quality), the tail class set is the floor(K/2) classes
  with the lowest IoU(bilinear) / IoU(HR); every method is scored as the mean IoU over that same set
  (:func:`tail_miou`) and normalised by HR's value on the set (:func:`tail_miou_normalized`).
* **Frame-wise tail accuracy.** The ordered frames of each sequence are split into episodes of 10 frames;
  an episode's mIoU is taken from the confusion matrix summed over its frames, over the classes present in
  the episode (ground-truth pixels > 0); ``frame_p90`` is the 10th percentile of the episode mIoUs (the
  value 90 % of episodes beat), ``frame_p99`` the 1st percentile, ``frame_mean`` their mean. A trailing
  chunk of fewer than ``length`` frames is not an episode and is left out (CamVid val: 101 frames of one
  sequence -> 10 episodes, the last frame unused). Percentiles use NumPy's default linear interpolation.
* **Tail frames** (profiling): the worst ``ceil(fraction * N)`` frames by frame accuracy.
* **Tail threshold** (the paper's linear regression): fit ``ratio = c + d * accuracy`` over the profiled
  frames by least squares (small-region ratio of the prediction against frame accuracy) and take the ratio
  the fit gives at the tail boundary accuracy (the best accuracy among tail frames) — the small-region
  ratio a frame on the edge of the tail is expected to have. Frames below it are flagged as likely tail.
  The rule presumes the paper's observation that tail frames have *fewer* small regions (slope > 0). When the
  fitted slope is not positive the regression cannot place a "below" threshold (every candidate flags the
  wrong end); the threshold then falls back to the tail-fraction quantile of the ratios (the detector flags
  as many frames as there are tail frames) and ``method`` says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

EPISODE_LENGTH = 10
TAIL_FRACTION = 0.10


# --------------------------------------------------------------------------------------------------------
# segmentation and image quality


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = 255) -> np.ndarray:
    """int64 KxK, rows = ground truth, columns = prediction. Pixels whose gt is `ignore` are skipped.

    Raises ValueError for mismatched shapes, gt ids outside 0..K-1 (other than `ignore`) or predictions
    outside 0..K-1 on counted pixels."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} differ in shape')
    g = gt.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    keep = g != ignore
    g, p = g[keep], p[keep]
    if g.size and (g.min() < 0 or g.max() >= num_classes):
        raise ValueError(f'ground truth has ids outside 0..{num_classes - 1} (and not {ignore})')
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f'prediction has ids outside 0..{num_classes - 1} on labelled pixels')
    return np.bincount(g * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes).astype(np.int64)


def class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class; nan where the class is absent from both ground truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def miou(cm: np.ndarray) -> float:
    """Mean IoU over classes present in gt or prediction (nanmean); nan for an empty matrix."""
    iou = class_iou(cm)
    if np.all(np.isnan(iou)):
        return float('nan')
    return float(np.nanmean(iou))


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f'images differ in shape: {a.shape} vs {b.shape}')
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two RGB (or mono) images on the 0-255 scale; inf when identical."""
    a, b = _check_pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float('inf')
    return 10.0 * np.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Standard Gaussian-window SSIM on 0-255 images, mean over the SSIM map and over channels."""
    a, b = _check_pair(a, b)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    vals = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        # skimage-style: drop the 5-px border where the window leaves the image
        vals.append(float(m[5:-5, 5:-5].mean()) if min(m.shape) > 10 else float(m.mean()))
    return float(np.mean(vals))


# --------------------------------------------------------------------------------------------------------
# class-wise tail accuracy


def iou_present(cm: np.ndarray) -> np.ndarray:
    """IoU per class from a KxK confusion matrix (rows = ground truth); nan where the class has no
    ground-truth pixel (a class that is only predicted is not "present")."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    gt = cm.sum(1)
    union = gt + cm.sum(0) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(gt > 0, tp / np.where(union > 0, union, 1), np.nan)


def present_miou(cm: np.ndarray) -> float:
    """mIoU over the classes present in the ground truth of `cm`; nan when nothing is labelled."""
    iou = iou_present(cm)
    return float('nan') if np.all(np.isnan(iou)) else float(np.nanmean(iou))


def frame_miou(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = 255) -> float:
    """mIoU of one frame over the classes present in its ground truth (ignore label excluded). Unlike
    :func:`confusion_matrix`, a prediction outside 0..K-1 does not raise: it counts as wrong (the demo scores
    live label maps as they arrive)."""
    p = np.asarray(pred).astype(np.int64)
    p = np.where((p >= 0) & (p < num_classes), p, num_classes)   # an extra, never-true class
    return present_miou(confusion_matrix(p, gt, num_classes + 1, ignore))


def tail_class_set(iou_bilinear: Sequence[float], iou_hr: Sequence[float]) -> list[int]:
    """The floor(K/2) class ids with the lowest IoU(bilinear) / IoU(HR), lowest first.

    K is the number of classes. A class whose ratio is undefined (nan IoU, or HR IoU 0) sorts after every
    defined one; ties keep class-id order."""
    b = np.asarray(iou_bilinear, dtype=np.float64)
    h = np.asarray(iou_hr, dtype=np.float64)
    if b.shape != h.shape or b.ndim != 1:
        raise ValueError(f'IoU vectors differ in shape: {b.shape} vs {h.shape}')
    with np.errstate(invalid='ignore', divide='ignore'):
        ratio = b / h
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    order = np.argsort(ratio, kind='stable')
    return [int(i) for i in order[:len(b) // 2]]


def tail_miou(iou: Sequence[float], tail: Sequence[int]) -> float:
    """Mean IoU over the tail class set (classes with nan IoU skipped); nan for an empty set."""
    v = np.asarray(iou, dtype=np.float64)[list(tail)]
    return float('nan') if v.size == 0 or np.all(np.isnan(v)) else float(np.nanmean(v))


def tail_miou_normalized(iou: Sequence[float], iou_hr: Sequence[float], tail: Sequence[int]) -> float:
    """tail_miou(iou) / tail_miou(iou_hr) on the same set."""
    ref = tail_miou(iou_hr, tail)
    t = tail_miou(iou, tail)
    return float('nan') if not ref or math.isnan(ref) or math.isnan(t) else t / ref


# --------------------------------------------------------------------------------------------------------
# frame-wise tail accuracy


def episodes(sequences: Sequence[str], length: int = EPISODE_LENGTH) -> list[list[int]]:
    """Indices of the frames of each episode: consecutive runs of `length` frames of one sequence, in the
    given (temporal) order. A trailing chunk shorter than `length` is dropped."""
    if length < 1:
        raise ValueError(f'episode length must be >= 1, got {length}')
    runs: dict[str, list[int]] = {}
    for i, s in enumerate(sequences):
        runs.setdefault(s, []).append(i)
    out = []
    for idx in runs.values():
        for k in range(0, len(idx) - length + 1, length):
            out.append(idx[k:k + length])
    return out


def episode_mious(frame_cms: Sequence[np.ndarray], sequences: Sequence[str],
                  length: int = EPISODE_LENGTH) -> list[float]:
    """mIoU of each episode (confusion matrices summed over its frames, classes present in the episode)."""
    if len(frame_cms) != len(sequences):
        raise ValueError(f'{len(frame_cms)} confusion matrices for {len(sequences)} frames')
    return [present_miou(np.sum([frame_cms[i] for i in ep], axis=0)) for ep in episodes(sequences, length)]


def frame_tail_stats(episode_values: Sequence[float]) -> dict[str, float]:
    """frame_p90 (10th percentile), frame_p99 (1st percentile) and frame_mean of episode mIoUs."""
    v = np.asarray([x for x in episode_values if not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {'frame_p90': float('nan'), 'frame_p99': float('nan'), 'frame_mean': float('nan'), 'episodes': 0}
    return {'frame_p90': float(np.percentile(v, 10)), 'frame_p99': float(np.percentile(v, 1)),
            'frame_mean': float(v.mean()), 'episodes': int(v.size)}


# --------------------------------------------------------------------------------------------------------
# tail frames and the detector's threshold


def tail_frames(accuracy: Sequence[float], fraction: float = TAIL_FRACTION) -> np.ndarray:
    """Boolean mask of the worst ceil(fraction * N) frames by accuracy (nan counts as worst; ties keep
    frame order)."""
    a = np.asarray(accuracy, dtype=np.float64)
    if not 0 < fraction <= 1:
        raise ValueError(f'tail fraction must be in (0, 1], got {fraction}')
    n = int(math.ceil(fraction * a.size - 1e-9))
    mask = np.zeros(a.size, bool)
    mask[np.argsort(np.where(np.isnan(a), -np.inf, a), kind='stable')[:n]] = True
    return mask


@dataclass(frozen=True)
class ThresholdFit:
    intercept: float      # c in ratio = c + d * accuracy
    slope: float          # d
    boundary_accuracy: float   # best accuracy among the tail frames
    threshold: float      # c + d * boundary_accuracy clipped to [0, 1]; the quantile when slope <= 0
    r2: float
    frames: int
    method: str = 'regression'     # or 'quantile' (rule 'below' forced on a slope <= 0)
    regression_threshold: float = float('nan')   # c + d * boundary_accuracy, whatever the slope
    rule: str = 'below'            # tail when the ratio is 'below' the threshold (the paper) or 'above' it

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


RULES = ('below', 'above')


def fit_tail_threshold(ratios: Sequence[float], accuracy: Sequence[float], tail_mask: Sequence[bool],
                       rule: str = 'below') -> ThresholdFit:
    """Least-squares line ratio = c + d * accuracy (frames with a finite accuracy), evaluated at the tail
    boundary (the best accuracy among `tail_mask` frames). Raises ValueError when there is nothing to fit.

    `rule`: 'below' is the paper's rule (a tail frame has a small-region ratio below the threshold), which
    needs a positive slope; on a slope <= 0 the threshold is the tail-fraction quantile of the ratios instead
    (method 'quantile'). 'fit' lets the sign of the slope choose: d > 0 -> 'below', d <= 0 -> 'above' (the
    worse frames have *more* small regions, as measured on CamVid with ESPNet), and the threshold is the
    line's value at the boundary in both cases. 'above' forces that rule (quantile from the top on d > 0)."""
    if rule not in RULES + ('fit',):
        raise ValueError(f"rule must be one of {RULES + ('fit',)}, got {rule!r}")
    r = np.asarray(ratios, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    t = np.asarray(tail_mask, dtype=bool)
    if not (r.shape == a.shape == t.shape):
        raise ValueError(f'ratios {r.shape}, accuracy {a.shape} and tail mask {t.shape} differ in shape')
    ok = np.isfinite(r) & np.isfinite(a)
    if ok.sum() < 2 or np.ptp(a[ok]) == 0:
        raise ValueError(f'cannot fit the tail threshold: {int(ok.sum())} usable frames with distinct accuracy')
    if not (t & ok).any():
        raise ValueError('cannot fit the tail threshold: no tail frame with a finite accuracy')
    d, c = np.polyfit(a[ok], r[ok], 1)
    pred = c + d * a[ok]
    ss_res = float(((r[ok] - pred) ** 2).sum())
    ss_tot = float(((r[ok] - r[ok].mean()) ** 2).sum())
    boundary = float(a[t & ok].max())
    reg = float(np.clip(c + d * boundary, 0.0, 1.0))
    if rule == 'fit':
        rule = 'below' if d > 0 else 'above'
    fraction = float(t[ok].mean())
    if (rule == 'below') == (d > 0):
        thr, method = reg, 'regression'
    elif rule == 'below':
        thr, method = float(np.quantile(r[ok], fraction)), 'quantile'
    else:
        thr, method = float(np.quantile(r[ok], 1.0 - fraction)), 'quantile'
    return ThresholdFit(intercept=float(c), slope=float(d), boundary_accuracy=boundary, threshold=thr,
                        r2=1.0 - ss_res / ss_tot if ss_tot > 0 else float('nan'), frames=int(ok.sum()),
                        method=method, regression_threshold=reg, rule=rule)


def flag_tail(ratios, threshold: float, rule: str = 'below'):
    """The detector's verdict(s): ratio < threshold ('below', the paper) or ratio > threshold ('above')."""
    if rule == 'below':
        return np.asarray(ratios) < threshold
    if rule == 'above':
        return np.asarray(ratios) > threshold
    raise ValueError(f'rule must be one of {RULES}, got {rule!r}')


def detection_scores(ratios: Sequence[float], tail_mask: Sequence[bool], threshold: float,
                     rule: str = 'below') -> dict:
    """Recall and precision of "ratio < threshold" (rule 'below'; '>' for 'above') as a tail-frame detector
    against `tail_mask`.
    recall = flagged tail / all tail; precision = flagged tail / all flagged (nan when nothing is flagged)."""
    r = np.asarray(ratios, dtype=np.float64)
    t = np.asarray(tail_mask, dtype=bool)
    flagged = flag_tail(r, threshold, rule)
    tp = int((flagged & t).sum())
    return {'threshold': float(threshold), 'rule': rule, 'recall': tp / int(t.sum()) if t.any() else float('nan'),
            'precision': tp / int(flagged.sum()) if flagged.any() else float('nan'),
            'flagged': int(flagged.sum()), 'tail': int(t.sum()), 'frames': int(r.size)}


__all__ = ['confusion_matrix', 'class_iou', 'miou', 'psnr', 'ssim',
           'EPISODE_LENGTH', 'TAIL_FRACTION', 'iou_present', 'present_miou', 'frame_miou', 'tail_class_set',
           'tail_miou', 'tail_miou_normalized', 'episodes', 'episode_mious', 'frame_tail_stats', 'tail_frames',
           'ThresholdFit', 'RULES', 'fit_tail_threshold', 'flag_tail', 'detection_scores']
