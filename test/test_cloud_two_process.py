"""Controller and edge streamer as two processes: the edge's LinkStats pick the bandwidth level, a synthetic
tail report makes the controller publish the level's tail config and the edge send with it on the next
frames, and non-tail reports on frames sent with the tail config bring both back to standard."""
import time

import numpy as np
import pytest

from conftest import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PROFILE = """dataset: camvid
frame_rate: 0.0
levels:
  - bandwidth_kbps: 350.0
    standard: {scale: 6, jpeg_quality: 90}
    tail: {scale: 4, jpeg_quality: 70}
  - bandwidth_kbps: 700.0
    standard: {scale: 4, jpeg_quality: 90}
    tail: {scale: 2, jpeg_quality: 60}
"""


def test_tail_report_switches_the_edge(rclpy_context, node_process, tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from runespoor.msg import EncodedFrame, KnobConfig, TailReport
    from sensor_msgs.msg import Image
    from runespoor_common.imgconv import rgb_to_image
    from runespoor_common.monitor import OBSERVE_QOS
    from runespoor_common.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

    (tmp_path / 'p.yaml').write_text(PROFILE)
    ctl = node_process('runespoor_cloud.controller_node', ['-p', f'profile:={tmp_path / "p.yaml"}',
                                                           '-p', 'return_after:=2'])
    edge = node_process('runespoor_edge.streamer_node', ['-p', 'bandwidth_kbps:=500.0', '-p', 'scale:=1'])
    node = rclpy.create_node('two_process_test', context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    spin = lambda: ex.spin_once(timeout_sec=0.02)
    out = lambda: f'--- controller\n{ctl.output()[-3000:]}\n--- edge\n{edge.output()[-3000:]}'
    sent, knobs = [], []
    node.create_subscription(EncodedFrame, 'runespoor/uplink', lambda m: sent.append((time.monotonic(), m)),
                             OBSERVE_QOS)
    node.create_subscription(KnobConfig, 'runespoor/knobs', knobs.append, LATCHED_QOS)
    cam = node.create_publisher(Image, 'camera/image_raw', SENSOR_QOS)
    reports = node.create_publisher(TailReport, 'runespoor/tail_report', RELIABLE_QOS)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (180, 240, 3), np.uint8)

    def camera():
        msg = rgb_to_image(frame, 'rgb8')
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = 'camera'
        cam.publish(msg)
    node.create_timer(0.1, camera)

    def report(is_tail, frame_msg):
        msg = TailReport(header=frame_msg.header, seq=frame_msg.seq, is_tail=is_tail, knobs=frame_msg.knobs,
                         small_region_ratio=0.001 if is_tail else 0.05, tail_threshold=0.01)
        reports.publish(msg)

    try:
        # the edge's LinkStats (500 kbit/s) move the controller from its top level to the 350 level
        assert wait_for(lambda: any(m.knobs.config_id == '350kbps/standard' for _, m in sent), 30, spin=spin), out()
        assert [k.config_id for k in knobs][-1] == '350kbps/standard' and 'bandwidth 500' in knobs[-1].reason
        std = next(m for _, m in sent if m.knobs.config_id == '350kbps/standard')
        assert (std.knobs.scale, std.knobs.jpeg_quality, std.source_width) == (6, 90, 240)
        assert wait_for(lambda: reports.get_subscription_count() > 0, 10, spin=spin)
        # a tail frame: the tail config at once, applied by the edge to the next frames
        n = len(sent)
        t0 = time.monotonic()
        report(True, std)
        assert wait_for(lambda: any(m.knobs.tail_mode for _, m in sent[n:]), 10, spin=spin), out()
        t_applied, first_tail = next((t, m) for t, m in sent[n:] if m.knobs.tail_mode)
        assert (first_tail.knobs.scale, first_tail.knobs.jpeg_quality) == (4, 70)
        assert first_tail.knobs.config_id == '350kbps/tail' and 'tail frame' in first_tail.knobs.reason
        assert t_applied - t0 < 1.0          # the next frames (camera at 10 Hz) already carry it
        print(f'tail report -> first uplink frame with the tail knobs: {1000 * (t_applied - t0):.0f} ms')
        assert 'knobs -> 350kbps/tail' in ctl.output() and 'reaction' in ctl.output()
        # non-tail verdicts on frames sent before the switch do not count; two on tail frames go back
        report(False, std)
        report(False, std)
        wait_for(lambda: False, 0.5, spin=spin)
        assert knobs[-1].tail_mode, 'stale non-tail reports must not end the tail phase'
        report(False, first_tail)
        report(False, first_tail)
        assert wait_for(lambda: not knobs[-1].tail_mode, 5, spin=spin), out()
        assert knobs[-1].config_id == '350kbps/standard' and 'back to standard' in knobs[-1].reason
        n = len(sent)
        assert wait_for(lambda: any(m.knobs.config_id == '350kbps/standard' for _, m in sent[n:]), 10, spin=spin)
        ids = [k.config_id for k in knobs]
        assert all(a != b for a, b in zip(ids, ids[1:])), ids
        assert ctl.alive() and edge.alive()
    finally:
        node.destroy_node()
