"""All cloud nodes in one process (`runespoor launch cloud --single-process`).

The restorer hands restored frames to the segmentation node, and that its label maps to the tail
detector, by direct calls: full-resolution images never go through DDS (they are still published on
their topics when someone, e.g. rviz, subscribes). Knobs, reports and frame info still use topics.
This module only lists the node factories and how they connect; the shared runner
(runespoor_common/node_main.py) spins them in a multi-threaded executor and shuts them down.
Parameters come from the same YAML (keyed by node name).
"""
from __future__ import annotations

import functools
import sys

from runespoor_cloud.controller_node import ControllerNode
from runespoor_cloud.restorer_node import RestorerNode
from runespoor_cloud.segmentation_node import SegmentationNode
from runespoor_cloud.tail_detector_node import TailDetectorNode
from runespoor_common.node_main import run_node

#: In order: restorer, segmentation and tail detector fed by direct calls (no subscription), controller.
FACTORIES = (RestorerNode, functools.partial(SegmentationNode, direct=True),
             functools.partial(TailDetectorNode, direct=True), ControllerNode)
EXECUTOR_THREADS = 4


def connect(nodes: list) -> None:
    """restorer -> segmentation -> tail detector by direct calls (the frame info too, so the tail detector
    has it before the labels arrive)."""
    restorer, seg, tail, _ = nodes
    seg.sink = tail.process
    restorer.sink = lambda rgb, header, info: (tail.on_info(info), seg.process(rgb, header))


def build_nodes(context=None) -> list:
    """The connected nodes without spinning them (tests; `context`: an rclpy Context)."""
    kw = {} if context is None else {'context': context}
    nodes = [make(**kw) for make in FACTORIES]
    connect(nodes)
    return nodes


def main(args=None) -> int:
    return run_node(FACTORIES, args, multithreaded=True, num_threads=EXECUTOR_THREADS, connect=connect)


if __name__ == '__main__':
    sys.exit(main())
