"""All cloud nodes in one process (`runespoor launch cloud --single-process`).

The restorer hands restored frames to the segmentation node, and that its label maps to the tail
detector, by direct calls: full-resolution images never go through DDS (they are still published on
their topics when someone, e.g. rviz, subscribes). Knobs, reports and frame info still use topics.
A multi-threaded executor runs the nodes; parameters come from the same YAML (keyed by node name).
"""
from __future__ import annotations

import sys


def build_nodes(context=None):
    from runespoor_cloud.controller_node import ControllerNode
    from runespoor_cloud.restorer_node import RestorerNode
    from runespoor_cloud.segmentation_node import SegmentationNode
    from runespoor_cloud.tail_detector_node import TailDetectorNode
    kw = {} if context is None else {'context': context}
    restorer, seg = RestorerNode(**kw), SegmentationNode(direct=True, **kw)
    tail, ctrl = TailDetectorNode(direct=True, **kw), ControllerNode(**kw)
    seg.sink = tail.process
    restorer.sink = lambda rgb, header, info: (tail.on_info(info), seg.process(rgb, header))
    return [restorer, seg, tail, ctrl]


def main(args=None) -> int:
    import os
    import signal
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    rclpy.init(args=args if args is not None else sys.argv)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    nodes = []
    try:
        try:
            nodes = build_nodes()
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
            rclpy.logging.get_logger('runespoor.cloud').fatal(f'cannot start: {exc}')
            return 2
        executor = MultiThreadedExecutor(num_threads=4)
        for n in nodes:
            executor.add_node(n)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for n in nodes:
            n.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
