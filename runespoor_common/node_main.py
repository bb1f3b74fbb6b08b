"""`main()` for every node and for several nodes in one process: init, construct, spin, shut down cleanly
(SIGINT/SIGTERM), exit codes. Which nodes share a process is decided by the caller (a node's own `main`,
or a combined process such as runespoor_cloud/cloud_process.py), never inside a node."""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor


def run_node(factory: Callable[[], object] | Sequence[Callable[[], object]], args=None,
             multithreaded: bool = False, num_threads: int | None = None,
             connect: Callable[[list], None] | None = None) -> int:
    """Create the node with `factory()` (or one node per factory of a sequence, in order) and spin until
    shutdown; then close() (where a node has one) and destroy every node that was created.

    ``connect(nodes)``: called once all nodes exist, e.g. to hand frames from one node to the next by
    direct calls. Several nodes or ``multithreaded`` spin in a MultiThreadedExecutor (``num_threads``
    threads, default the executor's).

    Returns 0 on a clean stop, 2 when a node could not start (bad parameters, missing files): the
    reason is logged, not a traceback.
    """
    # Network safety by default: discovery stays on this host unless the operator exported a range
    # (a real robot-to-cloud deployment sets SUBNET or static peers explicitly). rcl reads it when
    # rclpy.init() creates the context, so setting it here, before init, is enough.
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    factories = list(factory) if isinstance(factory, Sequence) else [factory]
    rclpy.init(args=args if args is not None else sys.argv)
    # SIGTERM (what the runner and launch send on shutdown) stops spinning like SIGINT does.
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    nodes = []
    try:
        try:
            for make in factories:
                nodes.append(make())
            if connect is not None:
                connect(nodes)
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
            rclpy.logging.get_logger('runespoor').fatal(f'cannot start: {exc}')
            return 2
        several = multithreaded or len(nodes) > 1
        executor = MultiThreadedExecutor(num_threads=num_threads) if several else SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in reversed(nodes):
            close = getattr(node, 'close', None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
