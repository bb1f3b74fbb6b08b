"""Dead and restarted peers, as separate processes, with the camera in the test process:
the cloud (controller) stops and restarts, the edge restarts, the link stalls for 20 s."""
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow]
BILINEAR = "methods:='2:bilinear,4:bilinear,6:bilinear,8:bilinear'"


class Camera:
    """A test node publishing `frame` on camera/image_raw every `period` s and recording topics."""

    def __init__(self, ctx, frame, period=0.1):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image
        from runespoor_common.imgconv import rgb_to_image
        from runespoor_common.qos import SENSOR_QOS
        self.node = rclpy.create_node('robustness_camera', context=ctx)
        self.ex = SingleThreadedExecutor(context=ctx)
        self.ex.add_node(self.node)
        self.pub = self.node.create_publisher(Image, 'camera/image_raw', SENSOR_QOS)
        msg = rgb_to_image(frame, 'rgb8')
        msg.header.frame_id = 'camera'

        def tick():
            msg.header.stamp = self.node.get_clock().now().to_msg()
            self.pub.publish(msg)
        self.node.create_timer(period, tick)

    def record(self, msg_type, topic, qos):
        out = []
        self.node.create_subscription(msg_type, topic, lambda m: out.append((time.monotonic(), m)), qos)
        return out

    def spin(self):
        self.ex.spin_once(timeout_sec=0.02)

    def wait(self, predicate, timeout):
        return wait_for(predicate, timeout, spin=self.spin)

    def spin_for(self, seconds):
        self.wait(lambda: False, seconds)

    def close(self):
        self.node.destroy_node()


def test_cloud_stops_then_restarts(rclpy_context, node_process):
    from runespoor.msg import EncodedFrame, TailReport
    from runespoor_common.qos import OBSERVE_QOS
    from runespoor_common.qos import RELIABLE_QOS
    cam = Camera(rclpy_context, np.full((64, 96, 3), 120, np.uint8))
    sent = cam.record(EncodedFrame, 'runespoor/uplink', OBSERVE_QOS)
    tail_pub = cam.node.create_publisher(TailReport, 'runespoor/tail_report', RELIABLE_QOS)
    timeout_s = 2.0
    edge = node_process('runespoor_edge.streamer_node', [
        '-p', 'bandwidth_kbps:=0.0', '-p', f'knob_timeout_s:={timeout_s}', '-p', 'safe_scale:=8',
        '-p', 'safe_jpeg_quality:=45'])
    fixed = Path(__file__).resolve().parent / 'data' / 'profile_fixed.yaml'
    controller_args = ['-p', f'profile:={fixed}', '-p', 'bandwidth_source:=parameter', '-p', 'bandwidth_kbps:=700.0',
                       '-p', 'return_after:=1000']
    ctl = node_process('runespoor_cloud.controller_node', controller_args)
    last = lambda: sent[-1][1].knobs if sent else None  # noqa: E731
    try:
        assert cam.wait(lambda: last() is not None and last().config_id == '700kbps/standard', 60), \
            edge.output()[-2000:] + ctl.output()[-2000:]
        # quiet controller (no new knobs for > knob_timeout_s) is not a dead controller
        cam.spin_for(2 * timeout_s)
        assert last().config_id == '700kbps/standard'
        # drive the controller into tail mode
        report = TailReport(is_tail=True, small_region_ratio=0.0, tail_threshold=0.01)
        report.header.stamp = cam.node.get_clock().now().to_msg()
        tail_pub.publish(report)
        assert cam.wait(lambda: last().tail_mode and last().config_id == '700kbps/tail', 60), ctl.output()[-2000:]
        # the cloud stops: the edge keeps streaming with its last config, then falls back to the safe one
        t_stop = time.monotonic()
        assert ctl.stop() in (0, -2)
        assert cam.wait(lambda: last().config_id == 'safe', 60), edge.output()[-2000:]
        t_safe = next(t for t, m in sent if m.knobs.config_id == 'safe')
        kept = [m for t, m in sent if t_stop < t < t_safe]
        assert len(kept) >= 5 and all(m.knobs.config_id == '700kbps/tail' for m in kept)
        assert t_safe - t_stop >= timeout_s - 0.5  # the edge checks the controller's presence every 0.5 s
        assert (last().scale, last().jpeg_quality, last().tail_mode) == (8, 45, False)
        assert f'no KnobConfig for {timeout_s:g} s: safe knobs x8 q45' in edge.output()
        # the cloud restarts: its transient-local knobs reach the edge; no stale tail mode
        n = len(sent)
        ctl = node_process('runespoor_cloud.controller_node', controller_args)
        assert cam.wait(lambda: len(sent) > n and last().config_id == '700kbps/standard', 60), \
            ctl.output()[-2000:]
        assert not last().tail_mode and last().scale == 4
        assert edge.alive() and ctl.alive()
    finally:
        cam.close()


