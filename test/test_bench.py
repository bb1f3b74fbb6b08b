"""`runespoor bench` on a tiny configuration: the JSON it writes has the documented schema and every
measurement is a real median/p95 over its repetitions. No timing assertions."""
import json

import pytest

from runespoor_tools import bench


def test_summarize_median_and_p95():
    s = bench.summarize([float(v) for v in range(1, 101)])
    assert s['n'] == 100 and s['median_ms'] == 50.5 and s['min_ms'] == 1.0
    assert 95.0 <= s['p95_ms'] <= 96.0
    assert bench.summarize([])['median_ms'] is None


def test_bench_tiny_run_writes_schema(tmp_path, capsys):
    import torch
    torch.set_num_threads(1)
    out = tmp_path / 'bench.json'
    rc = bench.main(['--quick', '--no-ros', '--silent', '--threads', '1', '--reps', '1', '--sizes', '96x64',
                     '--scales', '4', '--methods', 'bilinear', 'asr', '--out', str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res['schema'] == bench.SCHEMA and res['quick'] is True
    m = res['machine']
    for key in ('cpu_model', 'cores_available', 'torch_threads', 'device', 'torch', 'opencv', 'loadavg_start',
                'loadavg_end', 'other_busy_processes'):
        assert key in m, key
    assert m['torch_threads'] == 1 and m['device'] == 'cpu'
    assert res['config']['sizes'] == ['96x64'] and res['config']['weights']['asr']['4']
    timed = ('edge', 'decode', 'restore', 'segmentation', 'tail', 'chain')
    for section in timed:
        assert res[section], section
        for row in res[section]:
            assert row['n'] >= 1 and 0 < row['median_ms'] <= row['p95_ms'], (section, row)
    assert {r['scale'] for r in res['edge']} == {1, 4}
    assert {(r['method'], r['impl']) for r in res['restore']} == \
        {('bilinear', 'naive'), ('bilinear', 'optimized'), ('asr', 'naive'), ('asr', 'optimized')}
    chain = {(r['method'], r['impl']): r for r in res['chain']}
    assert set(chain) == {('asr', 'naive'), ('asr', 'optimized'), ('bilinear', 'naive'), ('bilinear', 'optimized')}
    for r in chain.values():
        assert r['fps'] == pytest.approx(1000.0 / r['median_ms'], rel=0.01)
        assert set(r['stages_median_ms']) == {'decode', 'restore', 'segment', 'tail', 'total'}
    fid = res['fidelity'][0]
    assert 0.0 <= fid['label_agreement_min'] <= 1.0 and isinstance(fid['within_tolerance'], bool)
    assert 0.0 <= fid['noise_floor_agreement_min'] <= 1.0 and fid['agreement_bound'] <= 0.99
    ratio = res['ratios']['optimized_over_naive_chain_asr_96x64_x4']
    assert ratio == pytest.approx(chain[('asr', 'optimized')]['median_ms'] / chain[('asr', 'naive')]['median_ms'],
                                  abs=1e-3)
    assert 'asr_over_bilinear_restore_naive_96x64_x4' in res['ratios']
    assert [t['target'] for t in res['targets']][:2] == ['cloud chain 480x360 asr x4', 'cloud chain 480x360 asr x2']
    assert 'transport' not in res and 'control' not in res
    # the Markdown view of the same file
    assert bench.main(['--markdown', str(out)]) == 0
    md = capsys.readouterr().out
    assert '| 96x64 | asr | x4 | optimized |' in md and '**Targets**' in md


def test_bench_rejects_bad_arguments(tmp_path, capsys):
    assert bench.main(['--scales', '3', '--no-ros', '--out', str(tmp_path / 'x.json')]) == 2
    assert bench.main(['--device', 'tpu', '--out', str(tmp_path / 'x.json')]) == 2
    assert bench.main(['--markdown', str(tmp_path / 'missing.json')]) == 2
    assert not (tmp_path / 'x.json').exists()
