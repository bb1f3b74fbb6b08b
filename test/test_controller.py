"""CAC controller as pure logic: level choice, tail switching, hysteresis, bandwidth following, the
"never the same config twice" rule, reasons, reaction-time bookkeeping; and the shipped profile."""
import math
from pathlib import Path

import pytest

from runespoor_cloud.controller import STALE_LIMIT, CacController, ProfileError, load_profile, parse_profile

REPO = Path(__file__).resolve().parent.parent

DOC = {
    'dataset': 'test', 'frame_rate': 10.0,
    'levels': [  # deliberately out of order: the loader sorts by bandwidth
        {'bandwidth_kbps': 2000, 'standard': {'scale': 2, 'jpeg_quality': 90}, 'tail': {'scale': 1, 'jpeg_quality': 60}},
        {'bandwidth_kbps': 350, 'standard': {'scale': 6, 'jpeg_quality': 90}, 'tail': {'scale': 4, 'jpeg_quality': 70}},
        {'bandwidth_kbps': 700, 'standard': {'scale': 4, 'jpeg_quality': 90},
         'tail': {'scale': 2, 'jpeg_quality': 60, 'frame_rate': 5.0}},
    ]}


def ctl(return_after=3, kbps=None):
    return CacController(parse_profile(DOC, 'test.yaml'), return_after=return_after, bandwidth_kbps=kbps)


def test_profile_levels_sorted_and_frame_rate_inherited():
    p = parse_profile(DOC, 'test.yaml')
    assert [lv.bandwidth_kbps for lv in p.levels] == [350, 700, 2000]
    assert p.levels[0].standard.frame_rate == 10.0 and p.levels[1].tail.frame_rate == 5.0
    assert p.level_for(700).bandwidth_kbps == 700 and p.level_for(699.9).bandwidth_kbps == 350
    assert p.level_for(1e9).bandwidth_kbps == 2000
    assert p.level_for(10).bandwidth_kbps == 350      # below every level: the cheapest one
    dup = {**DOC, 'levels': DOC['levels'] + [DOC['levels'][0]]}
    with pytest.raises(ProfileError, match='profile dup.yaml: two levels have the same bandwidth_kbps'):
        parse_profile(dup, 'dup.yaml')


def test_profile_tail_detector_rule_and_scale_thresholds_are_validated():
    good = {**DOC, 'tail_detector': {'tail_threshold': 0.04, 'rule': 'above', 'scale_thresholds': {4: 0.06, 8: 0.1}}}
    assert parse_profile(good).tail_detector['scale_thresholds'] == {4: 0.06, 8: 0.1}
    for td, what in (({'rule': 'sideways'}, 'rule'), ({'scale_thresholds': [0.1]}, 'mapping'),
                     ({'scale_thresholds': {3: 0.1}}, 'scale_thresholds'),
                     ({'scale_thresholds': {4: 1.5}}, 'scale_thresholds'),
                     ({'scale_thresholds': {4: 'x'}}, 'scale_thresholds')):
        with pytest.raises(ProfileError, match=what):
            parse_profile({**DOC, 'tail_detector': td}, 'bad.yaml')


def test_start_and_tail_switch_at_once_with_reaction_time():
    c = ctl(kbps=700)
    d = c.start()
    assert (d.config.scale, d.config.jpeg_quality, d.tail_mode, d.config_id) == (4, 90, False, '700kbps/standard')
    assert 'start' in d.reason
    assert c.start() is None                                   # same config twice: nothing
    assert c.on_tail_report(False, 0.05) is None
    d = c.on_tail_report(True, 0.004, capture_stamp=100.0, now=100.35)
    assert (d.config.scale, d.config.jpeg_quality, d.config.frame_rate) == (2, 60, 5.0)
    assert d.tail_mode and d.config_id == '700kbps/tail' and 'tail frame' in d.reason and '0.0040' in d.reason
    assert d.reaction_s == pytest.approx(0.35) and c.reaction_times == [pytest.approx(0.35)]
    assert c.on_tail_report(True, 0.001, 101.0, 101.1) is None   # already in tail mode: no republish
    assert len(c.reaction_times) == 1


