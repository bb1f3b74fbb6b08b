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


def _reference(lab, small_region_area, ignore=255):
    """Brute-force flood fill (8-connectivity per class): (small area, n small, n regions)."""
    h, w = lab.shape
    seen = np.zeros(lab.shape, bool)
    small_area = n_small = n_all = 0
    for i in range(h):
        for j in range(w):
            if seen[i, j] or lab[i, j] == ignore:
                continue
            stack, area, c = [(i, j)], 0, lab[i, j]
            seen[i, j] = True
            while stack:
                y, x = stack.pop()
                area += 1
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        v, u = y + dy, x + dx
                        if 0 <= v < h and 0 <= u < w and not seen[v, u] and lab[v, u] == c:
                            seen[v, u] = True
                            stack.append((v, u))
            n_all += 1
            if area / lab.size < small_region_area:
                small_area, n_small = small_area + area, n_small + 1
    return small_area, n_small, n_all


def test_matches_brute_force_flood_fill_on_random_maps():
    rng = np.random.default_rng(4)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        k = int(rng.integers(1, 6))
        coarse = rng.integers(0, k, (max(1, h // 4), max(1, w // 4)), dtype=np.uint8)
        lab = coarse.repeat(4, 0).repeat(4, 1)[:h, :w] if trial % 2 else rng.integers(0, k, (h, w), np.uint8)
        lab = np.pad(lab, ((0, h - lab.shape[0]), (0, w - lab.shape[1])), mode='edge')
        lab[rng.random((h, w)) < 0.1] = 255
        lab[rng.random((h, w)) < 0.05] = 200        # a rare class: all its regions are small
        for sra in (0.005, 0.05, 0.3):
            small_area, n_small, n_all = _reference(lab, sra)
            r = analyze(lab, sra, 0.5, downsample=1)
            assert (r.num_small_regions, r.num_regions) == (n_small, n_all)
            assert r.small_region_ratio == small_area / lab.size
            assert small_region_mask(lab, sra).sum() == small_area


def test_real_camvid_label_maps(shared_dir):
    """Real 480x360 CamVid label maps at the default downsample give sane regions. Its cost per frame is a
    speed figure: `runespoor bench` measures it (section `tail`), not this test."""
    import cv2
    files = sorted((shared_dir / 'data/camvid/valannot').glob('*.png'))[:30]
    maps = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    maps = [np.where(m == 11, 255, m).astype(np.uint8) for m in maps]
    assert len(maps) == 30 and maps[0].shape == (360, 480)
    results = [analyze(m) for m in maps]
    assert all(r.num_regions > r.num_small_regions > 0 and 0 < r.small_region_ratio < 0.2 for r in results)


def test_non_uint8_maps():
    lab = _map().astype(np.int32)
    a, b = analyze(lab, 0.01, 0.01, 1), analyze(_map(), 0.01, 0.01, 1)
    assert (a.small_region_ratio, a.num_small_regions, a.num_regions) == \
        (b.small_region_ratio, b.num_small_regions, b.num_regions)
    with pytest.raises(ValueError, match='0..255'):
        analyze(lab + 300)
    with pytest.raises(ValueError, match='integer'):
        analyze(_map().astype(np.float32))


def test_rule_above_flags_frames_with_many_small_regions():
    """The fitted 'above' rule (CamVid: worse frames have more small regions) inverts the verdict."""
    r = analyze(_map(), small_region_area=0.01, tail_threshold=0.005, downsample=1, rule='above')
    assert r.rule == 'above' and r.is_tail      # 0.64 % is above 0.5 %
    assert not analyze(_map(), 0.01, 0.0065, 1, rule='above').is_tail
    assert analyze(_map(), 0.01, 0.0065, 1, rule='below').is_tail
    with pytest.raises(ValueError, match='rule'):
        analyze(_map(), 0.01, 0.01, 1, rule='sideways')
