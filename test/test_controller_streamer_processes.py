"""Controller and edge streamer as two processes: the edge's LinkStats pick the bandwidth level, a synthetic
tail report makes the controller publish the level's tail config and the edge send with it on the next
frames, and non-tail reports on frames sent with the tail config bring both back to standard."""
import time

import numpy as np
import pytest

from conftest import wait_for, write_two_level_profile

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def stamp_ns(header) -> int:
    return header.stamp.sec * 10 ** 9 + header.stamp.nanosec

def test_tail_report_switches_the_edge(rclpy_context, node_process, tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from diagnostic_msgs.msg import DiagnosticArray
    from runespoor.msg import EncodedFrame, KnobConfig, TailReport
    from sensor_msgs.msg import Image
    from runespoor_common.imgconv import rgb_to_image
    from runespoor_common.qos import OBSERVE_QOS
    from runespoor_common.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

    write_two_level_profile(tmp_path / 'p.yaml', frame_rate=0.0)
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

    diags = []
    node.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 50)

    def controller_says(frames: int) -> dict | None:
        """The controller's latest /diagnostics values once it has counted `frames` tail reports."""
        for d in reversed(diags):
            for s in d.status:
                if s.name.endswith('cac_controller'):
                    kv = {v.key: v.value for v in s.values}
                    return kv if int(kv.get('frames', 0)) >= frames else None
        return None

    try:
        # the edge's LinkStats (500 kbit/s) move the controller from its top level to the 350 level; wait for
        # both topics this block reads: an uplink frame sent with the level's config and the latched knobs
        assert wait_for(lambda: any(m.knobs.config_id == '350kbps/standard' for _, m in sent)
                        and knobs and knobs[-1].config_id == '350kbps/standard', 60, spin=spin), out()
        assert 'bandwidth 500' in knobs[-1].reason
        std = next(m for _, m in sent if m.knobs.config_id == '350kbps/standard')
        assert (std.knobs.scale, std.knobs.jpeg_quality, std.source_width) == (6, 90, 240)
        assert wait_for(lambda: reports.get_subscription_count() > 0, 30, spin=spin)
        # a tail frame: the tail config at once, applied by the edge to the next frames
        n = len(sent)
        t0 = time.monotonic()
        report(True, std)
        assert wait_for(lambda: any(m.knobs.tail_mode for _, m in sent[n:]), 60, spin=spin), out()
        t_applied, first_tail = next((t, m) for t, m in sent[n:] if m.knobs.tail_mode)
        assert (first_tail.knobs.scale, first_tail.knobs.jpeg_quality) == (4, 70)
        assert first_tail.knobs.config_id == '350kbps/tail' and 'tail frame' in first_tail.knobs.reason
        # the edge applies new knobs from the next frame it captures on: every later frame carries them
        # (how fast is a speed figure: `runespoor bench` measures the reaction, not this test)
        later = [m for _, m in sent if stamp_ns(m.header) > stamp_ns(first_tail.header)]
        assert all(m.knobs.config_id == '350kbps/tail' for m in later), [m.knobs.config_id for m in later]
        print(f'tail report -> first uplink frame with the tail knobs: {1000 * (t_applied - t0):.0f} ms')
        assert wait_for(lambda: knobs[-1].tail_mode, 30, spin=spin), out()
        assert 'knobs -> 350kbps/tail' in ctl.output() and 'reaction' in ctl.output()
        # non-tail verdicts on frames sent before the switch do not count: once the controller has counted
        # them (its /diagnostics say 3 reports), its config is still the tail one
        report(False, std)
        report(False, std)
        assert wait_for(lambda: controller_says(3) is not None, 30, spin=spin), out()
        assert controller_says(3)['config'] == '350kbps/tail', 'stale non-tail reports must not end the tail phase'
        assert knobs[-1].tail_mode
        # two non-tail verdicts on frames sent with the tail config go back
        report(False, first_tail)
        report(False, first_tail)
        assert wait_for(lambda: not knobs[-1].tail_mode, 30, spin=spin), out()
        assert knobs[-1].config_id == '350kbps/standard' and 'back to standard' in knobs[-1].reason
        n = len(sent)
        assert wait_for(lambda: any(m.knobs.config_id == '350kbps/standard' for _, m in sent[n:]), 60, spin=spin)
        ids = [k.config_id for k in knobs]
        assert all(a != b for a, b in zip(ids, ids[1:])), ids
        assert ctl.alive() and edge.alive()
    finally:
        node.destroy_node()
