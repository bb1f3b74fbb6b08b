"""Colour overlay of a label map for rviz (pure NumPy/OpenCV, no ROS)."""
from __future__ import annotations

import cv2
import numpy as np


def palette_lut(palette, ignore_label: int = 255) -> np.ndarray:
    """A 256x3 uint8 lookup table from a list of RGB tuples (class id -> colour; unused ids black)."""
    pal = np.asarray(palette, np.uint8).reshape(-1, 3)
    if len(pal) > 256 or (0 <= ignore_label < len(pal)):
        raise ValueError(f'palette of {len(pal)} colours does not fit class ids 0..255 beside ignore '
                         f'label {ignore_label}')
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(pal)] = pal
    return lut


def blend_overlay(rgb: np.ndarray, labels: np.ndarray, lut: np.ndarray, alpha: float = 0.5,
                  ignore_label: int = 255) -> np.ndarray:
    """`alpha` x class colour + (1 - alpha) x frame; ignore-label pixels keep the frame's colour.

    `rgb` HxWx3 uint8, `labels` HxW uint8 of the same size, `lut` 256x3 (see `palette_lut`)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or labels.shape != rgb.shape[:2]:
        raise ValueError(f'overlay: label map {labels.shape} does not match frame {rgb.shape}')
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'overlay alpha must be in [0, 1], got {alpha}')
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    colour = lut[labels]
    out = cv2.addWeighted(rgb, 1.0 - alpha, colour, alpha, 0.0)
    ignore = labels == ignore_label
    out[ignore] = rgb[ignore]
    return out
