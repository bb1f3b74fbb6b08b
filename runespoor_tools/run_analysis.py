"""Analysis of a recorded demo run (pure: no ROS). Turns what the monitor saw into summary figures.

Times are float seconds of ROS (system) time; `t0` is the first capture stamp of the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class SentFrame:
    seq: int
    stamp: float        # capture stamp [s]
    send_time: float    # released onto the emulated link [s]
    nbytes: int         # JPEG bytes
    scale: int
    quality: int
    config_id: str
    tail_mode: bool
    level_kbps: float = 0.0   # bandwidth level of the controller's config (KnobConfig.bandwidth_kbps)


@dataclass
class KnobEvent:
    time: float         # stamp the controller put on the config [s]
    config_id: str
    tail_mode: bool
    reason: str


@dataclass
class TailEvent:
    stamp: float        # capture stamp of the judged frame [s]
    recv_time: float
    ratio: float
    is_tail: bool


@dataclass
class Phase:
    start: float        # [s] from t0
    end: float          # [s] from t0 (inf for the last)
    kbps: float


class StampIndex:
    """Sent frames by capture stamp, matched within `tol` seconds. Float seconds of the epoch carry only
    ~0.2 us of precision, so exact keys made from a float stamp and from the integer header stamp of the
    same frame can differ; camera frames are tens of ms apart, so a 0.1 ms tolerance is unambiguous."""

    def __init__(self, frames, tol: float = 1e-4):
        self.tol = tol
        self.bins: dict[int, list] = {}
        for f in frames:
            self.bins.setdefault(int(round(f.stamp * 1e3)), []).append(f)

    def get(self, stamp: float):
        k = int(round(stamp * 1e3))
        for b in (k, k - 1, k + 1):
            for f in self.bins.get(b, ()):
                if abs(f.stamp - stamp) <= self.tol:
                    return f
        return None


def parse_schedule(text: str) -> list[tuple[float, float]]:
    """"0:10000,5:5000" -> [(0.0, 10000.0), (5.0, 5000.0)] (seconds, kbit/s), sorted, validated."""
    out = []
    for item in text.split(','):
        item = item.strip()
        if not item:
            continue
        t, kbps = item.split(':')
        t, kbps = float(t), float(kbps)
        if not (math.isfinite(t) and math.isfinite(kbps)) or t < 0 or kbps < 0:
            raise ValueError(f'bad schedule entry {item!r}: need t >= 0 s and kbps >= 0')
        out.append((t, kbps))
    if not out:
        raise ValueError(f'empty bandwidth schedule {text!r}')
    return sorted(out)


def format_schedule(entries: list[tuple[float, float]]) -> str:
    return ','.join(f'{t:g}:{k:.0f}' for t, k in entries)


#: The paper's CAC experiment: full -> half -> fifth -> full at t = 0, 5, 12, 19 s, 10/5/2 Mbps for
#: 2048x1024 at 17 fps.
PAPER_SCHEDULE = [(0.0, 1.0), (5.0, 0.5), (12.0, 0.2), (19.0, 1.0)]
PAPER_FULL_KBPS = 10000.0
PAPER_PIXEL_RATE = 2048 * 1024 * 17


def paper_schedule(width: int, height: int, fps: float, time_scale: float = 1.0) -> list[tuple[float, float]]:
    """The paper's schedule with rates scaled to the source's pixel rate (so the phases bind alike)."""
    full = PAPER_FULL_KBPS * (width * height * fps) / PAPER_PIXEL_RATE
    return [(t * time_scale, round(full * f, 1)) for t, f in PAPER_SCHEDULE]


def phases(schedule: list[tuple[float, float]], end: float) -> list[Phase]:
    out = []
    for i, (t, k) in enumerate(schedule):
        t_next = schedule[i + 1][0] if i + 1 < len(schedule) else end
        if t < end:
            out.append(Phase(t, min(t_next, end), k))
    return out


def kbps_per_phase(sent: list[SentFrame], schedule, t0: float, end: float) -> list[dict]:
    """Mean sent rate in each schedule phase (by send time), beside the phase's budget."""
    rows = []
    for ph in phases(schedule, end):
        dur = ph.end - ph.start
        nbytes = sum(f.nbytes for f in sent if ph.start <= f.send_time - t0 < ph.end)
        frames = sum(1 for f in sent if ph.start <= f.send_time - t0 < ph.end)
        rows.append({'start_s': ph.start, 'end_s': ph.end, 'budget_kbps': ph.kbps,
                     'sent_kbps': 8 * nbytes / 1000 / dur if dur > 0 else 0.0, 'frames': frames})
    return rows


