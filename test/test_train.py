"""ASR/CloudSeg losses, the detailed-region mask, one optimisation step, and the `runespoor train` CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from runespoor_cloud import models
from runespoor_cloud.losses import ASRLoss, CloudSegLoss, DetailedRegionCE
from runespoor_cloud.tail import small_region_mask

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def seg():
    from runespoor_cloud.segmentation import Segmenter
    return Segmenter('espnet', dataset='camvid')


def _label_with_a_pole():
    lab = np.full((64, 96), 3, np.uint8)      # road everywhere ...
    lab[:20] = 0                              # ... sky on top
    lab[30:50, 40:42] = 2                     # a thin pole: 40 px of 6144, a small region
    lab[60:, :] = 255                         # void rows
    return lab


def test_detailed_mask_is_the_small_regions():
    lab = _label_with_a_pole()
    mask = small_region_mask(lab, 0.01, ignore=255, downsample=1)
    assert mask.dtype == bool and mask.shape == lab.shape
    assert mask[30:50, 40:42].all() and mask.sum() == 40      # only the pole; road, sky and void are not


def test_ce_counts_only_detailed_pixels():
    torch.manual_seed(0)
    lab = torch.from_numpy(_label_with_a_pole()).long()[None]
    mask = torch.from_numpy(small_region_mask(_label_with_a_pole(), 0.01, ignore=255, downsample=1))[None]
    logits = torch.randn(1, 11, 64, 96, requires_grad=True)
    ce = DetailedRegionCE()(logits, lab, mask)
    ref = F.cross_entropy(logits[0, :, 30:50, 40:42].reshape(11, -1).T, lab[0, 30:50, 40:42].reshape(-1))
    assert ce.item() == pytest.approx(ref.item(), rel=1e-5)
    ce.backward()
    g = logits.grad.abs().sum(1)[0]
    assert g[30:50, 40:42].min() > 0 and g.sum() == pytest.approx(g[30:50, 40:42].sum().item())
    # an empty mask gives 0 and still back-propagates
    z = DetailedRegionCE()(logits, lab, torch.zeros_like(mask))
    assert z.item() == 0.0 and z.requires_grad


def _tiny_batch(shared_dir, scale=4):
    from runespoor_cloud.frameset import FrameSet, random_patch
    fs = FrameSet('camvid', shared_dir / 'data', 'train', scale, 90, limit=1)
    rng = np.random.default_rng(0)
    outs = [random_patch(fs.lr[i], fs.hr[i], scale, 0, rng, extras=(          # whole frame
        fs.labels[i], small_region_mask(fs.labels[i], 0.01, ignore=255, downsample=1))) for i in range(1)]
    t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    return (t([o[0] for o in outs]), t([o[1] for o in outs]),
            torch.from_numpy(np.stack([o[2] for o in outs])).long(), torch.from_numpy(np.stack([o[3] for o in outs])))


def test_one_asr_step_reduces_the_loss(seg, shared_dir):
    from runespoor_cloud.models.carn import init_from_carn_m
    from runespoor_tools.train import train_one_step
    torch.manual_seed(0)
    model = models.build('carn_m', scale=4)
    init_from_carn_m(model, shared_dir / 'models/carn/carn_m.pth')
    lr, hr, lab, mask = _tiny_batch(shared_dir)
    assert mask.any()
    loss_fn = ASRLoss(seg, 0.95, 0.05)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    with torch.no_grad():
        before = loss_fn(model(lr), hr, lab, mask)[0].item()
    train_one_step(model, loss_fn, opt, (lr, hr, lab, mask))
    with torch.no_grad():
        after = loss_fn(model(lr), hr, lab, mask)[0].item()
    assert after < before
    assert all(p.grad is None for p in seg.model.parameters())      # the segmentation net stays frozen


def test_cloudseg_loss_is_zero_at_hr(seg):
    hr = torch.rand(1, 3, 32, 40)
    loss, parts = CloudSegLoss(seg, 0.95, 0.05)(hr.clone(), hr)
    assert loss.item() == pytest.approx(0.0, abs=1e-5) and parts['kl'] == pytest.approx(0.0, abs=1e-5)
    loss2, _ = CloudSegLoss(seg, 0.95, 0.05)(torch.rand(1, 3, 32, 40), hr)
    assert loss2.item() > 0.01


def test_train_cli_resumes_and_exports(tmp_path):
    from runespoor_cloud.restore import Restorer
    from runespoor_tools.train import main
    out, export = tmp_path / 'run', tmp_path / 'w' / 'camvid' / 'sr_x8.pt'
    common = ['sr', '--scale', '8', '--val-every', '1', '--val-limit', '2', '--train-limit', '3',
              '--batch-size', '2', '--out', str(out), '--export', str(export), '--threads', '1', '--resume']
    assert main(common + ['--steps', '1']) == 0
    assert (out / 'last.pt').is_file() and (out / 'best.pt').is_file() and export.is_file()
    assert torch.load(out / 'last.pt', map_location='cpu', weights_only=True)['step'] == 1
    assert main(common + ['--steps', '2']) == 0
    last = torch.load(out / 'last.pt', map_location='cpu', weights_only=True)
    assert last['step'] == 2 and len(last['history']) == 3 and 'optimizer' in last
    exp = torch.load(export, map_location='cpu', weights_only=True)
    assert all(v.dtype == torch.float16 for v in exp['state_dict'].values() if v.is_floating_point())
    r = Restorer({8: 'sr'}, weights_dir=tmp_path / 'w')
    assert r.restore(np.zeros((45, 60, 3), np.uint8), 8, (480, 360)).shape == (360, 480, 3)
