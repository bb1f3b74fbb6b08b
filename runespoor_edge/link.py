"""Emulated uplink: a link of bandwidth r(t) kbit/s (optionally a bandwidth schedule) in front of a
bounded queue, as a token bucket (pure logic, no ROS).

Tokens (bits) accrue at the current bandwidth r(t). The frame at the head of the queue is "on the wire":
it leaves (is released) once the bucket holds its `8 * nbytes` bits, which it then consumes -- so a frame
of b bits takes b / r seconds to cross an idle link, like a real bottleneck, and queued frames follow
back to back. While no frame waits, the
bucket keeps at most `burst_s * r(t)` bits (default 0: an idle link earns nothing, the exact-link model).
Hence from start the released bits never exceed the scheduled bits (plus the idle burst when
`burst_s > 0`), and over any window (t1, t2] they never exceed the scheduled bits in the window plus one
frame (or the burst, whichever is larger) -- the link is never over budget.

Policy "delay": up to `max_queue` frames wait behind the one on the wire (FIFO); when the queue is full
the oldest waiting frame is dropped ('queue_full'), and waiting frames older than `max_delay_s` are
dropped ('stale'); a frame on the wire always completes. Policy "drop": a frame that cannot leave at
once while another is on the wire is dropped ('busy'); no queue. Bandwidth 0 means an unlimited link.

The schedule "0:10000,5:5000,12:2000,19:10000" means 10 Mbit/s from t = 0 s, 5 Mbit/s from 5 s, ...
where t is measured from `start()` (the streamer starts the link at its first camera frame); the last
rate holds forever. Time comes from an injectable clock (default `time.monotonic`) or explicit `now`.

Hand-written: no maintained Python package emulates a time-varying shaped link in-process.
"""
from __future__ import annotations

import bisect
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

POLICIES = ('delay', 'drop')
_EPS_BITS = 1e-3  # float rounding of rate x time (0.2 s x 1e6 bit/s = 199999.99999...)


class LinkError(ValueError):
    """Invalid link settings (bandwidth, schedule text, policy, queue bounds)."""


@dataclass(frozen=True)
class Schedule:
    """Piecewise-constant bandwidth: rate steps[i][1] kbit/s from steps[i][0] s on (steps[0][0] == 0)."""
    steps: tuple[tuple[float, float], ...]

    def __post_init__(self):
        if not self.steps:
            raise LinkError('a bandwidth schedule needs at least one "seconds:kbps" entry')
        times = [t for t, _ in self.steps]
        if times[0] != 0:
            raise LinkError(f'a bandwidth schedule must start at 0 s, got {times[0]:g} s')
        for (t0, _), (t1, _) in zip(self.steps, self.steps[1:]):
            if not t1 > t0:
                raise LinkError(f'schedule times must increase strictly, got {t0:g} then {t1:g}')
        for t, k in self.steps:
            if not (math.isfinite(t) and math.isfinite(k)) or k <= 0:
                raise LinkError(f'schedule entry {t:g}:{k:g} needs a finite time and a bandwidth > 0 kbit/s')

    @classmethod
    def parse(cls, text: str) -> 'Schedule':
        """Parse "t_s:kbps,t_s:kbps,..." (spaces allowed)."""
        steps = []
        for part in str(text).replace(' ', '').split(','):
            if not part:
                continue
            try:
                t, k = part.split(':')
                steps.append((float(t), float(k)))
            except ValueError:
                raise LinkError(f'bad schedule entry {part!r} in {text!r}; expected "seconds:kbps"') from None
        return cls(tuple(steps))

    @classmethod
    def constant(cls, kbps: float) -> 'Schedule':
        return cls(((0.0, float(kbps)),))

    def format(self) -> str:
        return ','.join(f'{t:g}:{k:g}' for t, k in self.steps)

    def rate_at(self, t: float) -> float:
        """Bandwidth at t seconds [kbit/s] (the first rate before 0)."""
        i = bisect.bisect_right([s for s, _ in self.steps], t) - 1
        return self.steps[max(i, 0)][1]

    def kbit_between(self, t1: float, t2: float) -> float:
        """Integral of the bandwidth over [t1, t2] [kbit]."""
        if t2 <= t1:
            return 0.0
        total = 0.0
        for i, (s, k) in enumerate(self.steps):
            e = self.steps[i + 1][0] if i + 1 < len(self.steps) else math.inf
            lo, hi = max(t1, s if i else -math.inf), min(t2, e)
            if hi > lo:
                total += k * (hi - lo)
        return total

    def segments(self, t1: float, t2: float):
        """(start, end, kbps) pieces covering [t1, t2]."""
        for i, (s, k) in enumerate(self.steps):
            e = self.steps[i + 1][0] if i + 1 < len(self.steps) else math.inf
            lo, hi = max(t1, s if i else -math.inf), min(t2, e)
            if hi > lo:
                yield lo, hi, k


