"""The rviz overlay: palette colours blended over the frame, ignore pixels untouched, clear errors."""
import numpy as np
import pytest

from runespoor_cloud.overlay import blend_overlay, palette_lut
from runespoor_common.datasets import DATASETS


def test_blend_exact_and_ignore_kept():
    lut = palette_lut([(255, 0, 0), (0, 0, 255)])
    rgb = np.full((4, 6, 3), 100, np.uint8)
    lab = np.zeros((4, 6), np.uint8)
    lab[:, 3:] = 1
    lab[0, 0] = 255
    out = blend_overlay(rgb, lab, lut, 0.5)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert tuple(out[1, 1]) == (178, 50, 50) and tuple(out[1, 4]) == (50, 50, 178)   # round(0.5*100 + 0.5*c)
    assert tuple(out[0, 0]) == (100, 100, 100)
    assert (blend_overlay(rgb, lab, lut, 0.0) == rgb).all()
    assert tuple(blend_overlay(rgb, lab, lut, 1.0)[2, 2]) == (255, 0, 0)


def test_dataset_palettes_fit_and_bad_input_is_named():
    for info in DATASETS.values():
        lut = palette_lut(info.palette, info.ignore_label)
        assert (lut[:len(info.palette)] == np.asarray(info.palette)).all() and not lut[255].any()
    with pytest.raises(ValueError, match='does not match frame'):
        blend_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), palette_lut([(1, 2, 3)]))
    with pytest.raises(ValueError, match='alpha'):
        blend_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), palette_lut([(1, 2, 3)]), 2.0)
    with pytest.raises(ValueError, match='palette'):
        palette_lut([(0, 0, 0)] * 300)
