"""Tail-aware profile selection on a synthetic accuracy table, its scoring from confusion matrices, and the
profile YAML (comments + data that round-trips)."""
import math

import numpy as np
import pytest
import yaml

from runespoor_tools.profile import (ConfigScore, budget_kbytes, profile_document, render_yaml, score_table,
                                       select_levels)

TABLE = [
    #            scale q   kB std kB tail acc std acc tail
    ConfigScore(8, 40, 1.0, 1.0, 0.40, 0.20),
    ConfigScore(4, 40, 2.0, 2.0, 0.55, 0.30),
    ConfigScore(4, 90, 4.5, 4.4, 0.65, 0.35),
    ConfigScore(2, 40, 5.0, 4.8, 0.63, 0.45),     # higher resolution, lower quality: the tail's choice
    ConfigScore(2, 90, 14.0, 13.0, 0.75, 0.60),
]


def test_budget():
    assert budget_kbytes(400, 10) == pytest.approx(5.0)          # 400 kbit/s / 8 / 10 frames/s
    with pytest.raises(ValueError):
        budget_kbytes(0, 10)


def test_select_standard_and_tail_within_budget():
    lv = {c.kbps: c for c in select_levels(TABLE, [40, 100, 400, 2000], 10.0)}
    # 0.5 kB/frame: nothing fits -> the smallest config, flagged
    assert (lv[40].standard.scale, lv[40].standard.quality, lv[40].standard_fits) == (8, 40, False)
    assert not lv[40].tail_fits
    # 1.25 kB: only x8 q40
    assert (lv[100].standard.scale, lv[100].tail.scale, lv[100].standard_fits) == (8, 8, True)
    # 5 kB: standard = best non-tail accuracy (x4 q90, 0.65 > 0.63); tail = best tail accuracy (x2 q40)
    assert (lv[400].standard.scale, lv[400].standard.quality) == (4, 90)
    assert (lv[400].tail.scale, lv[400].tail.quality) == (2, 40)
    assert lv[400].budget_kbytes == pytest.approx(5.0)
    # 25 kB: everything fits
    assert (lv[2000].standard.scale, lv[2000].standard.quality) == (2, 90)
    assert (lv[2000].tail.scale, lv[2000].tail.quality) == (2, 90)


def test_select_budget_per_frame_set_and_ties():
    # the tail config is held to its bytes on tail frames: 4.8 kB fits 4.9 kB, 5.0 kB (non-tail) does not
    lv = select_levels(TABLE, [8 * 4.9 * 10], 10.0)[0]
    assert (lv.standard.scale, lv.standard.quality) == (4, 90)
    assert (lv.tail.scale, lv.tail.quality) == (2, 40)
    # equal accuracy: fewer bytes wins
    tie = [ConfigScore(4, 90, 3.0, 3.0, 0.5, 0.5), ConfigScore(4, 60, 2.0, 2.0, 0.5, 0.5)]
    lv = select_levels(tie, [800], 10.0)[0]
    assert lv.standard.quality == 60 and lv.tail.quality == 60
    with pytest.raises(ValueError):
        select_levels([], [100], 10.0)


def test_tail_config_is_never_coarser_than_standard():
    table = [ConfigScore(4, 90, 4.0, 4.0, 0.70, 0.40),
             ConfigScore(8, 90, 1.8, 1.8, 0.50, 0.55),     # best on tail frames but coarser: not allowed
             ConfigScore(2, 40, 4.5, 4.5, 0.60, 0.45)]
    lv = select_levels(table, [400], 10.0)[0]
    assert (lv.standard.scale, lv.tail.scale, lv.tail.quality) == (4, 2, 40)
    lv = select_levels(table, [330], 10.0)[0]              # 4.125 kB: x2 q40 no longer fits
    assert (lv.standard.scale, lv.tail.scale) == (4, 4)


def test_score_table_accumulates_confusion_matrices():
    cms = np.array([
        [[1, 1], [1, 1]],     # frame 0: the tail frame
        [[4, 0], [0, 4]],
        [[3, 1], [0, 4]],
        [[4, 0], [1, 3]],
    ])
    t = np.array([True, False, False, False])
    row = score_table({(4, 90): cms}, {(4, 90): np.array([1000, 2000, 3000, 4000])}, t)[0]
    assert (row.scale, row.quality) == (4, 90)
    assert row.kbytes_tail == pytest.approx(1.0) and row.kbytes_std == pytest.approx(3.0)
    assert row.kbytes == pytest.approx(2.5)
    # tail: [[1,1],[1,1]] -> IoU 1/3 each; rest: [[11,1],[1,11]] -> 11/13 each
    assert row.acc_tail == pytest.approx(1 / 3)
    assert row.acc_std == pytest.approx(11 / 13)
    assert row.acc_all == pytest.approx(12 / 16)


def test_yaml_round_trips_with_comments():
    levels = select_levels(TABLE, [100, 400], 10.0)
    doc = profile_document(levels, 10.0, 0.0123456789, 0.01, 4, 'camvid')
    text = render_yaml(doc, levels, ['header line', ''])
    assert text.startswith('# header line\n#\n')
    assert '# 400 kbit/s = 5.00 kB/frame at 10 frames/s' in text
    assert 'tail     x2 q40: 4.80 kB on tail frames, tail mIoU 45.00 % (+10.00 vs standard)' in text
    loaded = yaml.safe_load(text)
    assert loaded == doc
    assert loaded['levels'][1] == {'bandwidth_kbps': 400.0, 'standard': {'scale': 4, 'jpeg_quality': 90},
                                   'tail': {'scale': 2, 'jpeg_quality': 40}}
    assert math.isclose(loaded['tail_detector']['tail_threshold'], 0.012346)
    assert loaded['tail_detector']['rule'] == 'below' and 'scale_thresholds' not in loaded['tail_detector']
    doc2 = profile_document(levels, 10.0, 0.05, 0.01, 4, 'camvid', 'above', {8: 0.1123456, 4: 0.07})
    loaded2 = yaml.safe_load(render_yaml(doc2, levels, ['h']))
    assert loaded2['tail_detector']['rule'] == 'above'
    assert loaded2['tail_detector']['scale_thresholds'] == {4: 0.07, 8: 0.112346}
    from runespoor_cloud.controller import parse_profile
    assert parse_profile(loaded2).tail_detector['scale_thresholds'][8] == pytest.approx(0.112346)
