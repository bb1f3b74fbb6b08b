"""The edge streamer's logic (no ROS): camera frame -> maybe an encoded frame on the emulated uplink.

For each camera frame: the frame-rate knob may skip it; otherwise it is downsampled and JPEG-encoded with
the knobs in force *now* (a new config applies from the very next frame) and offered to the link, which
releases it at once, later (policy delay) or drops it. Released frames get consecutive sequence numbers,
so the cloud can count link losses as sequence gaps.

The node (streamer_node.py) only translates messages: Image -> RGB array, Packet -> EncodedFrame.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from runespoor_edge.codec import CodecError, edge_encode
from runespoor_edge.knobs import KnobError, KnobSettings
from runespoor_edge.link import Dropped, TokenBucketLink


@dataclass
class Packet:
    """One encoded frame (what an EncodedFrame carries)."""
    data: bytes
    knobs: KnobSettings
    source_size: tuple[int, int]   # (width, height) before downsampling [px]
    capture_time: float            # capture stamp [s]
    meta: Any = None               # opaque (the node keeps the camera header here)
    seq: int = -1                  # assigned when the link releases the frame
    offered: float = 0.0           # clock time it was offered to the link [s]
    released: float = 0.0          # clock time the link released it [s]

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def queue_delay_s(self) -> float:
        return max(0.0, self.released - self.offered)


@dataclass
class StepResult:
    sent: list[Packet] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    skipped: bool = False
    error: Optional[str] = None


@dataclass
class WindowStats:
    """Counters over one statistics window (-> LinkStats)."""
    window_s: float
    bytes_sent: int
    frames_sent: int
    dropped: int
    skipped: int
    queue_delay_ms: float          # mean over the frames sent in the window (0 when none)
    frames_total: int
    dropped_total: int
    bandwidth_kbps: float          # 0 = unlimited
    queue_length: int

    @property
    def bytes_per_s(self) -> float:
        return self.bytes_sent / self.window_s if self.window_s > 0 else 0.0

    @property
    def kbps(self) -> float:
        return self.bytes_per_s * 8 / 1000.0

    @property
    def frames_per_s(self) -> float:
        return self.frames_sent / self.window_s if self.window_s > 0 else 0.0


class FrameRateGate:
    """Frame-rate knob: admit frames so that at most `rate` per second of capture time pass.

    Keeps a due time that advances by the period on each admitted frame (so 30 fps -> 12 fps alternates
    2 and 3 frame gaps and averages 12 fps); a jump backwards in time (bag loop) or a long gap resets it.
    A tolerance of 10 % of the period absorbs camera stamp jitter.
    """

    def __init__(self):
        self.next_due: Optional[float] = None
        self.last: Optional[float] = None

    def reset(self) -> None:
        self.next_due = None

    def admit(self, t: float, rate: float) -> bool:
        if rate <= 0:
            self.next_due, self.last = None, t
            return True
        period = 1.0 / rate
        backwards = self.last is not None and t < self.last
        self.last = t
        if self.next_due is None or backwards or t >= self.next_due + period:
            self.next_due = t + period
            return True
        if t >= self.next_due - 0.1 * period:
            self.next_due += period
            return True
        return False


class Streamer:
    """Knobs + frame-rate gate + encoder + emulated link. All times come from `clock` or explicit `now`."""

    def __init__(self, knobs: KnobSettings = KnobSettings(), link: Optional[TokenBucketLink] = None,
                 safe_knobs: Optional[KnobSettings] = None, knob_timeout_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.knobs = knobs.validated()
        self.link = link if link is not None else TokenBucketLink(clock=clock)
        self.safe_knobs = (safe_knobs or KnobSettings(scale=4, jpeg_quality=50, config_id='safe',
                                                      reason='knob timeout')).validated()
        if not (math.isfinite(knob_timeout_s) and knob_timeout_s >= 0):
            raise KnobError(f'knob_timeout_s must be a finite number >= 0, got {knob_timeout_s!r}')
        self.knob_timeout_s = float(knob_timeout_s)
        self.gate = FrameRateGate()
        self.seq = 0
        self.skipped_total = 0
        self.in_safe_mode = False
        self._last_knobs_time: Optional[float] = None
        self._window_start: Optional[float] = self._now(None)
        self._win = dict(bytes=0, frames=0, dropped=0, skipped=0, delay=0.0)

    def _now(self, now):
        return self.clock() if now is None else float(now)

    # ------------------------------------------------------------------ knobs
    def set_knobs(self, knobs: KnobSettings, now: float | None = None, from_controller: bool = True) -> KnobSettings:
        """Apply `knobs` from the next frame on. Raises KnobError (and keeps the current knobs) if invalid."""
        knobs = knobs.validated()
        if knobs.frame_rate != self.knobs.frame_rate:
            self.gate.reset()  # the new rate governs the very next frame
        self.knobs = knobs
        if from_controller:
            self._last_knobs_time = self._now(now)
            self.in_safe_mode = False
        return knobs

    def controller_seen(self, now: float | None = None) -> None:
        """The controller is still there (its knobs publisher is discovered): restart the knob timeout.

        A live controller publishes only on changes, so silence alone does not mean it is gone."""
        if self._last_knobs_time is not None and not self.in_safe_mode:
            self._last_knobs_time = self._now(now)

    def check_knob_timeout(self, now: float | None = None) -> Optional[KnobSettings]:
        """Fall back to the safe knobs when the controller has been silent for knob_timeout_s (0 = never).

        Counts only once a controller config has been received; returns the safe knobs when it switched.
        """
        if self.knob_timeout_s <= 0 or self._last_knobs_time is None or self.in_safe_mode:
            return None
        if self._now(now) - self._last_knobs_time < self.knob_timeout_s:
            return None
        self.set_knobs(self.safe_knobs, now, from_controller=False)
        self.in_safe_mode = True
        return self.knobs

    # ------------------------------------------------------------------ frames
    def on_frame(self, rgb: np.ndarray, capture_time: float, meta: Any = None,
                 now: float | None = None) -> StepResult:
        """Process one camera frame (RGB uint8 HxWx3, capture stamp in seconds)."""
        now = self._now(now)
        self._start_window(now)
        result = StepResult()
        if not self.link.started:
            self.link.start(now)  # the bandwidth schedule starts with the first camera frame
        if not self.gate.admit(capture_time, self.knobs.frame_rate):
            result.skipped = True
            self.skipped_total += 1
            self._win['skipped'] += 1
            self._collect(result, *self.link.poll(now))
            return result
        knobs = self.knobs
        try:
            data = edge_encode(rgb, knobs.scale, knobs.jpeg_quality)
        except CodecError as exc:
            result.error = str(exc)
            self._collect(result, *self.link.poll(now))
            return result
        h, w = rgb.shape[:2]
        packet = Packet(data=data, knobs=knobs, source_size=(w, h), capture_time=float(capture_time),
                        meta=meta, offered=now)
        self._collect(result, *self.link.offer(packet, len(data), now))
        return result

    def poll(self, now: float | None = None) -> StepResult:
        """Release what the link now allows (call regularly when the link policy is delay)."""
        now = self._now(now)
        self._start_window(now)
        result = StepResult()
        self._collect(result, *self.link.poll(now))
        return result

    def _collect(self, result: StepResult, released, dropped) -> None:
        for r in released:
            p: Packet = r.payload
            p.released = r.released
            p.seq = self.seq
            self.seq += 1
            result.sent.append(p)
            self._win['bytes'] += p.nbytes
            self._win['frames'] += 1
            self._win['delay'] += p.queue_delay_s
        result.dropped.extend(dropped)
        self._win['dropped'] += len(dropped)

    # ------------------------------------------------------------------ statistics
    def _start_window(self, now: float) -> None:
        if self._window_start is None:
            self._window_start = now

    def take_window(self, now: float | None = None) -> WindowStats:
        """Statistics since the previous call (or the construction), then start a new window."""
        now = self._now(now)
        start = self._window_start if self._window_start is not None else now
        w = self._win
        stats = WindowStats(
            window_s=max(0.0, now - start), bytes_sent=w['bytes'], frames_sent=w['frames'],
            dropped=w['dropped'], skipped=w['skipped'],
            queue_delay_ms=1000.0 * w['delay'] / w['frames'] if w['frames'] else 0.0,
            frames_total=self.link.counters.sent_frames, dropped_total=self.link.counters.dropped_frames,
            bandwidth_kbps=self.link.rate_kbps(now),
            queue_length=self.link.queue_length)
        self._window_start = now
        self._win = dict(bytes=0, frames=0, dropped=0, skipped=0, delay=0.0)
        return stats