@dataclass
class Released:
    """A frame that left the link: `payload` as offered, when it was offered and released [clock s]."""
    payload: Any
    nbytes: int
    offered: float
    released: float

    @property
    def queue_delay_s(self) -> float:
        return self.released - self.offered


@dataclass
class Dropped:
    payload: Any
    nbytes: int
    reason: str   # 'busy' (drop policy), 'queue_full', 'stale' (delay policy)


@dataclass
class LinkCounters:
    sent_frames: int = 0
    sent_bytes: int = 0
    dropped: dict = field(default_factory=dict)

    @property
    def dropped_frames(self) -> int:
        return sum(self.dropped.values())


class TokenBucketLink:
    """The emulated uplink. Call `offer()` for each encoded frame and `poll()` regularly (policy delay)."""

    def __init__(self, bandwidth_kbps: float = 0.0, schedule: str | Schedule | None = None,
                 policy: str = 'delay', burst_s: float = 0.0, max_queue: int = 3, max_delay_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._t0: Optional[float] = None
        self._t_last: Optional[float] = None
        self._tokens = 0.0  # bits
        self._queue: deque = deque()
        self.counters = LinkCounters()
        self.configure(bandwidth_kbps=bandwidth_kbps, schedule=schedule, policy=policy, burst_s=burst_s,
                       max_queue=max_queue, max_delay_s=max_delay_s)

    # ------------------------------------------------------------------ configuration
    def configure(self, *, bandwidth_kbps=None, schedule=None, policy=None, burst_s=None, max_queue=None,
                  max_delay_s=None, now: float | None = None) -> None:
        """Change settings (validated all together; on error nothing changes). Tokens earned so far are kept.

        `schedule`: text or Schedule; '' clears it (constant `bandwidth_kbps` then applies).
        """
        cur = getattr(self, '_settings', {})
        new = dict(cur)
        for k, v in (('bandwidth_kbps', bandwidth_kbps), ('policy', policy), ('burst_s', burst_s),
                     ('max_queue', max_queue), ('max_delay_s', max_delay_s)):
            if v is not None:
                new[k] = v
        if schedule is not None:
            new['schedule'] = (schedule if isinstance(schedule, Schedule)
                               else Schedule.parse(schedule) if str(schedule).strip() else None)
        bw = new['bandwidth_kbps']
        if isinstance(bw, bool) or not isinstance(bw, (int, float)) or not math.isfinite(bw) or bw < 0:
            raise LinkError(f'bandwidth_kbps must be a finite number >= 0 (0 = unlimited), got {bw!r}')
        if new['policy'] not in POLICIES:
            raise LinkError(f'link policy must be one of {list(POLICIES)}, got {new["policy"]!r}')
        if not (isinstance(new['burst_s'], (int, float)) and math.isfinite(new['burst_s'])
                and new['burst_s'] >= 0):
            raise LinkError(f'burst_s must be a finite number >= 0, got {new["burst_s"]!r}')
        if isinstance(new['max_queue'], bool) or not isinstance(new['max_queue'], int) or new['max_queue'] < 0:
            raise LinkError(f'max_queue must be an integer >= 0, got {new["max_queue"]!r}')
        if not (isinstance(new['max_delay_s'], (int, float)) and new['max_delay_s'] > 0):
            raise LinkError(f'max_delay_s must be a number > 0, got {new["max_delay_s"]!r}')
        new.setdefault('schedule', None)
        if self._t_last is not None:
            self._advance(self._now(now))
        self._settings = new
        if self._t_last is not None:
            self._tokens = min(self._tokens, self.capacity_bits(self._t_last))

    @property
    def policy(self) -> str:
        return self._settings['policy']

    @property
    def schedule(self) -> Optional[Schedule]:
        return self._settings['schedule']

    @property
    def max_queue(self) -> int:
        return self._settings['max_queue']

    def _now(self, now):
        return self.clock() if now is None else float(now)

    def start(self, now: float | None = None) -> None:
        """Start the schedule clock (t = 0) with a full bucket. Called by the first offer() otherwise."""
        now = self._now(now)
        self._t0 = self._t_last = now
        self._tokens = self.capacity_bits(now)

    @property
    def started(self) -> bool:
        return self._t0 is not None

    def elapsed(self, now: float | None = None) -> float:
        return 0.0 if self._t0 is None else self._now(now) - self._t0

    def rate_kbps(self, now: float | None = None) -> float:
        """Current bandwidth [kbit/s]; 0 = unlimited."""
        sched = self._settings['schedule']
        if sched is not None:
            return sched.rate_at(self.elapsed(now))
        return float(self._settings['bandwidth_kbps'])

    @property
    def unlimited(self) -> bool:
        return self._settings['schedule'] is None and self._settings['bandwidth_kbps'] == 0

    def capacity_bits(self, now: float | None = None) -> float:
        """Most bits the bucket holds now: the idle burst, or what the frame on the wire needs."""
        if self.unlimited:
            return math.inf
        return self._cap(self.rate_kbps(now))

    def _cap(self, kbps: float) -> float:
        # while frames wait the link is busy and earns up to the whole backlog (frames go back to back,
        # so the poll granularity never costs link time); idle, it keeps at most the burst
        idle = self._settings['burst_s'] * kbps * 1000.0
        return max(idle, 8.0 * sum(item[1] for item in self._queue)) if self._queue else idle

    # ------------------------------------------------------------------ token accounting
    def _advance(self, now: float) -> None:
        if self._t0 is None:
            self.start(now)
            return
        if now <= self._t_last:
            return
        if self.unlimited:
            self._tokens = math.inf
        else:
            sched = self._settings['schedule'] or Schedule.constant(self._settings['bandwidth_kbps'])
            t1, t2 = self._t_last - self._t0, now - self._t0
            for lo, hi, kbps in sched.segments(t1, t2):
                cap = self._cap(kbps)
                self._tokens = min(cap, min(self._tokens, cap) + kbps * 1000.0 * (hi - lo))
        self._t_last = now

    def tokens_bits(self, now: float | None = None) -> float:
        self._advance(self._now(now))
        return self._tokens

    def _release(self, item, now) -> Released:
        payload, nbytes, offered = item
        self._tokens = max(0.0, self._tokens - nbytes * 8.0)
        self.counters.sent_frames += 1
        self.counters.sent_bytes += nbytes
        return Released(payload, nbytes, offered, now)

    def _drop(self, item, reason, dropped: list) -> None:
        self.counters.dropped[reason] = self.counters.dropped.get(reason, 0) + 1
        dropped.append(Dropped(item[0], item[1], reason))

    # ------------------------------------------------------------------ the interface
    def offer(self, payload: Any, nbytes: int, now: float | None = None) -> tuple[list[Released], list[Dropped]]:
        """Hand a frame of `nbytes` to the link. Returns the frames released now (FIFO: queued ones first,
        possibly this one) and the frames dropped now (possibly this one, with the reason)."""
        now = self._now(now)
        released, dropped = self.poll(now)
        item = (payload, int(nbytes), now)
        if self._queue and self.policy == 'drop':
            self._drop(item, 'busy', dropped)
            return released, dropped
        if self._queue and len(self._queue) - 1 >= self.max_queue:
            self._drop(self._queue[1], 'queue_full', dropped)  # the oldest waiting frame (not the one on the wire)
            del self._queue[1]
        self._queue.append(item)
        r2, d2 = self.poll(now)
        return released + r2, dropped + d2

    def poll(self, now: float | None = None) -> tuple[list[Released], list[Dropped]]:
        """Release the frames whose bits the link has now carried; drop those that waited too long."""
        now = self._now(now)
        self._advance(now)
        released, dropped = [], []
        max_delay = self._settings['max_delay_s']
        for i in range(len(self._queue) - 1, 0, -1):  # waiting frames (not on the wire) that are too old
            if now - self._queue[i][2] > max_delay:
                self._drop(self._queue[i], 'stale', dropped)
                del self._queue[i]
        while self._queue and self._queue[0][1] * 8.0 <= self._tokens + _EPS_BITS:
            released.append(self._release(self._queue.popleft(), now))
            # the next frame reaches the wire now; it goes if it waited too long already
            while self._queue and now - self._queue[0][2] > max_delay:
                self._drop(self._queue.popleft(), 'stale', dropped)
        if not self._queue:  # the link went idle: what it earned beyond the burst is lost
            self._tokens = min(self._tokens, self.capacity_bits(now))
        return released, dropped

    def next_release_time(self, now: float | None = None) -> Optional[float]:
        """Earliest clock time at which the queue head can go (assuming the current rate), or None."""
        now = self._now(now)
        self._advance(now)
        if not self._queue:
            return None
        need = self._queue[0][1] * 8.0 - self._tokens
        rate = self.rate_kbps(now) * 1000.0
        if need <= 0 or rate <= 0 or math.isinf(rate):
            return now
        return now + need / rate

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def clear(self) -> list:
        """Empty the queue (returns the payloads that were waiting)."""
        items = [it[0] for it in self._queue]
        self._queue.clear()
        return items
