"""`runespoor eval`, `report` and `profile` for real on three shared CamVid val frames (bilinear + hr only,
one torch thread): the JSON fields, consistency with an independent computation, the cache, a missing-weights
skip, the report's tables/figures, and a profile YAML."""
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from runespoor_tools import evaluate, report
from runespoor_tools import profile as profiling
from runespoor_cloud.metrics import psnr
from runespoor_common.datasets import list_samples, load_image
from runespoor_edge.codec import edge_roundtrip

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parent.parent.parent / 'shared'
DATA, MODELS = SHARED / 'data', SHARED / 'models'
COMMON = ['--data-root', str(DATA), '--model-dir', str(MODELS), '--threads', '1']


@pytest.fixture(scope='module', autouse=True)
def _shared():
    if not (DATA / 'camvid' / 'val').is_dir():
        pytest.fail(f'shared CamVid data is missing ({DATA}/camvid/val); these tests read real frames')


FIELDS = ('miou', 'class_iou', 'tail_classes', 'tail_miou', 'tail_miou_normalized', 'frame_p90', 'frame_p99',
          'frame_mean', 'psnr', 'ssim', 'kbytes_per_frame', 'frames')


@pytest.fixture(scope='module')
def eval_out(tmp_path_factory):
    out = tmp_path_factory.mktemp('eval')
    cache = tmp_path_factory.mktemp('cache')
    argv = COMMON + ['--split', 'val', '--limit', '3', '--scales', '4,8', '--methods', 'bilinear,hr',
            '--jpeg-quality', '90', '--episode-length', '1', '--cache-dir', str(cache), '--out', str(out)]
    assert evaluate.main(argv) == 0
    return out, cache, argv


