"""ESPNet loads both published files strictly and segments real CamVid/Cityscapes frames well."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from runespoor_cloud.metrics import class_iou, confusion_matrix, miou
from runespoor_cloud.models import ModelFileError
from runespoor_cloud.segmentation import Segmenter, load_segmentation_model
from runespoor_common.datasets import list_samples, load_image, load_label

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def camvid_seg():
    return Segmenter('espnet', dataset='camvid')


def test_both_published_files_load_strictly(shared_dir):
    cam = load_segmentation_model('espnet', shared_dir / 'models/espnet/espnet_p_2_q_8_camvid.pth')
    city = load_segmentation_model('espnet', shared_dir / 'models/espnet/espnet_p_2_q_8_cityscapes.pth')
    assert cam.skip == 'output0_cat' and city.skip == 'output0'
    assert cam.conv.conv.weight.shape[1] == 19 + 12 and city.conv.conv.weight.shape[1] == 16 + 20
    n_cam = sum(p.numel() for p in cam.parameters())
    n_city = sum(p.numel() for p in city.parameters())
    assert 0.35e6 < n_cam < 0.37e6 and 0.36e6 < n_city < 0.38e6


def test_segmenter_is_frozen_and_differentiable(camvid_seg):
    assert not camvid_seg.model.training
    assert all(not p.requires_grad for p in camvid_seg.model.parameters())
    x = torch.rand(1, 3, 45, 61, requires_grad=True)     # not a multiple of 8: padded inside
    logits = camvid_seg.forward_rgb01(x)
    assert logits.shape == (1, 11, 45, 61)                # the void logit is dropped
    logits[:, 3].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_camvid_val_miou_on_a_few_frames(camvid_seg, shared_dir):
    samples = list_samples('camvid', shared_dir / 'data', 'val')[::25]  # 5 frames spread over the split
    cm = np.zeros((11, 11), np.int64)
    for s in samples:
        pred = camvid_seg.predict(load_image(s.image_path))
        assert pred.dtype == np.uint8 and pred.shape == (360, 480) and pred.max() < 11
        cm += confusion_matrix(pred, load_label('camvid', s.label_path), 11)
    assert miou(cm) > 0.55        # ~0.69 over the whole val split (see models/README.md)


def test_cityscapes_frame(shared_dir):
    import cv2
    seg = Segmenter('espnet', dataset='cityscapes')
    (s,) = list_samples('cityscapes', shared_dir / 'data', 'val')
    img = cv2.resize(load_image(s.image_path), (1024, 512), interpolation=cv2.INTER_AREA)
    lab = cv2.resize(load_label('cityscapes', s.label_path), (1024, 512), interpolation=cv2.INTER_NEAREST)
    pred = seg.predict(img)
    assert pred.max() < 19
    cm = confusion_matrix(pred, lab, 19)
    # one hard frame (its big close car is read as a bus): pixel accuracy ~0.81, road IoU ~0.8
    assert np.diag(cm).sum() / cm.sum() > 0.75
    assert class_iou(cm)[0] > 0.7 and miou(cm) > 0.25


def test_bad_weight_files_raise_clear_errors(tmp_path, shared_dir):
    with pytest.raises(ModelFileError, match='missing'):
        Segmenter('espnet', weights=tmp_path / 'nope.pth')
    trunc = tmp_path / 'trunc.pth'
    trunc.write_bytes((shared_dir / 'models/espnet/espnet_p_2_q_8_camvid.pth').read_bytes()[:5000])
    with pytest.raises(ModelFileError, match='trunc.pth'):
        Segmenter('espnet', weights=trunc)
    sd = torch.load(shared_dir / 'models/espnet/espnet_p_2_q_8_camvid.pth', map_location='cpu', weights_only=True)
    sd['encoder.level1.conv.weight'] = torch.zeros(8, 3, 3, 3)
    bad = tmp_path / 'bad.pth'
    torch.save(sd, bad)
    with pytest.raises(ModelFileError, match='wrong shapes'):
        Segmenter('espnet', weights=bad)
