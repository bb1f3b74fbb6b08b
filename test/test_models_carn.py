"""CARN / CARN-M shapes per scale, CARN-M initialisation, checkpoint round trip, the restorer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from runespoor_cloud import models
from runespoor_cloud.models import ModelFileError, load_checkpoint, save_checkpoint
from runespoor_cloud.models.carn import init_from_carn_m
from runespoor_cloud.restore import METHODS, Restorer

torch.set_num_threads(1)


@pytest.mark.parametrize('arch', ['carn', 'carn_m'])
@pytest.mark.parametrize('scale', [2, 4, 6, 8])
def test_output_shape_per_scale(arch, scale):
    m = models.build(arch, scale=scale).eval()
    with torch.no_grad():
        y = m(torch.rand(2, 3, 9, 13))
    assert y.shape == (2, 3, 9 * scale, 13 * scale)


@pytest.mark.parametrize('scale', [2, 4, 6, 8])
def test_carn_m_initialisation_fills_every_tensor(scale, shared_dir):
    m = models.build('carn_m', scale=scale)
    report = init_from_carn_m(m, shared_dir / 'models/carn/carn_m.pth')
    assert report['skipped'] == []
    src = torch.load(shared_dir / 'models/carn/carn_m.pth', map_location='cpu', weights_only=True)
    assert torch.equal(m.state_dict()['b2.b1.body.0.weight'], src['b2.b1.body.0.weight'])
    first_up = {2: 'up2', 4: 'up4', 6: 'up3', 8: 'up4'}[scale]
    assert torch.equal(m.state_dict()['upsample.body.0.weight'], src[f'upsample.{first_up}.body.0.weight'])


def test_checkpoint_round_trip(tmp_path):
    m = models.build('carn_m', scale=4).eval()
    path = save_checkpoint(tmp_path / 'sub' / 'm.pt', m, 'carn_m', {'scale': 4}, step=7)
    assert not list(path.parent.glob('*.tmp'))
    m2, ck = load_checkpoint(path)
    assert ck['step'] == 7 and ck['arch'] == 'carn_m'
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    # fp16 export loads into an fp32 model, close to the original
    half = save_checkpoint(tmp_path / 'h.pt', m, 'carn_m', {'scale': 4}, half=True)
    m3, _ = load_checkpoint(half)
    with torch.no_grad():
        assert torch.allclose(m(x), m3(x), atol=2e-2)


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(ModelFileError, match='missing'):
        load_checkpoint(tmp_path / 'none.pt')
    m = models.build('carn_m', scale=2)
    p = save_checkpoint(tmp_path / 'a.pt', m, 'carn_m', {'scale': 2})
    trunc = tmp_path / 'trunc.pt'
    trunc.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(ModelFileError, match='trunc.pt.*truncated or unreadable'):
        load_checkpoint(trunc)
    ck = torch.load(p, map_location='cpu', weights_only=True)
    ck['model_args'] = {'scale': 4}        # x2 weights claimed as x4: the upsampler no longer fits
    torch.save(ck, tmp_path / 'wrong.pt')
    with pytest.raises(ModelFileError, match='wrong.pt.*(missing keys|unexpected keys)'):
        load_checkpoint(tmp_path / 'wrong.pt')


def test_restorer_bilinear_and_missing_weights(tmp_path):
    assert METHODS == ('bilinear', 'sr', 'asr', 'cloudseg')
    r = Restorer({2: 'bilinear', 6: 'bilinear'}, weights_dir=tmp_path)
    lr = np.random.default_rng(0).integers(0, 255, (170, 341, 3), dtype=np.uint8)
    out = r.restore(lr, 6, source_size=(2048, 1024))
    assert out.shape == (1024, 2048, 3) and out.dtype == np.uint8
    assert r.restore(lr, 1) is lr
    with pytest.raises(ModelFileError, match='asr_x4.pt.*missing'):
        Restorer({4: 'asr'}, weights_dir=tmp_path)


def test_restorer_loads_model_and_resizes_to_source(tmp_path):
    m = models.build('carn_m', scale=6)
    save_checkpoint(tmp_path / 'camvid' / 'sr_x6.pt', m, 'carn_m', {'scale': 6}, half=True)
    r = Restorer({6: 'sr'}, weights_dir=tmp_path)
    lr = np.full((10, 11, 3), 128, np.uint8)
    out = r.restore(lr, 6, source_size=(67, 62))     # floor() made the LR frame smaller than source / 6
    assert out.shape == (62, 67, 3)
    save_checkpoint(tmp_path / 'camvid' / 'sr_x4.pt', m, 'carn_m', {'scale': 6})
    with pytest.raises(ModelFileError, match='x6, expected x4'):
        Restorer({4: 'sr'}, weights_dir=tmp_path)


def test_committed_weights_load_in_the_restorer():
    from runespoor_common import paths
    d = paths.weights_dir() / 'camvid'
    files = sorted(d.glob('*_x*.pt'))
    assert files, f'no trained weights under {d}'
    for f in files:
        method, scale = f.stem.split('_x')
        r = Restorer({int(scale): method})
        lr = np.zeros((360 // int(scale), 480 // int(scale), 3), np.uint8)
        assert r.restore(lr, int(scale), (480, 360)).shape == (360, 480, 3)
