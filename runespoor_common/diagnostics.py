"""Per-node statistics published as diagnostic_msgs/DiagnosticArray on /diagnostics once a second."""
from __future__ import annotations

import collections
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from runespoor_common.graph import DIAGNOSTICS
from runespoor_common.qos import RELIABLE_QOS


class NodeStats:
    """Counters, a processing rate and latency/time windows for one node (pure, no ROS)."""

    def __init__(self, window: int = 100):
        self.started = time.monotonic()
        self.frames = 0
        self.errors: collections.Counter = collections.Counter()
        self.times_ms: collections.deque = collections.deque(maxlen=window)
        self.latency_ms: collections.deque = collections.deque(maxlen=window)
        self.done: collections.deque = collections.deque(maxlen=window)
        self.values: dict[str, str] = {}

    def frame(self, time_ms: float | None = None, latency_ms: float | None = None) -> None:
        self.frames += 1
        self.done.append(time.monotonic())
        if time_ms is not None:
            self.times_ms.append(time_ms)
        if latency_ms is not None:
            self.latency_ms.append(latency_ms)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def rate(self) -> float:
        now = time.monotonic()
        recent = [t for t in self.done if now - t <= 5.0]
        return len(recent) / 5.0 if recent else 0.0

    def key_values(self) -> dict[str, str]:
        kv = {'frames': str(self.frames), 'rate_hz': f'{self.rate():.2f}'}
        if self.times_ms:
            kv['time_ms_median'] = f'{np.median(self.times_ms):.2f}'
        if self.latency_ms:
            kv['latency_ms_median'] = f'{np.median(self.latency_ms):.1f}'
        for k, v in sorted(self.errors.items()):
            kv[f'rejected_{k}'] = str(v)
        kv.update(self.values)
        return kv


def attach(node, stats: NodeStats, period_s: float = 1.0):
    """Publish `stats` of `node` on /diagnostics every `period_s` (returns the timer)."""
    pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS, RELIABLE_QOS)

    def tick():
        kv = stats.key_values()
        status = DiagnosticStatus(name=f'runespoor: {node.get_fully_qualified_name()}',
                                  hardware_id='runespoor')
        stale = stats.frames > 0 and stats.rate() == 0.0
        status.level = DiagnosticStatus.WARN if (stats.errors or stale) else DiagnosticStatus.OK
        parts = [f'{kv["rate_hz"]} frames/s']
        if stats.errors:
            parts.append(f'{sum(stats.errors.values())} rejected')
        if stale:
            parts.append('no input for 5 s')
        status.message = ', '.join(parts)
        status.values = [KeyValue(key=k, value=v) for k, v in kv.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)

    return node.create_timer(period_s, tick)
