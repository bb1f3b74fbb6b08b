"""A minimal peer process for transport tests: applies each KnobConfig it receives to a synthetic
frame and publishes it as an EncodedFrame (runespoor/uplink). Not a product node."""
import sys

import numpy as np
import rclpy
from rclpy.node import Node

from runespoor.msg import EncodedFrame, KnobConfig
from runespoor_common.node_main import run_node
from runespoor_common.qos import LATCHED_QOS, SENSOR_QOS
from runespoor_edge.codec import edge_encode


class EchoPeer(Node):
    def __init__(self):
        super().__init__('echo_peer')
        self.pub = self.create_publisher(EncodedFrame, 'runespoor/uplink', SENSOR_QOS)
        self.create_subscription(KnobConfig, 'runespoor/knobs', self.on_knobs, LATCHED_QOS)
        self.knobs = None
        self.seq = 0
        self.image = (np.indices((96, 128)).sum(axis=0) % 255).astype(np.uint8)[..., None].repeat(3, 2)
        self.create_timer(0.1, self.tick)

    def on_knobs(self, msg):
        self.knobs = msg

    def tick(self):
        if self.knobs is None:
            return
        out = EncodedFrame()
        out.header.stamp = self.get_clock().now().to_msg()
        out.header.frame_id = 'camera'
        out.seq = self.seq
        out.source_width, out.source_height = 128, 96
        out.knobs = self.knobs
        out.image.format = 'jpeg'
        out.image.data = edge_encode(self.image, self.knobs.scale, self.knobs.jpeg_quality)
        self.pub.publish(out)
        self.seq += 1


if __name__ == '__main__':
    sys.exit(run_node(EchoPeer))
