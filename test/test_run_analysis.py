"""Pure analysis of a demo run: schedule, phase rates, reaction times, frame accuracy, binning."""
import math

import numpy as np
import pytest

from runespoor_cloud.metrics import frame_miou
from runespoor_tools import run_analysis as ra
from runespoor_common.stats import summarize


def test_schedule_parse_and_paper_scaling():
    assert ra.parse_schedule('5:5000, 0:10000,12:2000') == [(0.0, 10000.0), (5.0, 5000.0), (12.0, 2000.0)]
    with pytest.raises(ValueError):
        ra.parse_schedule('0:-5')
    with pytest.raises(ValueError):
        ra.parse_schedule('0:nan')
    # 2048x1024 @ 17 fps is the paper's own setting: 10 / 5 / 2 / 10 Mbps at 0 / 5 / 12 / 19 s.
    assert ra.paper_schedule(2048, 1024, 17) == [(0.0, 10000.0), (5.0, 5000.0), (12.0, 2000.0), (19.0, 10000.0)]
    s = ra.paper_schedule(480, 360, 15, time_scale=0.5)
    assert [t for t, _ in s] == [0, 2.5, 6, 9.5]
    assert s[0][1] == pytest.approx(10000 * 480 * 360 * 15 / (2048 * 1024 * 17), abs=0.1)


def _frame(seq, stamp, send, nbytes=1000, tail=False):
    return ra.SentFrame(seq, stamp, send, nbytes, 4, 90, 'x', tail)


def test_kbps_per_phase():
    sent = [_frame(i, 100 + i * 0.5, 100 + i * 0.5 + 0.01, 1250) for i in range(20)]  # 2 fps, 10 kbit
    rows = ra.kbps_per_phase(sent, [(0, 50), (5, 20)], t0=100, end=10)
    assert [r['frames'] for r in rows] == [10, 10]
    assert rows[0]['sent_kbps'] == pytest.approx(20.0) and rows[1]['budget_kbps'] == 20


def test_reaction_time_from_tail_frame_to_first_tail_config_frame():
    sent = [_frame(0, 10.0, 10.05), _frame(1, 10.2, 10.25), _frame(2, 10.4, 10.45, tail=True),
            _frame(3, 10.6, 10.65, tail=True), _frame(4, 11.0, 11.05), _frame(5, 11.2, 11.3, tail=True)]
    tails = [ra.TailEvent(10.0, 10.3, 0.001, True),      # judged frame sent standard -> reacts at 10.45
             ra.TailEvent(10.4, 10.7, 0.001, True),      # already in tail mode: nothing to react to
             ra.TailEvent(11.0, 11.1, 0.5, False),
             ra.TailEvent(11.0, 11.2, 0.001, True)]      # -> 11.3
    rt = ra.reaction_times(tails, sent)
    assert rt == pytest.approx([0.45, 0.3])
    summary = summarize(rt, scale=1000.0)
    assert summary['median'] == pytest.approx(375.0) and summary['n'] == 2


def test_frame_miou_over_classes_present():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 7, 7]], np.uint8)
    # class 0: inter 1, union 3 (gt 2 + pred 2 - 1); class 1: inter 2, union 3; class 2: inter 1, union 2
    assert frame_miou(pred, gt, 11) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert math.isnan(frame_miou(pred, np.full_like(gt, 255), 11))


def test_per_second_bins_and_timeline_plot(tmp_path):
    v = ra.per_second([0.1, 0.6, 1.2, 3.9], [1.0, 0.5, 0.2, 0.4], t0=0.0, end=4.0)
    assert v[0] == pytest.approx(0.75) and v[1] == pytest.approx(0.2) and math.isnan(v[2]) and v[3] == 0.4
    path = tmp_path / 't.png'
    secs = np.arange(4.0)
    ra.plot_timeline(path, secs, {'ASR+CAC': v, 'ASR only': v * 0.9}, np.ones(4), np.ones(4) * 2,
                     [(1.2, 2.5)], [1.0], 'test', level_changes=[0.5], sent_tail_kbps=np.array([0, .5, .5, 0]))
    assert path.stat().st_size > 10000


def test_tail_spans_from_knob_events():
    ev = lambda t, tail: ra.KnobEvent(t, 'x', tail, '')  # noqa: E731
    knobs = [ev(100.0, False), ev(101.0, True), ev(102.5, False), ev(103.0, False), ev(104.0, True),
             ev(98.0, True), ev(99.5, True)]         # out of order: sorted by time
    # 98 opens a span closed at 100 (= t0: nothing left of it), 101-102.5, 104 still open at the end
    assert ra.tail_spans(knobs, t0=100.0, end=6.0) == [(1.0, 2.5), (4.0, 6.0)]
    # one second earlier t0: the first span is clipped to start at 0
    assert ra.tail_spans(knobs, t0=99.0, end=6.0) == [(0.0, 1.0), (2.0, 3.5), (5.0, 6.0)]


def test_sent_frames_found_by_float_or_integer_stamp():
    ns = 1_796_208_255_874_769_425                  # a header stamp in ns, as the monitor keys images
    as_float = 1_796_208_255 + 874_769_425 * 1e-9     # the same stamp as float seconds (SentFrame.stamp)
    assert int(round(as_float * 1e9)) != ns           # why exact keys from floats fail
    idx = ra.StampIndex([_frame(0, as_float, as_float + 0.1), _frame(1, as_float + 0.0667, as_float + 0.2)])
    assert idx.get(ns * 1e-9).seq == 0 and idx.get(as_float + 0.0667).seq == 1
    assert idx.get(as_float + 0.0005 + 0.0005) is None and idx.get(as_float + 0.03) is None


def test_baseline_config_follows_the_live_level():
    from runespoor_cloud.controller import parse_profile
    from runespoor_tools.demo import baseline_config
    prof = parse_profile({'frame_rate': 10.0, 'levels': [
        {'bandwidth_kbps': 100, 'standard': {'scale': 8, 'jpeg_quality': 60}, 'tail': {'scale': 6, 'jpeg_quality': 40}},
        {'bandwidth_kbps': 700, 'standard': {'scale': 2, 'jpeg_quality': 70}, 'tail': {'scale': 2, 'jpeg_quality': 70}}]})
    live = ra.SentFrame(0, 1.0, 1.1, 900, 6, 40, '100kbps/tail', True, level_kbps=100.0)
    # the bandwidth is back at 727 kbit/s, but the live controller was still at the 100 level for this frame
    assert baseline_config(prof, live, 727.0).scale == 8
    assert baseline_config(prof, None, 727.0).scale == 2          # frame not seen: the schedule's level
    assert baseline_config(prof, ra.SentFrame(0, 1, 1, 1, 4, 90, '', False), 150.0).scale == 8
