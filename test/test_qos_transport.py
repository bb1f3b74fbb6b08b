"""Two separate processes exchange KnobConfig (reliable, transient local) and EncodedFrame over DDS."""
import sys
from pathlib import Path

import pytest

from conftest import wait_for

pytestmark = pytest.mark.ros
PEER = str(Path(__file__).resolve().parent / 'peers' / 'echo_peer.py')


def test_knobs_and_frames_between_processes(rclpy_context, node_process):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from runespoor.msg import EncodedFrame, KnobConfig
    from runespoor_common.qos import LATCHED_QOS, SENSOR_QOS
    from runespoor_edge.codec import decode_jpeg
    import subprocess, os
    peer = subprocess.Popen([sys.executable, PEER], env=dict(os.environ))
    try:
        node = rclpy.create_node('transport_test', context=rclpy_context)
        ex = SingleThreadedExecutor(context=rclpy_context)
        ex.add_node(node)
        got = []
        node.create_subscription(EncodedFrame, 'runespoor/uplink', got.append, SENSOR_QOS)
        pub = node.create_publisher(KnobConfig, 'runespoor/knobs', LATCHED_QOS)
        # Transient local: published before the peer has even discovered us, still delivered.
        pub.publish(KnobConfig(scale=4, jpeg_quality=80, config_id='a'))
        spin = lambda: ex.spin_once(timeout_sec=0.05)
        assert wait_for(lambda: any(f.knobs.config_id == 'a' for f in got), 60, spin=spin), \
            'no EncodedFrame came back from the peer process'
        frame = next(f for f in got if f.knobs.config_id == 'a')
        assert (frame.source_width, frame.source_height) == (128, 96)
        assert decode_jpeg(bytes(frame.image.data)).shape == (24, 32, 3)
        pub.publish(KnobConfig(scale=2, jpeg_quality=60, config_id='b'))
        assert wait_for(lambda: any(f.knobs.config_id == 'b' for f in got), 60, spin=spin)
        frame = next(f for f in got if f.knobs.config_id == 'b')
        assert decode_jpeg(bytes(frame.image.data)).shape == (48, 64, 3)
        node.destroy_node()
    finally:
        peer.terminate()
        peer.wait(10)
