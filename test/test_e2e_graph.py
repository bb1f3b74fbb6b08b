"""End to end: robot and cloud roles as separate processes (the pip-mode runner), real CamVid frames.

Frames flow camera -> edge_streamer -> restorer -> segmentation -> tail_detector; a tail frame (a
featureless frame: no small regions) makes the controller publish the tail config and the edge apply it
on the next frames; busy frames bring it back to standard after `return_after` frames.
"""
import io
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent


def test_frames_flow_and_knobs_switch(rclpy_context, shared_dir):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from runespoor.msg import EncodedFrame, KnobConfig, TailReport
    from sensor_msgs.msg import Image
    from runespoor_common.datasets import list_samples, load_image
    from runespoor_common.imgconv import rgb_to_image
    from runespoor_common.qos import OBSERVE_QOS
    from runespoor_common.qos import LATCHED_QOS, SENSOR_QOS
    from runespoor_common.runner import Runner

    busy = load_image(list_samples('camvid', shared_dir / 'data', 'val')[0].image_path)
    plain = np.full_like(busy, 128)
    out = io.StringIO()
    cloud = Runner('cloud', {}, output=out, param_sets={
        'restorer': {'methods': '2:bilinear,4:bilinear,6:bilinear,8:bilinear'},
        'tail_detector': {'profile': '', 'tail_threshold': 0.003},
        'cac_controller': {'profile': str(REPO / 'test' / 'data' / 'profile_fixed.yaml'), 'return_after': 2, 'bandwidth_source': 'parameter', 'bandwidth_kbps': 700.0}})
    robot = Runner('robot', {'bandwidth': '0'}, output=out)
    node = rclpy.create_node('e2e_camera', context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    sent, reports, knobs = [], [], []
    node.create_subscription(EncodedFrame, 'runespoor/uplink', sent.append, OBSERVE_QOS)
    node.create_subscription(TailReport, 'runespoor/tail_report', reports.append, OBSERVE_QOS)
    node.create_subscription(KnobConfig, 'runespoor/knobs', knobs.append, LATCHED_QOS)
    cam = node.create_publisher(Image, 'camera/image_raw', SENSOR_QOS)
    state = {'frame': busy}

    def publish():
        msg = rgb_to_image(state['frame'], 'rgb8')
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = 'camera'
        cam.publish(msg)
    node.create_timer(0.25, publish)
    spin = lambda: ex.spin_once(timeout_sec=0.05)
    try:
        cloud.start()
        robot.start()
        # frames flow through every node and are judged
        # wait for every topic this block reads: a judged frame, the latched knobs, an uplink frame with them
        assert wait_for(lambda: any(not r.is_tail for r in reports) and any(not k.tail_mode for k in knobs)
                        and any(f.knobs.config_id == '700kbps/standard' for f in sent), 180, spin=spin), \
            out.getvalue()[-4000:]
        assert not cloud.poll() and not robot.poll(), out.getvalue()[-4000:]
        std = [k for k in knobs if not k.tail_mode]
        assert std and std[-1].scale == 4 and std[-1].config_id == '700kbps/standard'
        assert any(f.knobs.config_id == '700kbps/standard' and f.knobs.scale == 4 for f in sent)
        judged = [r for r in reports if not r.is_tail]
        assert judged[-1].small_region_ratio > 0.003 and judged[-1].knobs.scale == 4
        # a tail frame: the controller switches at once and the edge sends with the tail config
        n_sent = len(sent)
        state['frame'] = plain
        assert wait_for(lambda: any(k.tail_mode for k in knobs), 60, spin=spin), out.getvalue()[-4000:]
        tail_cfg = next(k for k in knobs if k.tail_mode)
        assert (tail_cfg.scale, tail_cfg.jpeg_quality) == (2, 60) and 'tail frame' in tail_cfg.reason
        assert wait_for(lambda: any(f.knobs.tail_mode and f.knobs.scale == 2 for f in sent[n_sent:]), 60,
                        spin=spin)
        # busy frames again: back to standard after return_after (2) non-tail reports
        state['frame'] = busy
        assert wait_for(lambda: not knobs[-1].tail_mode and len(knobs) >= 3, 60, spin=spin), \
            out.getvalue()[-4000:]
        assert 'back to standard' in knobs[-1].reason
        ids = [k.config_id for k in knobs]
        assert all(a != b for a, b in zip(ids, ids[1:]))  # never the same config twice in a row
    finally:
        codes = {**robot.stop(), **cloud.stop()}
        node.destroy_node()
    assert all(c in (0, -2) for c in codes.values()), (codes, out.getvalue()[-3000:])
