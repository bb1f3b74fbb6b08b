"""Data set readers, the LR pipeline (= the edge's bytes), aligned patches, metrics."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from runespoor_cloud.frameset import FrameSet, random_patch
from runespoor_cloud.metrics import class_iou, confusion_matrix, miou, psnr, ssim
from runespoor_common.datasets import DATASETS, DatasetError, list_samples, load_image, load_label
from runespoor_edge.codec import decode_jpeg, edge_encode


def test_dataset_info():
    cam, city = DATASETS['camvid'], DATASETS['cityscapes']
    assert cam.class_names[0] == 'Sky' and cam.class_names[-1] == 'Bicyclist' and cam.num_classes == 11
    assert city.num_classes == 19 and len(city.palette) == 19 and cam.ignore_label == 255


def test_camvid_samples_are_ordered(shared_dir):
    s = list_samples('camvid', shared_dir / 'data', 'val')
    assert len(s) == 101
    keys = [(x.sequence, x.frame_index) for x in s]
    assert keys == sorted(keys)
    assert all(x.label_path is not None and x.label_path.is_file() for x in s)
    lab = load_label('camvid', s[0].label_path)
    assert lab.dtype == np.uint8 and set(np.unique(lab)) <= set(range(11)) | {255}


def test_camvid_test_split_layout_and_void(tmp_path):
    root = tmp_path / 'camvid'
    (root / 'test').mkdir(parents=True)
    (root / 'testannot').mkdir()
    for seq, fr in [('Seq05VD', 'f00010'), ('0001TP', '008550'), ('0001TP', '008520')]:
        name = f'{seq}_{fr}.png'
        cv2.imwrite(str(root / 'test' / name), np.zeros((4, 6, 3), np.uint8))
        cv2.imwrite(str(root / 'testannot' / name), np.array([[0, 10, 11, 3, 3, 3]] * 4, np.uint8))
    s = list_samples('camvid', tmp_path, 'test')
    assert [x.image_path.name for x in s] == ['0001TP_008520.png', '0001TP_008550.png', 'Seq05VD_f00010.png']
    lab = load_label('camvid', s[0].label_path)
    assert lab[0].tolist() == [0, 10, 255, 3, 3, 3]
    with pytest.raises(DatasetError, match='val'):
        list_samples('camvid', tmp_path, 'val')


def test_cityscapes_reader_maps_train_ids(shared_dir):
    (s,) = list_samples('cityscapes', shared_dir / 'data', 'val')
    assert s.sequence == 'frankfurt_000000' and s.frame_index == 294
    from PIL import Image
    raw = np.asarray(Image.open(s.label_path))       # a palette PNG: the indices are the label ids
    assert raw.ndim == 2 and 26 in raw
    lab = load_label('cityscapes', s.label_path)
    assert np.all(lab[raw == 7] == 0) and np.all(lab[raw == 26] == 13) and np.all(lab[raw == 33] == 18)
    assert np.all(lab[raw == 0] == 255) and np.all(lab[raw == 4] == 255)
    assert load_image(s.image_path).shape == (1024, 2048, 3)


@pytest.mark.parametrize('scale', [2, 6])
def test_lr_pipeline_equals_the_edge_bytes(shared_dir, scale):
    fs = FrameSet('camvid', shared_dir / 'data', 'val', scale, 75, limit=2)
    for hr, lr, n in zip(fs.hr, fs.lr, fs.nbytes):
        data = edge_encode(hr, scale, 75)
        assert n == len(data)
        assert np.array_equal(lr, decode_jpeg(data))
        assert lr.shape == (360 // scale, 480 // scale, 3)


def test_random_patch_is_aligned():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    lr = hr[::4, ::4]                                 # nearest "downsample" so alignment is checkable
    lab = rng.integers(0, 11, (48, 64), dtype=np.uint8)
    for _ in range(20):
        lp, hp, labp = random_patch(lr, hr, 4, 32, rng, extras=(lab,))
        assert lp.shape == (8, 8, 3) and hp.shape == (32, 32, 3) and labp.shape == (32, 32)
        # either both are flipped left-right or neither
        assert np.array_equal(hp[::4, ::4], lp) or np.array_equal(hp[:, ::-1][::4, ::4], lp[:, ::-1])
    whole = random_patch(lr, hr, 4, 0, rng, flip=False)
    assert np.array_equal(whole[1], hr)


def test_confusion_matrix_and_iou():
    gt = np.array([[0, 0, 1, 255], [2, 2, 1, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 2], [2, 0, 1, 1]], np.uint8)
    cm = confusion_matrix(pred, gt, 4)
    assert cm.dtype == np.int64 and cm.sum() == 7
    assert cm[0].tolist() == [1, 1, 0, 0] and cm[1].tolist() == [0, 3, 0, 0] and cm[2].tolist() == [1, 0, 1, 0]
    iou = class_iou(cm)
    assert iou[0] == pytest.approx(1 / 3) and iou[1] == pytest.approx(3 / 4) and iou[2] == pytest.approx(1 / 2)
    assert np.isnan(iou[3])
    assert miou(cm) == pytest.approx(np.mean([1 / 3, 3 / 4, 1 / 2]))
    with pytest.raises(ValueError):
        confusion_matrix(pred[:, :2], gt, 4)


def test_psnr_ssim():
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8), (7, 7), 2)
    assert psnr(a, a) == float('inf') and ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + 5, 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(float) - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / mse))
    assert psnr(a, b) == pytest.approx(cv2.PSNR(a, b))
    noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert 0 < ssim(a, noisy) < ssim(a, b) < 1
