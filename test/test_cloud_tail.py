"""Tail detector on constructed label maps: exact ratios, counts, the mask, and bad input."""
import numpy as np
import pytest

from runespoor_cloud.tail import analyze, small_region_mask


def _map():
    lab = np.zeros((100, 100), np.uint8)        # class 0 background: one region of 10000 - small ones
    lab[10:15, 10:15] = 2                       # 25 px pole: small (< 1 % = 100 px)
    lab[50:53, 50:60] = 6                       # 30 px sign: small
    lab[60:63, 70:73] = 2                       # 9 px second pole, not touching the first: small
    lab[80:100, 0:50] = 3                       # 1000 px road: large
    lab[0:2, 90:100] = 255                      # ignore: never a region
    return lab


def test_exact_ratio_and_counts():
    r = analyze(_map(), small_region_area=0.01, tail_threshold=0.01, downsample=1)
    assert r.small_region_ratio == pytest.approx((25 + 30 + 9) / 10000)
    assert (r.num_small_regions, r.num_regions) == (3, 5)
    assert r.is_tail                            # 0.64 % is below the 1 % threshold
    assert analyze(_map(), 0.01, 0.0065, 1).is_tail and not analyze(_map(), 0.01, 0.0064, 1).is_tail


def test_diagonal_pixels_are_one_region_and_classes_do_not_merge():
    lab = np.zeros((50, 50), np.uint8)
    lab[5, 5] = lab[6, 6] = lab[7, 7] = 4       # 8-connected diagonal: one region of 3 px
    lab[20, 20] = 5
    lab[20, 21] = 7                              # touching but different classes: two regions
    r = analyze(lab, 0.01, 0.5, 1)
    assert (r.num_small_regions, r.num_regions) == (3, 4)
    assert r.small_region_ratio == pytest.approx(5 / 2500)


def test_mask_matches_small_regions_and_downsampling():
    lab = _map()
    mask = small_region_mask(lab, 0.01)
    assert mask.sum() == 25 + 30 + 9 and mask[12, 12] and not mask[90, 10] and not mask[0, 95]
    m4 = small_region_mask(lab, 0.01, downsample=4)
    assert m4.shape == lab.shape and m4[12, 12]
    r = analyze(lab, 0.01, 0.01, downsample=4)
    assert r.downsample == 4 and 0 < r.small_region_ratio < 0.02


def test_uniform_frame_is_tail_and_bad_input_is_rejected():
    assert analyze(np.full((90, 120), 3, np.uint8), 0.01, 0.01, 1).is_tail
    r = analyze(np.full((90, 120), 255, np.uint8), 0.01, 0.01, 1)
    assert r.num_regions == 0 and r.small_region_ratio == 0.0
    for bad in (np.zeros((0, 4), np.uint8), np.zeros(10, np.uint8)):
        with pytest.raises(ValueError):
            analyze(bad)
    with pytest.raises(ValueError):
        analyze(_map(), small_region_area=0.0)
    with pytest.raises(ValueError):
        analyze(_map(), downsample=0)