def test_edge_restarts_and_cloud_carries_on(rclpy_context, node_process):
    from runespoor.msg import EncodedFrame
    from runespoor_common.qos import RELIABLE_QOS
    cam = Camera(rclpy_context, np.full((64, 96, 3), 120, np.uint8))
    infos = cam.record(EncodedFrame, 'runespoor/frame_info', RELIABLE_QOS)
    restorer = node_process('runespoor_cloud.restorer_node', ['-p', BILINEAR])
    edge_args = ['-p', 'bandwidth_kbps:=0.0', '-p', 'scale:=2']
    edge = node_process('runespoor_edge.streamer_node', edge_args)
    try:
        assert cam.wait(lambda: len(infos) >= 10, 60), restorer.output()[-2000:] + edge.output()[-2000:]
        first = infos[-1][1].session_id
        edge.proc.kill()  # a crash, not a clean stop
        edge.proc.wait(10)
        n = len(infos)
        edge = node_process('runespoor_edge.streamer_node', edge_args)
        assert cam.wait(lambda: len(infos) > n + 5, 60), restorer.output()[-2000:]
        new = [m for _, m in infos[n:]]
        # a new session from the restarted process (its own start-up line names it); its sequence counts from
        # 0 again: how many of its first frames the restorer missed while discovery matched them is speed
        assert new[0].session_id != first and f'session {new[0].session_id}' in edge.output()
        assert new[0].seq < new[-1].seq and all(m.session_id == new[0].session_id for m in new)
        assert [m.seq for m in new] == sorted(m.seq for m in new)
        assert f'edge restarted (session {first} -> {new[0].session_id}' in restorer.output()
        assert restorer.alive() and 'rejected frame' not in restorer.output()
    finally:
        cam.close()


def _rss_kb(pid: int) -> int:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    raise AssertionError('no VmRSS')


def _ns(t) -> int:
    return t.sec * 10 ** 9 + t.nanosec


def test_stalled_link_drops_frames_with_bounded_queue_and_flat_memory(rclpy_context, node_process):
    """The stall is placed by what the edge reports (the bandwidth in its LinkStats, its stamps), not by
    the test's clock: a slow start shifts the schedule, not the verdict."""
    from runespoor.msg import EncodedFrame, LinkStats
    from runespoor_common.qos import OBSERVE_QOS
    from runespoor_common.qos import RELIABLE_QOS
    rng = np.random.default_rng(0)
    cam = Camera(rclpy_context, rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), period=1 / 15)
    sent = cam.record(EncodedFrame, 'runespoor/uplink', OBSERVE_QOS)
    stats = cam.record(LinkStats, 'runespoor/link_stats', RELIABLE_QOS)
    # 20 Mbit/s, then 1 kbit/s (a ~100 kB frame would take 13 min: a stall) from 4 s to 24 s, then 20 Mbit/s
    stall_from, stall_to, max_queue = 4.0, 24.0, 3
    edge = node_process('runespoor_edge.streamer_node', [
        '-p', f"schedule:='0:20000,{stall_from:g}:1,{stall_to:g}:20000'", '-p', f'max_queue:={max_queue}',
        '-p', 'max_queue_delay_s:=1.0', '-p', 'jpeg_quality:=90'])
    stalled = lambda m: m.bandwidth_kbps == 1.0  # noqa: E731
    try:
        assert cam.wait(lambda: len(sent) >= 3, 60), edge.output()[-2000:]
        # the stall begins when the edge says so; sample its memory while it says so, until it says it is over
        assert cam.wait(lambda: any(stalled(m) for _, m in stats), 120), edge.output()[-2000:]
        rss = []
        over = lambda: stats and not stalled(stats[-1][1])  # noqa: E731
        deadline = time.monotonic() + 2 * (stall_to - stall_from) + 120
        while not over() and time.monotonic() < deadline:
            rss.append(_rss_kb(edge.proc.pid))
            cam.wait(over, 1.0)
        assert over(), edge.output()[-2000:]
        in_stall = [m for _, m in stats if stalled(m)]
        # every stats window from the first stalled one to the last (one run, no flapping)
        first = next(i for i, (_, m) in enumerate(stats) if stalled(m))
        assert all(stalled(m) for _, m in stats[first:first + len(in_stall)])
        # windows wholly inside the stall: the first stalled window may hold frames sent before it began
        window = in_stall[1:]
        assert len(window) >= 10, len(window)
        t_lo, t_hi = _ns(window[0].header.stamp), _ns(window[-1].header.stamp)
        during = [m for _, m in sent if t_lo < _ns(m.send_stamp) <= t_hi]
        assert len(during) <= 1, len(during)  # at most the frame that was on the wire when the link stalled
        sent_in_stall = window[-1].frames_total - window[0].frames_total
        dropped = window[-1].dropped_total - window[0].dropped_total
        assert sent_in_stall <= 1 and dropped >= 10  # the camera's frames are dropped, not queued
        assert max(m.queue_length for m in window) <= max_queue + 1  # waiting + the one on the wire
        growth_kb = max(rss) - rss[0]
        print(f'stalled link: {len(window)} stats windows, dropped {dropped}, max queue '
              f'{max(m.queue_length for m in window)}, RSS {rss[0]} -> {max(rss)} kB over {len(rss)} samples')
        assert len(rss) >= 5
        assert growth_kb < 8 * 1024, rss  # flat: no per-frame growth (15 fps x ~100 kB x 20 s would be 30 MB)
        # the link recovers: frames sent after the stall flow again
        t_end = _ns(stats[-1][1].header.stamp)
        assert cam.wait(lambda: any(_ns(m.send_stamp) > t_end for _, m in sent), 60), edge.output()[-2000:]
        assert edge.alive()
    finally:
        cam.close()