def reaction_times(tails: list[TailEvent], sent: list[SentFrame]) -> list[float]:
    """For each tail frame that found the edge in standard mode: capture stamp of the tail frame ->
    send time of the first frame the edge sent with a tail config after it [s]."""
    out = []
    by_send = sorted(sent, key=lambda f: f.send_time)
    for ev in sorted(tails, key=lambda e: e.stamp):
        if not ev.is_tail:
            continue
        # the judged frame itself went out in standard mode (otherwise there is nothing to react to)
        judged = [f for f in by_send if abs(f.stamp - ev.stamp) < 1e-6]
        if judged and judged[0].tail_mode:
            continue
        first = next((f for f in by_send if f.tail_mode and f.send_time >= ev.stamp), None)
        if first is not None:
            out.append(first.send_time - ev.stamp)
    return out


def per_second(times: list[float], values: list[float], t0: float, end: float) -> np.ndarray:
    """Mean of `values` in each 1-s bin of `times - t0` over [0, end) (nan where a bin is empty)."""
    n = max(1, int(math.ceil(end)))
    sums, counts = np.zeros(n), np.zeros(n)
    for t, v in zip(times, values):
        i = int(t - t0)
        if 0 <= i < n and not math.isnan(v):
            sums[i] += v
            counts[i] += 1
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def tail_spans(knobs: list[KnobEvent], t0: float, end: float) -> list[tuple[float, float]]:
    """[(start, stop)] in seconds from t0 of the periods the controller held a tail config (a knob event
    with tail_mode opens one, the next without closes it; one still open is closed at `end`)."""
    spans, start = [], None
    for e in sorted(knobs, key=lambda e: e.time):
        if e.tail_mode and start is None:
            start = e.time - t0
        elif not e.tail_mode and start is not None:
            spans.append((start, e.time - t0))
            start = None
    if start is not None:
        spans.append((start, end))
    return [(max(a, 0.0), b) for a, b in spans if b > 0]


def plot_timeline(path, seconds: np.ndarray, curves: dict[str, np.ndarray], sent_kbps: np.ndarray,
                  budget_kbps: np.ndarray, spans: list[tuple[float, float]], tails: list[float],
                  title: str, level_changes: list[float] = (), sent_tail_kbps: np.ndarray | None = None) -> None:
    """The paper's Fig. 12: relative accuracy per second per method (top), the sent rate under the link
    budget (bottom); shaded: the periods the edge ran the tail config; ticks: frames the detector flagged;
    dotted lines: bandwidth-level changes of the controller."""
    # imported here: selecting the Agg backend is process-wide, and the monitor and the tests import this
    # module (for its dataclasses and statistics) without drawing anything
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={'height_ratios': [3, 2]})
    styles = {'ASR+CAC': ('tab:red', 'o-'), 'ASR only': ('tab:blue', 's--'), 'bilinear only': ('tab:gray', '^:')}
    for a in (ax, bx):
        for i, (t_on, t_off) in enumerate(spans):
            a.axvspan(t_on, t_off, color='tab:green', alpha=0.15, lw=0,
                      label='tail config in force' if (i == 0 and a is ax) else None)
        for i, t in enumerate(level_changes):
            a.axvline(t, color='tab:purple', lw=0.8, ls=':', alpha=0.8,
                      label='bandwidth level change' if (i == 0 and a is ax) else None)
    for name, values in curves.items():
        color, fmt = styles.get(name, (None, 'o-'))
        ax.plot(seconds + 0.5, 100 * values, fmt, color=color, label=name, markersize=4)
    if len(tails):
        lo = ax.get_ylim()[0]
        ax.plot(tails, [lo] * len(tails), '|', color='tab:orange', markersize=10, mew=1.5,
                label='tail frame flagged')
    ax.set_ylabel('accuracy relative to HR [%]')
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower left', fontsize=7, ncol=2)
    bx.step(seconds, budget_kbps, where='post', color='k', label='link budget')
    tail_part = np.zeros_like(sent_kbps) if sent_tail_kbps is None else sent_tail_kbps
    bx.bar(seconds + 0.5, sent_kbps - tail_part, width=0.8, color='tab:red', alpha=0.5,
           label='sent, standard config')
    if sent_tail_kbps is not None and np.any(tail_part > 0):
        bx.bar(seconds + 0.5, tail_part, bottom=sent_kbps - tail_part, width=0.8, color='tab:green', alpha=0.7,
               label='sent, tail config')
    bx.set_ylabel('kbit/s (ASR+CAC)')
    bx.set_xlabel('time since the first frame [s]')
    bx.legend(loc='upper right', fontsize=7)
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
