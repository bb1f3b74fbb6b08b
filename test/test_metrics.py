"""docs/design.md §2 metrics against hand-computed values: confusion matrix, IoU, tail class set, episodes and their
percentiles, PSNR/SSIM on known images, tail frames and the tail-threshold fit."""
import math

import numpy as np
import pytest

from runespoor_cloud import metrics as tm
from runespoor_cloud.metrics import class_iou, confusion_matrix, miou, psnr, ssim


def test_confusion_matrix_and_iou_by_hand():
    gt = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 2, 0]], np.uint8)
    cm = confusion_matrix(pred, gt, 3)
    # pairs (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,2); the ignore pixel is skipped whatever is predicted
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    # IoU = tp / (gt + pred - tp): 1/2, 2/3, 1/1
    assert class_iou(cm) == pytest.approx([0.5, 2 / 3, 1.0])
    assert miou(cm) == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert tm.present_miou(cm) == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)


def test_present_miou_counts_only_ground_truth_classes():
    # class 1 never in the ground truth but predicted once: not "present", so not averaged in
    cm = np.array([[3, 1], [0, 0]])
    assert tm.iou_present(cm)[0] == pytest.approx(0.75)
    assert math.isnan(tm.iou_present(cm)[1])
    assert tm.present_miou(cm) == pytest.approx(0.75)
    assert miou(cm) == pytest.approx(0.375)      # the split-level mIoU counts it (union > 0) as 0
    assert math.isnan(tm.present_miou(np.zeros((3, 3))))


def test_tail_class_set_lowest_ratio_floor_half():
    bil = [0.9, 0.2, 0.5, 0.3, float('nan')]
    hr = [1.0, 0.4, 0.5, 0.9, 0.8]
    # ratios 0.9, 0.5, 1.0, 0.333, undefined -> floor(5/2) = 2 lowest: class 3 then class 1
    tail = tm.tail_class_set(bil, hr)
    assert tail == [3, 1]
    asr = [0.95, 0.3, 0.5, 0.6, 0.7]
    assert tm.tail_miou(asr, tail) == pytest.approx((0.6 + 0.3) / 2)
    assert tm.tail_miou(hr, tail) == pytest.approx((0.9 + 0.4) / 2)
    assert tm.tail_miou_normalized(asr, hr, tail) == pytest.approx(0.45 / 0.65)
    assert tm.tail_miou_normalized(hr, hr, tail) == pytest.approx(1.0)


def test_tail_class_set_ties_and_zero_hr():
    # class 0 has HR IoU 0 (ratio undefined): last; classes 1 and 2 tie: id order
    assert tm.tail_class_set([0.0, 0.5, 0.25, 0.9], [0.0, 1.0, 0.5, 0.9]) == [1, 2]
    with pytest.raises(ValueError):
        tm.tail_class_set([0.1, 0.2], [0.1, 0.2, 0.3])


def test_episodes_per_sequence_drop_short_tail():
    seqs = ['a'] * 23 + ['b'] * 10 + ['c'] * 4
    eps = tm.episodes(seqs, 10)
    assert eps == [list(range(0, 10)), list(range(10, 20)), list(range(23, 33))]
    assert tm.episodes(['a'] * 5, 2) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError):
        tm.episodes(seqs, 0)


def test_episode_miou_sums_confusion_matrices():
    f1 = np.array([[2, 0], [0, 0]])
    f2 = np.array([[1, 1], [0, 0]])
    f3 = np.array([[0, 0], [1, 3]])
    f4 = np.array([[1, 0], [0, 1]])
    vals = tm.episode_mious([f1, f2, f3, f4], ['s'] * 4, 2)
    # episode 1: [[3,1],[0,0]] -> class 0 IoU 3/4, class 1 absent -> 0.75
    # episode 2: [[1,0],[1,4]] -> IoU0 = 1/2, IoU1 = 4/5 -> 0.65
    assert vals == pytest.approx([0.75, 0.65])


def test_frame_percentiles_by_hand():
    v = [0.1 * k for k in range(10, 0, -1)]      # 1.0 ... 0.1, unordered input on purpose
    s = tm.frame_tail_stats(v)
    # numpy linear interpolation: position 0.1 * 9 = 0.9 -> 0.1 + 0.9 * 0.1; position 0.09 -> 0.109
    assert s['frame_p90'] == pytest.approx(0.19)
    assert s['frame_p99'] == pytest.approx(0.109)
    assert s['frame_mean'] == pytest.approx(0.55)
    assert s['episodes'] == 10
    empty = tm.frame_tail_stats([])
    assert math.isnan(empty['frame_p90']) and empty['episodes'] == 0


def test_psnr_known_images():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 100))   # 28.1308 dB
    assert psnr(a, a) == math.inf
    with pytest.raises(ValueError):
        psnr(a, b[:4])


