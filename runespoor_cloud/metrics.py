"""Accuracy and image-quality metrics (DESIGN §2): confusion matrix, IoU, mIoU, PSNR, SSIM.

SSIM is the standard one (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255): the
mean of the SSIM map per RGB channel, averaged over channels. Hand-written with OpenCV Gaussian filters
because scikit-image is not a dependency of the project; PSNR uses cv2.PSNR's definition (peak 255).
"""
from __future__ import annotations


import cv2
import numpy as np


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


__all__ = ['confusion_matrix', 'class_iou', 'miou', 'psnr', 'ssim']
