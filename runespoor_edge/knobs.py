"""The edge streamer's knobs: resolution scale, JPEG quality, frame rate (+ the controller's labels).

`KnobSettings` is the validated, immutable form used by the logic; `from_msg` / `to_msg` translate the
`runespoor/msg/KnobConfig` message. Invalid knobs raise `KnobError` and are never applied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from runespoor.msg import KnobConfig

from runespoor_edge.codec import QUALITY_RANGE, VALID_SCALES

#: no camera runs faster; a larger value is a corrupt or misconfigured KnobConfig [frames/s]
MAX_FRAME_RATE = 1000.0


class KnobError(ValueError):
    """A knob configuration that the edge refuses (the message says which knob and why)."""


@dataclass(frozen=True)
class KnobSettings:
    #: downsampling factor, one of VALID_SCALES [unitless]
    scale: int = 1
    #: JPEG quality, QUALITY_RANGE inclusive [OpenCV units]
    jpeg_quality: int = 75
    #: target frame rate; 0 = every camera frame [frames/s]
    frame_rate: float = 0.0
    tail_mode: bool = False
    #: bandwidth level the config was profiled for; 0 = unknown [kbit/s]
    bandwidth_kbps: float = 0.0
    config_id: str = ''
    reason: str = ''

    def validated(self) -> 'KnobSettings':
        """Return self when every knob is valid, else raise KnobError naming the knob."""
        problems = validate_knobs(self.scale, self.jpeg_quality, self.frame_rate)
        bw = self.bandwidth_kbps
        if isinstance(bw, bool) or not isinstance(bw, (int, float)) or not math.isfinite(bw) or bw < 0:
            problems.append(f'bandwidth_kbps must be a finite number >= 0, got {bw!r}')
        if problems:
            raise KnobError('invalid knobs: ' + '; '.join(problems))
        return replace(self, scale=int(self.scale), jpeg_quality=int(self.jpeg_quality),
                       frame_rate=float(self.frame_rate), bandwidth_kbps=float(bw))

    def with_changes(self, **changes) -> 'KnobSettings':
        """A validated copy with some knobs changed (raises KnobError, leaving self untouched)."""
        return replace(self, **changes).validated()

    @property
    def min_interval_s(self) -> float:
        """Minimum time between sent frames implied by frame_rate (0 = no limit) [s]."""
        return 1.0 / self.frame_rate if self.frame_rate > 0 else 0.0

    def describe(self) -> str:
        fr = f'{self.frame_rate:g} fps' if self.frame_rate > 0 else 'all frames'
        label = f' [{self.config_id}]' if self.config_id else ''
        return f'x{self.scale} q{self.jpeg_quality} {fr}{" tail" if self.tail_mode else ""}{label}'

    # --- message translation ---
    @classmethod
    def from_msg(cls, msg) -> 'KnobSettings':
        """Validated settings from a KnobConfig message (raises KnobError)."""
        return cls(scale=int(msg.scale), jpeg_quality=int(msg.jpeg_quality), frame_rate=float(msg.frame_rate),
                   tail_mode=bool(msg.tail_mode), bandwidth_kbps=float(msg.bandwidth_kbps),
                   config_id=str(msg.config_id), reason=str(msg.reason)).validated()

    def to_msg(self, stamp=None):
        """KnobConfig message with these knobs (`stamp`: builtin_interfaces/Time, default zero)."""
        msg = KnobConfig(scale=int(self.scale), jpeg_quality=int(self.jpeg_quality),
                         frame_rate=float(self.frame_rate), tail_mode=bool(self.tail_mode),
                         bandwidth_kbps=float(self.bandwidth_kbps), config_id=self.config_id,
                         reason=self.reason)
        if stamp is not None:
            msg.stamp = stamp
        return msg


def validate_knobs(scale, jpeg_quality, frame_rate) -> list[str]:
    """Reasons why (scale, jpeg_quality, frame_rate) is invalid; empty when valid."""
    problems = []
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in VALID_SCALES:
        problems.append(f'scale must be one of {list(VALID_SCALES)}, got {scale!r}')
    lo, hi = QUALITY_RANGE
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) or not lo <= jpeg_quality <= hi:
        problems.append(f'jpeg_quality must be an integer in [{lo}, {hi}], got {jpeg_quality!r}')
    if (isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float))
            or not math.isfinite(frame_rate) or not 0 <= frame_rate <= MAX_FRAME_RATE):
        problems.append(f'frame_rate must be a finite number in [0, {MAX_FRAME_RATE:g}] (0 = every frame), '
                        f'got {frame_rate!r}')
    return problems
