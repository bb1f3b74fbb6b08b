"""`main()` for every node: init, construct, spin, shut down cleanly (SIGINT/SIGTERM), exit codes."""
from __future__ import annotations

import signal
import sys
from typing import Callable


def run_node(factory: Callable[[], object], args=None, multithreaded: bool = False) -> int:
    """Create the node with `factory()` and spin it until shutdown.

    Returns 0 on a clean stop, 2 when the node could not start (bad parameters, missing files): the
    reason is logged, not a traceback.
    """
    import os

    # Network safety by default: discovery stays on this host unless the operator exported a range
    # (a real robot-to-cloud deployment sets SUBNET or static peers explicitly).
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

    rclpy.init(args=args if args is not None else sys.argv)
    # SIGTERM (what the runner and launch send on shutdown) stops spinning like SIGINT does.
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    node = None
    try:
        try:
            node = factory()
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
            rclpy.logging.get_logger('runespoor').fatal(f'cannot start: {exc}')
            return 2
        executor = MultiThreadedExecutor() if multithreaded else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
