"""Edge nodes over DDS: the streamer as its own process (knobs, parameters, encodings, link stats), the
streamer fed by the bag player under a bandwidth schedule, and convert -> play -> record -> compare."""
import time

import numpy as np
import pytest

from conftest import wait_for

pytestmark = pytest.mark.ros


def spinner(node, ctx):
    from rclpy.executors import SingleThreadedExecutor
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    return ex, (lambda: ex.spin_once(timeout_sec=0.02))


def stamp_ns(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def test_streamer_node_two_process(rclpy_context, node_process):
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from runespoor.msg import EncodedFrame, KnobConfig, LinkStats
    from sensor_msgs.msg import Image

    from runespoor_common.imgconv import rgb_to_image
    from runespoor_common.qos import OBSERVE_QOS
    from runespoor_common.qos import LATCHED_QOS, SENSOR_QOS
    from runespoor_edge.codec import decode_jpeg

    proc = node_process('runespoor_edge.streamer_node',
                        ['-p', 'scale:=2', '-p', 'jpeg_quality:=80', '-p', 'bandwidth_kbps:=0.0'])
    node = rclpy.create_node('streamer_test', context=rclpy_context)
    ex, spin = spinner(node, rclpy_context)
    got, stats = {}, []
    node.create_subscription(EncodedFrame, 'runespoor/uplink', lambda m: got.setdefault(stamp_ns(m.header.stamp), m),
                             SENSOR_QOS)
    node.create_subscription(LinkStats, 'runespoor/link_stats', stats.append, OBSERVE_QOS)
    img_pub = node.create_publisher(Image, 'camera/image_raw', SENSOR_QOS)
    knob_pub = node.create_publisher(KnobConfig, 'runespoor/knobs', LATCHED_QOS)
    params = AsyncParameterClient(node, 'edge_streamer')
    assert wait_for(lambda: img_pub.get_subscription_count() > 0
                    and node.count_publishers('runespoor/uplink') > 0, 60, spin=spin), proc.output()
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[:, :, 0] = 200  # red in RGB

    def send(i, encoding='rgb8', image=None):
        """Publish camera frame i (stamp i s) until its EncodedFrame comes back; returns it."""
        msg = image if image is not None else rgb_to_image(rgb, encoding)
        msg.header.stamp.sec = i
        key = i * 1_000_000_000
        deadline = time.monotonic() + 60
        while key not in got and time.monotonic() < deadline:
            img_pub.publish(msg)
            wait_for(lambda: key in got, 0.5, spin=spin)
        assert key in got, f'no EncodedFrame for frame {i}\n{proc.output()}'
        return got[key]

    def set_param(name, value):
        fut = params.set_parameters([Parameter(name, value=value)])
        assert wait_for(fut.done, 60, spin=spin)
        return fut.result().results[0]

    def param(name):
        fut = params.get_parameters([name])
        assert wait_for(fut.done, 60, spin=spin)
        return fut.result().values[0]

    assert wait_for(lambda: params.services_are_ready(), 60, spin=spin)
    f = send(1)
    assert (f.source_width, f.source_height, f.knobs.scale, f.knobs.jpeg_quality) == (320, 240, 2, 80)
    dec = decode_jpeg(bytes(f.image.data))
    assert dec.shape == (120, 160, 3) and dec[60, 80, 0] > 150 and dec[60, 80, 2] < 50  # stays RGB
    assert f.image.format == 'jpeg' and f.seq == 0

    # a KnobConfig applies from the next frame on (its arrival is visible in the mirrored parameters)
    knob_pub.publish(KnobConfig(scale=4, jpeg_quality=60, config_id='k1', bandwidth_kbps=2000.0))
    assert wait_for(lambda: param('scale').integer_value == 4, 60, spin=spin)
    f = send(2)
    assert f.knobs.config_id == 'k1' and decode_jpeg(bytes(f.image.data)).shape == (60, 80, 3)

    # invalid knobs are rejected and logged; the previous ones stay
    knob_pub.publish(KnobConfig(scale=3, jpeg_quality=60, config_id='bad'))
    assert wait_for(lambda: 'rejected' in proc.output(), 60, spin=spin), proc.output()
    assert "'bad'" in proc.output() and 'scale must be one of' in proc.output()
    f = send(3)
    assert f.knobs.config_id == 'k1' and f.knobs.scale == 4

    # knobs as parameters: validated like the messages
    assert set_param('scale', 8).successful
    f = send(4)
    assert f.knobs.config_id == 'param' and decode_jpeg(bytes(f.image.data)).shape == (30, 40, 3)
    res = set_param('scale', 5)
    assert not res.successful and 'scale' in res.reason
    assert not set_param('jpeg_quality', 20).successful
    assert not set_param('schedule', '5:100').successful
    assert set_param('link_policy', 'drop').successful

    # other encodings: bgr8 is converted to RGB; an unknown encoding is rejected with a log line
    f = send(5, 'bgr8')
    dec = decode_jpeg(bytes(f.image.data))
    assert dec[15, 20, 0] > 150 and dec[15, 20, 2] < 50
    bad = Image(height=2, width=2, encoding='32FC1', step=8, data=bytes(16))
    for _ in range(5):
        img_pub.publish(bad)
        spin()
    assert wait_for(lambda: "unsupported image encoding '32FC1'" in proc.output(), 60, spin=spin)
    mono16 = Image(height=240, width=320, encoding='mono16', step=640,
                   data=np.full((240, 320), 0x8000, '<u2').tobytes())
    f = send(6, image=mono16)
    assert abs(int(decode_jpeg(bytes(f.image.data))[10, 10, 1]) - 128) <= 2  # 16 bit scaled to 8 bit
    assert [got[k].seq for k in sorted(got)] == list(range(6))

    assert wait_for(lambda: any(s.frames_total >= 6 for s in stats), 30, spin=spin)
    s = stats[-1]
    assert s.role == 'edge' and s.window_s > 0.5 and s.dropped_total == 0
    assert proc.alive(), proc.output()
    node.destroy_node()
    assert proc.stop() == 0


def test_streamer_fed_by_bag_play_respects_schedule_and_switches(rclpy_context, node_process, tmp_path,
                                                                 shared_dir):
    """Bag player process -> streamer process (schedule 2.5 -> 0.6 -> 2.5 Mbit/s) -> this process, which
    also records the uplink with the recorder node (project types in MCAP)."""
    import rclpy
    from rclpy.parameter import Parameter
    from runespoor.msg import EncodedFrame, KnobConfig, LinkStats

    from runespoor_common.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
    from runespoor_edge import bagio
    from runespoor_edge.link import Schedule
    from runespoor_edge.recorder_node import BagRecorder

    bag = tmp_path / 'camvid'
    bagio.convert('camvid', shared_dir / 'data/camvid', bag, split='val', limit=75, progress=False)  # 5 s
    sched = '0:2500,1.5:600,3:2500'
    streamer = node_process('runespoor_edge.streamer_node',
                            ['-p', 'scale:=1', '-p', 'jpeg_quality:=90', '-p', f'schedule:={sched}',
                             '-p', 'link_policy:=delay', '-p', 'max_queue:=3'])
    node = rclpy.create_node('budget_test', context=rclpy_context)
    rec = BagRecorder(context=rclpy_context, parameter_overrides=[
        Parameter('out', value=str(tmp_path / 'rec')), Parameter('topics', value=['/runespoor/uplink'])])
    from rclpy.executors import SingleThreadedExecutor
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    ex.add_node(rec)
    spin = lambda: ex.spin_once(timeout_sec=0.02)  # noqa: E731
    frames = []
    node.create_subscription(EncodedFrame, 'runespoor/uplink',
                             lambda m: frames.append((stamp_ns(m.send_stamp) / 1e9, len(m.image.data),
                                                      m.knobs.config_id, stamp_ns(m.header.stamp))), SENSOR_QOS)
    stats = []
    node.create_subscription(LinkStats, 'runespoor/link_stats', stats.append, RELIABLE_QOS)
    knob_pub = node.create_publisher(KnobConfig, 'runespoor/knobs', LATCHED_QOS)
    assert wait_for(lambda: node.count_publishers('runespoor/uplink') > 0, 60, spin=spin), streamer.output()
    assert wait_for(lambda: '/runespoor/uplink' in rec.subs, 60, spin=spin)
    player = node_process('runespoor_edge.bag_player_node',
                          ['-p', f'bag:={bag}', '-p', 'wait_for_subscribers:=1', '-p', 'exit_when_done:=true'])
    assert wait_for(lambda: len(frames) > 0, 60, spin=spin), player.output() + streamer.output()
    # switch the knobs once the edge has sent a frame captured 3 s into the bag (by the frames' own stamps,
    # not the test's clock, so a slow start does not move the switch past the bag's end)
    assert wait_for(lambda: frames[-1][3] - frames[0][3] >= 3e9, 60, spin=spin), streamer.output()
    knob_pub.publish(KnobConfig(scale=2, jpeg_quality=60, config_id='switched'))
    assert wait_for(lambda: not player.alive(), 60, spin=spin), player.output()
    # everything the edge sent has arrived: its LinkStats count as many frames as we hold, queue empty
    assert wait_for(lambda: stats and stats[-1].queue_length == 0 and stats[-1].frames_total == len(frames)
                    and stats[-1].frames_total == (stats[-2].frames_total if len(stats) > 1 else -1),
                    60, spin=spin), (len(frames), stats[-1:] and stats[-1])
    assert player.proc.returncode == 0, player.output()
    assert 'end of bag: 150 messages' in player.output()

    # the budget (exact link, burst 0): bits sent since the first camera frame <= scheduled bits; over every
    # window <= scheduled bits + one frame. t0 = the first frame's capture by the streamer, which is one
    # transmission time before its send stamp; 50 ms slack for the clocks and the 5 ms poll.
    schedule = Schedule.parse(sched)
    first = frames[0][1] * 8 / 2500e3
    t0 = frames[0][0] - first
    t = np.array([f[0] for f in frames]) - t0
    bits = np.cumsum([0] + [f[1] * 8 for f in frames])
    biggest = max(f[1] for f in frames) * 8
    for j in range(len(frames)):
        assert bits[j + 1] <= schedule.kbit_between(0, t[j] + 0.05) * 1000, (j, t[j], bits[j + 1])
        for i in range(j + 1):
            budget = biggest + schedule.kbit_between(t[i] - 0.05, t[j] + 0.05) * 1000
            assert bits[j + 1] - bits[i] <= budget, (i, j, t[i], t[j], bits[j + 1] - bits[i], budget)
    assert 5 < len(frames) < 75  # the link, not the camera, limited what was sent
    for lo, hi in ((0, 1.5), (1.5, 3), (3, 4.5)):
        sel = (t >= lo) & (t < hi)
        print(f'phase {lo}-{hi} s: budget {schedule.rate_at(lo):.0f} kbit/s, sent '
              f'{sum(f[1] for f, s in zip(frames, sel) if s) * 8 / 1000 / (hi - lo):.0f} kbit/s, {sel.sum()} frames')
    # the new knobs apply from the next frame on: once seen, never an old-knob frame captured later
    ids = [f[2] for f in sorted(frames, key=lambda f: f[3])]
    assert 'switched' in ids, ids
    k = ids.index('switched')
    assert set(ids[k:]) == {'switched'} and set(ids[:k]) == {'param'}

    rec.close()
    msgs = bagio.bag_summary(tmp_path / 'rec')
    assert msgs['topics']['/runespoor/uplink']['type'] == 'runespoor/msg/EncodedFrame'
    assert msgs['topics']['/runespoor/uplink']['count'] >= 0.8 * len(frames)
    reader = bagio.open_reader(tmp_path / 'rec')
    assert 'MSG: runespoor/KnobConfig' in reader.connections[0].msgdef.data
    reader.close()
    rec.destroy_node()
    node.destroy_node()


def test_round_trip_convert_play_record(rclpy_context, node_process, tmp_path, shared_dir):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from runespoor_edge import bagio
    from runespoor_edge.recorder_node import BagRecorder

    src = tmp_path / 'src'
    bagio.convert('camvid', shared_dir / 'data/camvid', src, split='val', limit=24, progress=False)
    rec = BagRecorder(context=rclpy_context, parameter_overrides=[
        Parameter('out', value=str(tmp_path / 'rec')),
        Parameter('topics', value=['/camera/image_raw', 'camera/labels'])])
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(rec)
    spin = lambda: ex.spin_once(timeout_sec=0.02)  # noqa: E731
    player = node_process('runespoor_edge.bag_player_node',
                          ['-p', f'bag:={src}', '-p', 'rate:=2.0', '-p', 'reliable:=true',
                           '-p', 'wait_for_subscribers:=1', '-p', 'exit_when_done:=true',
                           '-p', 'restamp:=false'])   # keep the bag's stamps (restamping is the default)
    assert wait_for(lambda: len(rec.subs) == 2, 60, spin=spin), player.output()
    assert wait_for(lambda: sum(rec.counts.values()) >= 48 and not player.alive(), 30, spin=spin), \
        (rec.counts, player.output())
    rec.close()
    ex.remove_node(rec)
    rec.destroy_node()

    def load(bag):
        out = {}
        reader = bagio.open_reader(bag)
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, bytes(raw)))
        reader.close()
        return out

    a, b = load(src), load(tmp_path / 'rec')
    assert sorted(a) == sorted(b) == ['/camera/image_raw', '/camera/labels']
    for topic in a:
        assert len(a[topic]) == len(b[topic]) == 24
        # byte-identical messages (pixels, encodings, original header stamps) in the same order
        assert [raw for _, raw in a[topic]] == [raw for _, raw in b[topic]]
        # replayed at rate 2: receive times are spaced like the bag's log times / 2
        da = np.diff([t for t, _ in a[topic]]) / 2
        db = np.diff([t for t, _ in b[topic]])
        assert abs(np.median(db) - np.median(da)) < 10e6 and abs(db.sum() - da.sum()) < 150e6
    info = bagio.bag_summary(tmp_path / 'rec')
    assert info['frames'] == 24 and info['width'] == 480 and info['fps'] == pytest.approx(15.0, rel=0.01)
