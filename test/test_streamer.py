"""Edge logic without ROS: knobs, the emulated uplink (token bucket + schedule), the streamer."""
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from runespoor_edge.codec import decode_jpeg
from runespoor_edge.knobs import KnobError, KnobSettings
from runespoor_edge.link import LinkError, Schedule, TokenBucketLink
from runespoor_edge.streamer import FrameRateGate, Streamer


def textured(w, h, seed=0):
    """A natural-looking frame: smooth gradients + blobs + noise (JPEG size depends on quality)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], axis=2)
    for _ in range(30):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(5, max(6, w // 8))
        cv2.circle(img, (int(cx), int(cy)), int(r), rng.integers(0, 255, 3).tolist(), -1)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


# ---------------------------------------------------------------------------------------- knobs
@pytest.mark.parametrize('scale,size', [(1, (2048, 1024)), (2, (1024, 512)), (4, (512, 256)),
                                        (6, (341, 170)), (8, (256, 128))])
def test_knob_sizes_cityscapes(scale, size):
    img = textured(2048, 1024)
    s = Streamer(KnobSettings(scale=scale, jpeg_quality=80))
    res = s.on_frame(img, 0.0, now=0.0)
    assert len(res.sent) == 1
    p = res.sent[0]
    assert p.source_size == (2048, 1024)
    assert decode_jpeg(p.data).shape == (size[1], size[0], 3)


def test_bytes_decrease_with_quality():
    img = textured(480, 360, seed=3)
    sizes = []
    for q in (40, 50, 60, 70, 80, 90, 95):
        s = Streamer(KnobSettings(scale=2, jpeg_quality=q))
        sizes.append(s.on_frame(img, 0.0, now=0.0).sent[0].nbytes)
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes


@pytest.mark.parametrize('bad', [dict(scale=3), dict(scale=0), dict(scale=16), dict(jpeg_quality=39),
                                 dict(jpeg_quality=96), dict(frame_rate=-1.0), dict(frame_rate=math.nan),
                                 dict(frame_rate=math.inf), dict(scale=2.0), dict(bandwidth_kbps=-5.0)])
def test_invalid_knobs_rejected_previous_kept(bad):
    s = Streamer(KnobSettings(scale=2, jpeg_quality=70, config_id='good'))
    with pytest.raises(KnobError):
        s.set_knobs(KnobSettings(**{**dict(scale=4, jpeg_quality=60), **bad}))
    assert s.knobs.config_id == 'good' and s.knobs.scale == 2 and s.knobs.jpeg_quality == 70
    p = s.on_frame(textured(64, 48), 0.0, now=0.0).sent[0]
    assert p.knobs.config_id == 'good' and decode_jpeg(p.data).shape == (24, 32, 3)


def test_knob_error_names_the_knob():
    with pytest.raises(KnobError, match='scale must be one of'):
        KnobSettings(scale=5).validated()
    with pytest.raises(KnobError, match='jpeg_quality'):
        KnobSettings(jpeg_quality=100).validated()


def test_knob_switch_applies_on_next_frame():
    img = textured(480, 360)
    s = Streamer(KnobSettings(scale=1, jpeg_quality=90, config_id='a'))
    shapes = []
    for i in range(6):
        if i == 3:
            s.set_knobs(KnobSettings(scale=4, jpeg_quality=50, config_id='b'))
        p = s.on_frame(img, i / 30, now=i / 30).sent[0]
        shapes.append((p.knobs.config_id, decode_jpeg(p.data).shape[:2]))
    assert shapes[:3] == [('a', (360, 480))] * 3
    assert shapes[3:] == [('b', (90, 120))] * 3


def test_frame_rate_knob_skips_and_switch_is_immediate():
    s = Streamer(KnobSettings(scale=8, jpeg_quality=50, frame_rate=10.0))
    img = textured(160, 120)
    sent = [i for i in range(30) if s.on_frame(img, i / 30, now=i / 30).sent]
    assert sent == list(range(0, 30, 3))  # 30 fps camera -> every 3rd frame at 10 fps
    # switching to 'every frame' takes effect on the very next frame, even mid-period
    s.set_knobs(KnobSettings(scale=8, jpeg_quality=50, frame_rate=0.0))
    assert s.on_frame(img, 31 / 30, now=31 / 30).sent


@pytest.mark.parametrize('cam,rate', [(30.0, 12.0), (30.0, 5.0), (17.0, 8.5), (25.0, 24.0)])
def test_frame_rate_gate_average(cam, rate):
    g = FrameRateGate()
    n = int(cam * 20)
    admitted = sum(g.admit(i / cam, rate) for i in range(n))
    assert abs(admitted / 20 - rate) <= 0.1 * rate


def test_knobs_msg_roundtrip_needs_no_rclpy():
    k = KnobSettings(scale=6, jpeg_quality=41, frame_rate=7.5, tail_mode=True, bandwidth_kbps=2000,
                     config_id='2000kbps/tail', reason='tail frame').validated()
    try:
        msg = k.to_msg()
    except ImportError:
        pytest.fail('runespoor.msg is not importable (build the package with make setup)')
    assert KnobSettings.from_msg(msg) == k
    msg.scale = 3
    with pytest.raises(KnobError):
        KnobSettings.from_msg(msg)


# ---------------------------------------------------------------------------------------- link
def test_schedule_parse_and_rate():
    s = Schedule.parse('0:10000, 5:5000,12:2000,19:10000')
    assert [s.rate_at(t) for t in (0, 4.99, 5, 11, 12, 18.9, 19, 1e6)] == \
        [10000, 10000, 5000, 5000, 2000, 2000, 10000, 10000]
    assert s.kbit_between(4, 6) == pytest.approx(15000)
    assert s.format() == '0:10000,5:5000,12:2000,19:10000'
    for bad in ('', '5:100', '0:100,0:200', '0:-5', '0:abc', '0:100;3:5'):
        with pytest.raises(LinkError):
            Schedule.parse(bad)


def test_link_unlimited_passes_everything():
    link = TokenBucketLink(bandwidth_kbps=0)
    for i in range(100):
        rel, drop = link.offer(i, 10_000_000, now=i * 0.001)
        assert [r.payload for r in rel] == [i] and not drop


def test_link_drop_policy_rate():
    """40 kB frames at 30 fps into 2 Mbit/s: each frame is 0.16 s on the wire; frames that arrive while
    one is on the wire are dropped, so a little under 2e6 / 320e3 = 6.25 frames/s get through."""
    link = TokenBucketLink(bandwidth_kbps=2000, policy='drop')
    sent, reasons = [], set()
    for i in range(30 * 20):
        rel, drop = link.offer(i, 40_000, now=i / 30)
        sent += [r.released for r in rel]
        reasons |= {d.reason for d in drop}
    rate = len(sent) / 20
    assert 0.8 * 6.25 <= rate <= 6.25 and reasons == {'busy'}
    assert sum(1 for t in sent if t <= 10.0) * 320e3 <= 2000e3 * 10.0  # cumulative budget


def test_frame_takes_its_transmission_time():
    link = TokenBucketLink(bandwidth_kbps=1000)       # burst 0: an idle link earns nothing
    link.start(0.0)
    rel, drop = link.offer('a', 25_000, now=0.5)      # 200 kbit at 1 Mbit/s: 0.2 s on the wire
    assert not rel and not drop and link.next_release_time(0.5) == pytest.approx(0.7)
    assert not link.poll(0.69)[0]
    (r,), _ = link.poll(0.7)
    assert r.payload == 'a' and r.queue_delay_s == pytest.approx(0.2)
    # a burst lets an idle link send at once
    link = TokenBucketLink(bandwidth_kbps=1000, burst_s=0.5)
    link.start(0.0)
    assert link.offer('b', 25_000, now=0.3)[0][0].queue_delay_s == 0.0


def test_link_delay_policy_queue_bounds_and_reasons():
    link = TokenBucketLink(bandwidth_kbps=1000, policy='delay', max_queue=2, max_delay_s=1.0)
    link.start(0.0)
    link.offer('a', 100_000, now=0.0)                 # 0.8 s on the wire
    for name in 'bcd':
        rel, drop = link.offer(name, 100_000, now=0.1)
    assert [d.reason for d in drop] == ['queue_full'] and drop[0].payload == 'b'  # oldest waiting goes
    assert link.queue_length == 3
    rel, _ = link.poll(0.8)
    assert [r.payload for r in rel] == ['a']
    rel, drop = link.poll(1.6)                        # 'c' follows back to back: 0.8 + 0.8 s
    assert [(r.payload, round(r.queue_delay_s, 3)) for r in rel] == [('c', 1.5)]
    assert [(d.payload, d.reason) for d in drop] == [('d', 'stale')]  # waited 1.5 s > 1 s for the wire
    # frames queued behind a long one: released in order, several in one poll when the poll is late
    link2 = TokenBucketLink(bandwidth_kbps=800, max_queue=5)
    link2.start(0.0)
    for i in range(4):
        link2.offer(i, 10_000, now=0.0)               # 0.1 s each
    rel, _ = link2.poll(0.35)
    assert [r.payload for r in rel] == [0, 1, 2] and link2.queue_length == 1
    assert link.counters.sent_frames == 2 and link.counters.dropped == {'queue_full': 1, 'stale': 1}


def test_link_reconfigure_and_errors():
    link = TokenBucketLink(bandwidth_kbps=1000)
    link.start(0.0)
    link.offer('a', 50_000, now=0.0)                  # 0.4 s at 1 Mbit/s
    link.configure(bandwidth_kbps=4000, now=0.2)      # half done; the rest at 4 Mbit/s takes 0.05 s
    (r,), _ = link.poll(0.25)
    assert r.payload == 'a'
    for bad in (dict(bandwidth_kbps=-1), dict(policy='fast'), dict(max_queue=-1), dict(burst_s=math.nan),
                dict(schedule='0:1,0:2'), dict(max_delay_s=0)):
        with pytest.raises(LinkError):
            link.configure(**bad)
    assert link.rate_kbps() == 4000 and link.policy == 'delay'


def _check_budget(events, schedule, burst_s, max_frame_bytes, poll_gap):
    """Released bits never exceed the scheduled bits since the start (+ the initial idle burst), and over
    every window between release times never exceed the window's scheduled bits + one frame (or burst).
    Release times are those of the link calls, so a window starts up to one call gap (`poll_gap`) early."""
    cap = burst_s * max(k for _, k in schedule.steps) * 1000
    times = np.array([t for t, _ in events])
    bits = np.cumsum([0] + [b * 8 for _, b in events])
    for j in range(len(events)):
        assert bits[j + 1] <= burst_s * schedule.steps[0][1] * 1000 + schedule.kbit_between(0, times[j]) * 1000 + 0.01
    slack = max(cap, 8 * max_frame_bytes)
    for i in range(len(events)):
        for j in range(i, len(events)):
            sent = bits[j + 1] - bits[i]
            budget = slack + schedule.kbit_between(times[i] - poll_gap, times[j]) * 1000
            assert sent <= budget + 0.01, (times[i], times[j], sent, budget)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(100, 400_000), min_size=5, max_size=120),
       gaps=st.lists(st.floats(0.0, 0.3), min_size=5, max_size=120),
       policy=st.sampled_from(['delay', 'drop']), burst=st.sampled_from([0.0, 0.05, 0.5, 2.0]),
       rates=st.lists(st.integers(100, 20000), min_size=1, max_size=4), poll_every=st.integers(1, 6))
def test_token_bucket_never_exceeds_schedule(sizes, gaps, policy, burst, rates, poll_every):
    schedule = Schedule(tuple((float(3 * i), float(r)) for i, r in enumerate(rates)))
    link = TokenBucketLink(schedule=schedule, policy=policy, burst_s=burst, max_queue=4, max_delay_s=5.0)
    t0 = 50.0
    link.start(t0)
    events = []
    t = t0
    for size, gap in zip(sizes, gaps):
        t += gap
        for now in np.linspace(t - gap, t, poll_every + 1)[1:-1]:    # polls between frames (the node's timer)
            rel, _ = link.poll(float(now))
            events += [(r.released - t0, r.nbytes) for r in rel]
        rel, _ = link.offer(None, size, now=t)
        events += [(r.released - t0, r.nbytes) for r in rel]
    for k in range(200):
        rel, _ = link.poll(t + 0.25 * k)
        events += [(r.released - t0, r.nbytes) for r in rel]
    _check_budget(events, schedule, burst, max(sizes), max(0.25, max(gaps) / poll_every))
    assert link.counters.sent_frames == len(events)
    assert link.counters.sent_frames + link.counters.dropped_frames + link.queue_length == min(len(sizes), len(gaps))


def test_streamer_over_schedule_tracks_budget_per_second():
    """30 fps, ~20-kB frames, schedule 10 -> 5 -> 2 -> 10 Mbit/s (compressed): sent kbit/s per second
    never exceeds the budget (+ the bucket) and uses most of it when the budget is the bottleneck."""
    clock = FakeClock(0.0)
    sched = '0:4000,4:2000,8:800,12:4000'
    link = TokenBucketLink(schedule=sched, policy='delay', max_queue=3, clock=clock)
    s = Streamer(KnobSettings(scale=2, jpeg_quality=95), link=link, clock=clock)
    frames = [textured(480, 360, seed=i) for i in range(4)]
    per_s = np.zeros(16)
    for i in range(30 * 16):
        for k in range(3):                     # the node's poll timer
            clock.t = (i + k / 3) / 30
            for p in s.poll().sent:
                per_s[int(p.released)] += p.nbytes * 8 / 1000
        clock.t = i / 30
        for p in s.on_frame(frames[i % 4], i / 30).sent:
            per_s[int(p.released)] += p.nbytes * 8 / 1000
    schedule = Schedule.parse(sched)
    budget = np.array([schedule.kbit_between(t, t + 1) for t in range(16)])
    frame_kbit = 8 * 22_000 / 1000
    # a second can hold at most its budget + the frame that was partly on the wire before it
    assert np.all(per_s <= budget + frame_kbit), (per_s, budget)
    # cumulative: never above the integral
    assert np.all(np.cumsum(per_s) <= np.cumsum(budget) + 1e-6)
    # each phase (after its first second) uses > 60 % of its budget
    for t in (2, 3, 6, 7, 10, 11, 14, 15):
        assert per_s[t] > 0.6 * budget[t], (t, per_s[t], budget[t])
    w = s.take_window()
    assert w.frames_total == link.counters.sent_frames and w.dropped_total > 0


def test_window_stats_and_knob_timeout():
    clock = FakeClock(10.0)
    s = Streamer(KnobSettings(scale=2, jpeg_quality=70), knob_timeout_s=2.0,
                 safe_knobs=KnobSettings(scale=8, jpeg_quality=40, config_id='safe'), clock=clock)
    img = textured(320, 240)
    assert s.check_knob_timeout() is None                        # no controller seen yet: never
    s.set_knobs(KnobSettings(scale=4, jpeg_quality=60, config_id='ctl'))
    for i in range(10):
        clock.t = 10.0 + i * 0.1
        s.on_frame(img, clock.t)
    w = s.take_window()
    assert w.frames_sent == 10 and w.window_s == pytest.approx(0.9)
    assert w.kbps == pytest.approx(w.bytes_sent * 8 / 1000 / 0.9)
    clock.t = 11.9
    assert s.check_knob_timeout() is None
    clock.t = 12.1
    assert s.check_knob_timeout().config_id == 'safe' and s.in_safe_mode
    assert s.on_frame(img, clock.t).sent[0].knobs.config_id == 'safe'
    s.set_knobs(KnobSettings(scale=2, jpeg_quality=80, config_id='ctl2'))
    assert not s.in_safe_mode and s.knobs.config_id == 'ctl2'


def test_sequence_numbers_count_sent_frames_only():
    s = Streamer(KnobSettings(scale=4, jpeg_quality=60),
                 link=TokenBucketLink(bandwidth_kbps=300, policy='drop'))
    img = textured(480, 360, seed=9)
    seqs = []
    for i in range(60):
        seqs += [p.seq for p in s.on_frame(img, i / 30, now=i / 30).sent]
    assert 0 < len(seqs) < 60 and seqs == list(range(len(seqs)))


def test_codec_error_reported_not_raised():
    s = Streamer(KnobSettings(scale=8, jpeg_quality=60))
    res = s.on_frame(textured(6, 6), 0.0, now=0.0)
    assert not res.sent and 'too small' in res.error
