"""`main()` for every node and for several nodes in one process: init, construct, spin, shut down cleanly
(SIGINT/SIGTERM), exit codes. Which nodes share a process is decided by the caller (a node's own `main`,
or a combined process such as runespoor_cloud/cloud_process.py), never inside a node.

Shutdown order (why a stop is quiet): rclpy's own signal handlers are not installed. SIGINT/SIGTERM only
ask the spin loop to stop; then the executor stops dispatching and waits for the callbacks in flight, each
node's ``close()`` stops its threads, the nodes are destroyed, and only then is the context shut down. No
callback or thread publishes on a dead context, so there is no ``RCLError: ... context is invalid``, no
"exception was never retrieved" and no traceback. A publish that still races an external shutdown (the
context shut down by someone else) is treated as the end of the run, not as an error (:func:`is_shutdown_error`).
"""
from __future__ import annotations

import enum
import os
import signal
import sys
import threading
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

#: how long a stop waits for callbacks in flight before the nodes are destroyed anyway [s]
STOP_CALLBACKS_TIMEOUT_S = 5.0
SPIN_PERIOD_S = 0.1


class _Phase(enum.Enum):
    STARTING = 0
    SPINNING = 1
    STOPPING = 2


def is_shutdown_error(exc: BaseException, context=None) -> bool:
    """True when `exc` only says that the ROS context went away (a publish, wait or timer racing a
    shutdown), i.e. the run is over and nothing failed."""
    from rclpy._rclpy_pybind11 import InvalidHandle, RCLError
    if isinstance(exc, ExternalShutdownException):
        return True
    if not isinstance(exc, (RCLError, InvalidHandle)):
        return False
    text = str(exc).lower()
    context_gone = context is not None and not context.ok()
    return context_gone or 'context is invalid' in text or 'context is not valid' in text \
        or 'destroyed' in text or 'destruction was requested' in text or 'is shutdown' in text


def run_node(factory: Callable[[], object] | Sequence[Callable[[], object]], args=None,
             multithreaded: bool = False, num_threads: int | None = None,
             connect: Callable[[list], None] | None = None) -> int:
    """Create the node with `factory()` (or one node per factory of a sequence, in order) and spin until
    SIGINT/SIGTERM or an rclpy shutdown; then close() (where a node has one) and destroy every node that
    was created, and shut the context down last.

    ``connect(nodes)``: called once all nodes exist, e.g. to hand frames from one node to the next by
    direct calls. Several nodes or ``multithreaded`` spin in a MultiThreadedExecutor (``num_threads``
    threads, default the executor's).

    Returns 0 on a clean stop (also when interrupted during start-up), 2 when a node could not start (bad
    parameters, missing files): the reason is logged in one line, not a traceback.
    """
    # Network safety by default: discovery stays on this host unless the operator exported a range
    # (a real robot-to-cloud deployment sets SUBNET or static peers explicitly). rcl reads it when
    # rclpy.init() creates the context, so setting it here, before init, is enough.
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    factories = list(factory) if isinstance(factory, Sequence) else [factory]
    main_thread = threading.current_thread() is threading.main_thread()
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO if main_thread else None)
    context = rclpy.get_default_context()
    logger = rclpy.logging.get_logger('runespoor')
    stop = threading.Event()
    phase = [_Phase.STARTING]

    def on_signal(signum, _frame):
        if phase[0] is _Phase.STARTING:   # loading models etc.: abandon the start-up at once
            raise KeyboardInterrupt
        stop.set()                        # spinning or stopping: the loop ends within SPIN_PERIOD_S

    previous = {}
    if main_thread:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    nodes: list = []
    executor = None
    try:
        try:
            for make in factories:
                nodes.append(make())
            if connect is not None:
                connect(nodes)
            phase[0] = _Phase.SPINNING   # from here on a signal only asks the loop to stop
        except KeyboardInterrupt:
            phase[0] = _Phase.STOPPING
            logger.info('interrupted during start-up')
            return 0
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
            phase[0] = _Phase.STOPPING
            if is_shutdown_error(exc, context):
                return 0
            logger.fatal(f'cannot start: {exc}')
            return 2
        several = multithreaded or len(nodes) > 1
        executor = (MultiThreadedExecutor(num_threads=num_threads, context=context) if several
                    else SingleThreadedExecutor(context=context))
        for node in nodes:
            executor.add_node(node)
        while not stop.is_set() and context.ok():
            try:
                executor.spin_once(timeout_sec=SPIN_PERIOD_S)
            except KeyboardInterrupt:
                break
            except Exception as exc:  # noqa: BLE001 - a callback's error: fatal unless it is the shutdown
                if stop.is_set() or is_shutdown_error(exc, context):
                    break
                raise
    finally:
        phase[0] = _Phase.STOPPING
        _stop_quietly(executor, nodes, logger)
        rclpy.try_shutdown(context=context)
        # The process is on its way out (run_node is every node process's main): a second SIGINT/SIGTERM
        # (a terminal and `ros2 launch` each send one) must not raise KeyboardInterrupt in the rest of the
        # exit, such as torch's atexit hooks, so further stop signals are ignored rather than restored.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
    return 0


def _stop_quietly(executor, nodes: list, logger) -> None:
    """Stop dispatching, wait for the callbacks in flight, then close and destroy the nodes (newest
    first). Errors that only say the context is gone are dropped; others are logged in one line."""
    if executor is not None:
        try:
            if not executor.shutdown(timeout_sec=STOP_CALLBACKS_TIMEOUT_S):
                logger.warning(f'callbacks still running {STOP_CALLBACKS_TIMEOUT_S:g} s after the stop')
        except Exception as exc:  # noqa: BLE001
            if not is_shutdown_error(exc):
                logger.warning(f'executor shutdown: {type(exc).__name__}: {exc}')
        # a MultiThreadedExecutor keeps the futures of finished callbacks until its next spin: read their
        # exceptions here (a callback that raised while the stop was on its way), so none is reported as
        # "never retrieved" when it is garbage-collected
        for fut in list(getattr(executor, '_futures', []) or []):
            try:
                exc = fut.exception() if fut.done() else None
            except Exception:  # noqa: BLE001
                exc = None
            if exc is not None and not is_shutdown_error(exc):
                logger.warning(f'a callback failed during the stop: {type(exc).__name__}: {exc}')
    for node in reversed(nodes):
        for step in ('close', 'destroy_node'):
            fn = getattr(node, step, None)
            if not callable(fn):
                continue
            try:
                fn()
            except Exception as exc:  # noqa: BLE001
                if not is_shutdown_error(exc):
                    logger.warning(f'{step}() of {getattr(node, "get_name", lambda: "?")()}: '
                                   f'{type(exc).__name__}: {exc}')
