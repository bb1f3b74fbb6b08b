"""Segmentation node: runespoor/restored -> runespoor/segmentation/labels (mono8 class ids, 255 =
ignore) and runespoor/segmentation/overlay (rgb8 palette blend, for rviz), same header; the class map
once on runespoor/class_map (reliable + transient local). The segment stage of the cloud chain
(runespoor_cloud/chain.py)."""
from __future__ import annotations

import sys
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image

from runespoor.msg import ClassMap
from runespoor_cloud.chain import CloudChain
from runespoor_cloud.overlay import blend_overlay, palette_lut
from runespoor_cloud.models import ModelFileError
from runespoor_cloud.segmentation import Segmenter, check_weights, default_weights
from runespoor_cloud.serving import SERVING_PARAMS, inference_options, warmup_size
from runespoor_common import graph
from runespoor_common.diagnostics import NodeStats, attach
from runespoor_common.imgconv import ImageEncodingError, image_to_rgb, labels_to_image, rgb_to_image
from runespoor_common.node_main import run_node
from runespoor_common.params import Param, declare, in_range, one_of
from runespoor_common.qos import IMAGE_QOS, LATCHED_QOS, RESTORED_IN_QOS

PARAMS = [
    Param('arch', 'espnet', 'segmentation architecture (registry name)', read_only=True),
    Param('dataset', 'camvid', 'data set of the model: class names, palette, preprocessing',
          one_of('camvid', 'cityscapes'), read_only=True),
    Param('weights', '', 'weight file; empty = <model dir>/espnet/espnet_p_2_q_8_<dataset>.pth, model dir = '
          '$RUNESPOOR_MODELS or ../shared/models', read_only=True),
    Param('overlay_alpha', 0.5, 'weight of the class colours in the overlay', in_range(0.0, 1.0)),
    Param('publish_overlay', True, f'publish {graph.SEG_OVERLAY}'),
] + SERVING_PARAMS


def check_config(values: dict) -> list[str]:
    """Start-up checks without ROS (runespoor launch / demo run them before any node starts): the weight file
    exists, reads, and has the output count of the data set (a Cityscapes model is refused as CamVid)."""
    try:
        weights = values['weights'] or default_weights(values['arch'], values['dataset'])
        check_weights(values['arch'], weights, values['dataset'])
    except (ModelFileError, KeyError, ValueError) as exc:
        return [str(exc)]
    return []


class SegmentationNode(Node):
    def __init__(self, direct: bool = False, **kwargs):
        """`direct`: frames arrive by calls to process() (single-process cloud), no subscription."""
        super().__init__('segmentation', **kwargs)
        self.p = declare(self, PARAMS)
        t0 = time.monotonic()
        self.seg = Segmenter(arch=self.p['arch'], weights=self.p['weights'] or None, dataset=self.p['dataset'],
                             device=self.p['device'], threads=self.p['threads'] or None,
                             options=inference_options(self.p['optimized']))
        self.chain = CloudChain(segmenter=self.seg, tail=None)  # this node runs the segment stage
        info = self.seg.info
        self.palette = palette_lut(info.palette, info.ignore_label)
        size = warmup_size(self.p['warmup_size'], self.p['dataset'])
        if size is not None:  # the graph is traced now, not on the first real frame
            self.seg.warmup(size)
        self.get_logger().info(f'{self.p["arch"]} ({info.name}, {info.num_classes} classes) from '
                               f'{self.seg.weights} on {self.p["device"]} in {time.monotonic() - t0:.1f} s'
                               + (f' (warmed up at {size[0]}x{size[1]})' if size else ''))
        self.stats = NodeStats()
        self.sink = None  # single-process mode: callable(labels, header) instead of DDS
        self.labels_pub = self.create_publisher(Image, graph.SEG_LABELS, IMAGE_QOS)
        self.overlay_pub = self.create_publisher(Image, graph.SEG_OVERLAY, IMAGE_QOS)
        self.class_pub = self.create_publisher(ClassMap, graph.CLASS_MAP, LATCHED_QOS)
        cm = ClassMap(dataset=info.name, model=self.p['arch'], ignore_label=255,
                      class_ids=list(range(info.num_classes)), class_names=list(info.class_names),
                      colors_rgb=[int(c) for rgb in info.palette for c in rgb])
        cm.header.stamp = self.get_clock().now().to_msg()
        self.class_pub.publish(cm)
        if not direct:
            self.create_subscription(Image, graph.RESTORED, self.on_image, RESTORED_IN_QOS)
        attach(self, self.stats)

    def on_image(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except ImageEncodingError as exc:
            self.stats.error('encoding')
            self.get_logger().warning(f'rejected image: {exc}', throttle_duration_sec=2.0)
            return
        self.process(rgb, msg.header)

    def process(self, rgb: np.ndarray, header) -> np.ndarray:
        t0 = time.perf_counter()
        labels = self.chain.segment(rgb)
        if self.sink is not None:
            self.sink(labels, header)
        self.labels_pub.publish(labels_to_image(labels, header))
        if self.p['publish_overlay'] and self.overlay_pub.get_subscription_count() > 0:
            self.overlay_pub.publish(rgb_to_image(
                blend_overlay(rgb, labels, self.palette, self.p['overlay_alpha']), 'rgb8', header))
        now = self.get_clock().now().nanoseconds
        self.stats.frame((time.perf_counter() - t0) * 1000,
                         (now - (header.stamp.sec * 10**9 + header.stamp.nanosec)) / 1e6)
        return labels


def main(args=None):
    return run_node(SegmentationNode, args)


if __name__ == '__main__':
    sys.exit(main())