def test_ssim_known_images():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    assert ssim(img, img) == pytest.approx(1.0)
    # two flat images: variances are 0, SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) with C1 = (0.01*255)^2
    a = np.full((32, 32, 3), 100, np.uint8)
    b = np.full((32, 32, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1), rel=1e-6)
    assert ssim(img, 255 - img) < 0


def test_tail_frames_worst_ten_percent():
    acc = [0.5, 0.1, 0.9, float('nan'), 0.3, 0.8, 0.7, 0.6, 0.4, 0.2, 0.95]
    mask = tm.tail_frames(acc, 0.1)
    # ceil(0.1 * 11) = 2: the nan frame (counted as worst) and 0.1
    assert np.flatnonzero(mask).tolist() == [1, 3]
    assert tm.tail_frames([0.3, 0.2, 0.1, 0.4], 0.5).tolist() == [False, True, True, False]


def test_threshold_fit_on_synthetic_line():
    acc = np.linspace(0.2, 0.8, 61)
    ratio = 0.01 + 0.05 * acc
    tail = tm.tail_frames(acc, 0.1)                      # ceil(6.1) = 7 frames: acc 0.20 ... 0.26
    fit = tm.fit_tail_threshold(ratio, acc, tail)
    assert fit.slope == pytest.approx(0.05) and fit.intercept == pytest.approx(0.01)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.boundary_accuracy == pytest.approx(0.26)
    assert fit.threshold == pytest.approx(0.01 + 0.05 * 0.26)
    assert fit.method == 'regression' and fit.regression_threshold == pytest.approx(fit.threshold)
    sc = tm.detection_scores(ratio, tail, fit.threshold + 1e-12)
    assert (sc['recall'], sc['precision'], sc['flagged'], sc['tail']) == (1.0, 1.0, 7, 7)


def test_threshold_fit_negative_slope_falls_back_to_quantile():
    acc = np.linspace(0.2, 0.8, 61)
    ratio = 0.08 - 0.05 * acc                            # more small regions on the worse frames
    tail = tm.tail_frames(acc, 0.1)
    fit = tm.fit_tail_threshold(ratio, acc, tail)
    assert fit.slope == pytest.approx(-0.05) and fit.method == 'quantile'
    assert fit.regression_threshold == pytest.approx(0.08 - 0.05 * 0.26)
    assert fit.threshold == pytest.approx(np.quantile(ratio, 7 / 61))
    sc = tm.detection_scores(ratio, tail, fit.threshold)
    assert sc['flagged'] == 7 and sc['recall'] == 0.0   # the lowest ratios are the best frames here


def test_threshold_fit_noisy_and_scores_by_hand():
    rng = np.random.default_rng(1)
    acc = rng.uniform(0.3, 0.9, 400)
    ratio = 0.002 + 0.03 * acc + rng.normal(0, 0.002, 400)
    fit = tm.fit_tail_threshold(ratio, acc, tm.tail_frames(acc))
    assert fit.slope == pytest.approx(0.03, abs=0.002)
    assert fit.intercept == pytest.approx(0.002, abs=0.002)
    # recall / precision by hand on four frames
    sc = tm.detection_scores([0.001, 0.02, 0.003, 0.05], [True, True, False, False], 0.01)
    assert sc['recall'] == 0.5 and sc['precision'] == 0.5 and sc['flagged'] == 2
    none = tm.detection_scores([0.5, 0.6], [True, False], 0.1)
    assert none['recall'] == 0.0 and math.isnan(none['precision'])
    with pytest.raises(ValueError):
        tm.fit_tail_threshold([0.1, 0.2], [0.5, 0.5], [True, False])


def test_threshold_fit_rule_fit_takes_the_sign_of_the_slope():
    acc = np.linspace(0.2, 0.8, 61)
    tail = tm.tail_frames(acc, 0.1)                      # acc 0.20 ... 0.26
    down = 0.08 - 0.05 * acc                             # worse frames: more small regions
    fit = tm.fit_tail_threshold(down, acc, tail, rule='fit')
    assert fit.rule == 'above' and fit.method == 'regression'
    assert fit.threshold == pytest.approx(0.08 - 0.05 * 0.26)
    sc = tm.detection_scores(down, tail, fit.threshold - 1e-12, rule='above')
    assert (sc['recall'], sc['precision'], sc['rule']) == (1.0, 1.0, 'above')
    up = 0.01 + 0.05 * acc                               # the paper's case
    assert tm.fit_tail_threshold(up, acc, tail, rule='fit').rule == 'below'
    # 'above' forced on a positive slope: the top quantile of the ratios
    forced = tm.fit_tail_threshold(up, acc, tail, rule='above')
    assert forced.method == 'quantile' and forced.threshold == pytest.approx(np.quantile(up, 1 - 7 / 61))
    assert tm.flag_tail([0.1, 0.3], 0.2, 'above').tolist() == [False, True]
    with pytest.raises(ValueError):
        tm.fit_tail_threshold(up, acc, tail, rule='sideways')
    with pytest.raises(ValueError):
        tm.flag_tail([0.1], 0.2, 'fit')