def test_eval_metrics_json(eval_out):
    out, _, _ = eval_out
    m = json.loads((out / 'metrics.json').read_text())
    assert m['kind'] == 'runespoor-eval' and m['frames'] == 3 and m['split'] == 'val'
    rows = {(r['method'], r['scale'], r['quality']): r for r in m['results']}
    assert set(rows) == {('hr', 1, None), ('bilinear', 4, 90), ('bilinear', 8, 90)}
    names = m['class_names']
    for key, r in rows.items():
        for f in FIELDS:
            assert f in r, (key, f)
        assert r['frames'] == 3 and set(r['class_iou']) == set(names)
        assert 0.0 < r['miou'] <= 1.0
        # episode length 1: episodes are the frames, percentiles of the per-frame mIoU
        assert r['episodes'] == 3
        assert r['frame_p90'] == pytest.approx(np.percentile(r['frame_miou'], 10))
        assert r['frame_p99'] == pytest.approx(np.percentile(r['frame_miou'], 1))
        assert r['frame_mean'] == pytest.approx(np.mean(r['frame_miou']))
    hr = rows[('hr', 1, None)]
    assert hr['kbytes_per_frame'] is None and hr['psnr'] is None
    samples = list_samples('camvid', DATA, 'val')[:3]
    for s in (4, 8):
        r = rows[('bilinear', s, 90)]
        assert len(r['tail_classes']) == len(names) // 2
        # the tail set: lowest IoU(bilinear)/IoU(HR)
        ratio = {c: r['class_iou'][c] / hr['class_iou'][c] for c in names
                 if r['class_iou'][c] is not None and hr['class_iou'][c]}
        worst = sorted(ratio, key=ratio.get)[:len(names) // 2]
        assert sorted(worst) == sorted(r['tail_classes'])
        vals = [r['class_iou'][c] for c in r['tail_classes'] if r['class_iou'][c] is not None]
        assert r['tail_miou'] == pytest.approx(np.mean(vals))
        hr_vals = [hr['class_iou'][c] for c in r['tail_classes'] if hr['class_iou'][c] is not None]
        assert r['tail_miou_normalized'] == pytest.approx(np.mean(vals) / np.mean(hr_vals))
        # bytes and PSNR recomputed independently from the edge encoding and a bilinear resize
        ps, nb = [], []
        for smp in samples:
            img = load_image(smp.image_path)
            lr, n = edge_roundtrip(img, s, 90)
            nb.append(n)
            ps.append(psnr(cv2.resize(lr, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR), img))
        assert r['kbytes_per_frame'] == pytest.approx(np.mean(nb) / 1000)
        assert r['psnr'] == pytest.approx(np.mean(ps))
        assert 0 < r['ssim'] < 1
    assert rows[('bilinear', 8, 90)]['miou'] < hr['miou']


def test_eval_cache_rerun_is_identical(eval_out):
    out, cache, argv = eval_out
    assert len(list(Path(cache).glob('*.npz'))) == 3
    out2 = out.parent / (out.name + '_again')
    argv2 = argv[:-1] + [str(out2)]
    assert evaluate.main(argv2) == 0
    a = json.loads((out / 'metrics.json').read_text())['results']
    b = json.loads((out2 / 'metrics.json').read_text())['results']
    assert [r['miou'] for r in a] == [r['miou'] for r in b]
    assert [r['frame_miou'] for r in a] == [r['frame_miou'] for r in b]


def test_eval_skips_methods_without_weights(tmp_path, capsys):
    empty = tmp_path / 'weights'
    empty.mkdir()
    argv = COMMON + ['--split', 'val', '--limit', '2', '--scales', '8', '--methods', 'sr,asr,hr',
            '--weights-dir', str(empty), '--no-cache', '--no-image-quality', '--out', str(tmp_path / 'o')]
    assert evaluate.main(argv) == 0
    err = capsys.readouterr().err
    assert 'skipping sr x8: weight file' in err and 'is missing' in err
    m = json.loads((tmp_path / 'o' / 'metrics.json').read_text())
    assert {(s['method'], s['scale']) for s in m['skipped']} == {('sr', 8), ('asr', 8)}
    assert {r['method'] for r in m['results']} == {'hr', 'bilinear'}


def test_eval_bad_split_is_a_clear_error(tmp_path, capsys):
    rc = evaluate.main(['--split', 'test', '--data-root', str(tmp_path), '--model-dir', str(MODELS),
                        '--out', str(tmp_path / 'o')])
    assert rc == 2
    assert 'split folder' in capsys.readouterr().err


def test_report_from_eval(eval_out, tmp_path):
    out, _, _ = eval_out
    rdir = tmp_path / 'report'
    assert report.main([str(out / 'metrics.json'), '--out', str(rdir)]) == 0
    md = (rdir / 'report.md').read_text()
    for heading in ('Table I', 'Table II', 'Table III', 'Table IV', 'Fig. 7', 'Fig. 10', 'Fig. 11', 'Fig. 6'):
        assert heading in md
    for png in ('fig7_classwise_x4.png', 'fig10_episodes.png', 'fig11_accuracy_bandwidth.png',
                'fig6_tail_detection.png'):
        assert (rdir / png).stat().st_size > 5000
        assert f']({png})' in md
    assert 'runespoor eval' in md


def test_profile_tiny(tmp_path):
    yml, js = tmp_path / 'camvid.yaml', tmp_path / 'profile.json'
    argv = COMMON + ['--limit', '3', '--val-limit', '3', '--scales', '1,8', '--qualities', '50,90', '--reference', '8:90',
            '--methods', '', '--bandwidths', '100,5000', '--frame-rate', '10',
            '--cache-dir', str(tmp_path / 'cache'), '--out', str(yml), '--json', str(js)]
    assert profiling.main(argv) == 0
    doc = yaml.safe_load(yml.read_text())
    assert doc['dataset'] == 'camvid' and doc['frame_rate'] == 10.0
    assert [lv['bandwidth_kbps'] for lv in doc['levels']] == [100.0, 5000.0]
    for lv in doc['levels']:
        for k in ('standard', 'tail'):
            assert lv[k]['scale'] in (1, 8) and lv[k]['jpeg_quality'] in (50, 90)
    assert 0.0 <= doc['tail_detector']['tail_threshold'] <= 1.0
    text = yml.read_text()
    assert '# tail_threshold: linear regression' in text and 'recall' in text
    p = json.loads(js.read_text())
    assert p['restoration'] == {'1': 'none', '8': 'bilinear'}
    assert p['tail_frames'] == 1 and len(p['table']) == 4
    # 5000 kbit/s at 10 frames/s = 62.5 kB: the full-resolution frame fits and wins on the non-tail frames
    assert doc['levels'][1]['standard']['scale'] == 1
    assert not math.isnan(p['val_detection'][0]['recall'])
    # the CAC controller loads what profile writes
    from runespoor_cloud.controller import load_profile
    prof = load_profile(yml)
    assert [lv.bandwidth_kbps for lv in prof.levels] == [100.0, 5000.0]
    assert prof.level_for(6000).standard.scale == 1 and prof.frame_rate == 10.0
    assert prof.tail_detector['tail_threshold'] == doc['tail_detector']['tail_threshold']
    # the rule comes from the fit, and every profiled scale has its own threshold
    td = doc['tail_detector']
    assert td['rule'] == p['rule'] == ('below' if p['threshold']['slope'] > 0 else 'above')
    assert set(td['scale_thresholds']) == {1, 8} and all(0 <= v <= 1 for v in td['scale_thresholds'].values())
    assert td['scale_thresholds'][8] == pytest.approx(p['scale_thresholds']['8']['threshold'], abs=1e-6)
    assert 'scale_thresholds: the same fit per scale' in text and f"rule: '{td['rule']}'" in text


def test_eval_on_a_camvid_test_split(tmp_path):
    # the CamVid layout's test/ + testannot/ (not shared; a user will have it): two real frames copied there
    import shutil
    root = tmp_path / 'data'
    (root / 'camvid' / 'test').mkdir(parents=True)
    (root / 'camvid' / 'testannot').mkdir()
    for s in list_samples('camvid', DATA, 'val')[:2]:
        shutil.copy(s.image_path, root / 'camvid' / 'test' / s.image_path.name)
        shutil.copy(s.label_path, root / 'camvid' / 'testannot' / s.label_path.name)
    out = tmp_path / 'o'
    argv = ['--data-root', str(root), '--model-dir', str(MODELS), '--threads', '1', '--split', 'test',
            '--scales', '8', '--methods', 'bilinear,hr', '--no-cache', '--no-image-quality', '--out', str(out)]
    assert evaluate.main(argv) == 0
    m = json.loads((out / 'metrics.json').read_text())
    assert m['split'] == 'test' and m['frames'] == 2
    assert all(r['frames'] == 2 and 0 < r['miou'] <= 1 for r in m['results'])


def test_parse_size():
    assert evaluate.parse_size('native', 'camvid') == (480, 360)
    assert evaluate.parse_size('native', 'cityscapes') == (1024, 512)
    assert evaluate.parse_size('source', 'cityscapes') is None
    assert evaluate.parse_size('640x320', 'camvid') == (640, 320)
    with pytest.raises(evaluate.EvalError, match='--size'):
        evaluate.parse_size('12x', 'camvid')