def test_hysteresis_needs_consecutive_non_tail_reports():
    c = ctl(return_after=3, kbps=700)
    c.start()
    c.on_tail_report(True, 0.0)
    assert c.on_tail_report(False, 0.05) is None
    assert c.on_tail_report(False, 0.05) is None
    assert c.on_tail_report(True, 0.0) is None                  # run broken: count starts again
    assert c.on_tail_report(False, 0.05) is None
    assert c.on_tail_report(False, 0.05) is None
    d = c.on_tail_report(False, 0.05)
    assert not d.tail_mode and d.config_id == '700kbps/standard' and '3 non-tail frames' in d.reason
    assert d.reaction_s is None


def test_stale_verdicts_from_frames_sent_before_the_switch_do_not_count():
    c = ctl(return_after=2, kbps=700)
    c.start()
    c.on_tail_report(True, 0.0, sent_with='700kbps/standard')
    # frames still in flight with the standard knobs: not evidence about the tail config
    for _ in range(3):
        assert c.on_tail_report(False, 0.05, sent_with='700kbps/standard') is None
    assert c.tail_mode
    assert c.on_tail_report(False, 0.05, sent_with='700kbps/tail') is None
    d = c.on_tail_report(False, 0.05, sent_with='')             # unknown knobs count
    assert d is not None and not d.tail_mode
    # an edge that never applies our knobs does not keep us in tail mode forever
    c.on_tail_report(True, 0.0)
    decisions = [c.on_tail_report(False, 0.05, sent_with='safe') for _ in range(STALE_LIMIT + 2)]
    assert decisions[:STALE_LIMIT] == [None] * STALE_LIMIT and not c.tail_mode


def test_bandwidth_following_keeps_the_mode():
    c = ctl(kbps=None)
    assert c.start().config_id == '2000kbps/standard'          # unknown bandwidth: the top level
    d = c.on_bandwidth(500)
    assert d.config_id == '350kbps/standard' and (d.config.scale, d.config.jpeg_quality) == (6, 90)
    assert '500' in d.reason and '2000 -> 350' in d.reason
    assert c.on_bandwidth(600) is None                          # same level: nothing
    assert c.on_bandwidth(float('nan')) is None and c.on_bandwidth(-1) is None
    c.on_tail_report(True, 0.0)
    d = c.on_bandwidth(5000)                                    # in tail mode: the new level's tail config
    assert d.config_id == '2000kbps/tail' and (d.config.scale, d.config.jpeg_quality) == (1, 60)
    assert c.on_bandwidth(math.inf) is None


def test_never_the_same_config_twice_in_a_row_over_a_long_run():
    import random
    rng = random.Random(3)
    c = ctl(return_after=2, kbps=700)
    ids = [c.start().config_id]
    for _ in range(2000):
        if rng.random() < 0.1:
            d = c.on_bandwidth(rng.choice([100, 400, 700, 1000, 2500, 9000]))
        else:
            d = c.on_tail_report(rng.random() < 0.2, 0.01)
        if d is not None:
            ids.append(d.config_id)
            assert d.config == (c.profile.level_for(d.bandwidth_kbps).tail if d.tail_mode
                                else c.profile.level_for(d.bandwidth_kbps).standard)
    assert len(ids) > 100 and all(a != b for a, b in zip(ids, ids[1:]))


def test_return_after_must_be_positive():
    with pytest.raises(ValueError, match='return_after'):
        ctl(return_after=0)


def test_shipped_camvid_profile():
    """The shipped (profiled) profile loads and is usable; the hand-made starting profile kept for tests
    is one resolution level finer at a lower quality."""
    p = load_profile(REPO / 'config/profiles/camvid.yaml')
    assert p.dataset == 'camvid' and len(p.levels) >= 3 and p.frame_rate > 0
    assert [lv.bandwidth_kbps for lv in p.levels] == sorted(lv.bandwidth_kbps for lv in p.levels)
    fixed = load_profile(REPO / 'test/data/profile_fixed.yaml')
    finer = {8: 6, 6: 4, 4: 2, 2: 1}
    for lv in fixed.levels:
        assert lv.tail.scale == finer[lv.standard.scale]
        assert lv.tail.jpeg_quality < lv.standard.jpeg_quality
    assert set(p.tail_detector) >= {'small_region_area', 'tail_threshold', 'downsample'}
