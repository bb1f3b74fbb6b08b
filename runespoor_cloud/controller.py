"""The content-aware adaptive controller (CAC), pure logic (no ROS).

It holds the offline profile: for each bandwidth level a *standard* config and a *tail-specific* config
(typically one resolution level higher and a lower JPEG quality, about the same bytes). It follows the
uplink bandwidth (AWStream-style: the highest level the link carries), switches to the level's tail
config at once on a tail report, and returns to standard after `return_after` consecutive non-tail
reports. It never emits the same config twice in a row, and every decision carries its reason.

Profile YAML schema (`config/profiles/<dataset>.yaml`, written by `runespoor profile`)::

    dataset: camvid
    frame_rate: 10.0                 # frames/s the levels' byte budgets assume (edge frame-rate knob)
    tail_detector:                   # the tail detector's settings (runespoor_cloud.tail_detector_node)
      small_region_area: 0.01
      tail_threshold: 0.01             # for scales without their own entry
      rule: below                      # tail when the ratio is below (paper) / above the threshold
      scale_thresholds: {4: 0.012}     # optional, per scale the judged frame was sent at
      downsample: 4
    levels:                          # any order; bandwidth in kbit/s
      - bandwidth_kbps: 2000.0
        standard: {scale: 4, jpeg_quality: 90}
        tail: {scale: 2, jpeg_quality: 50}

Required: ``frame_rate`` (0 = every camera frame), ``levels`` and in each level ``bandwidth_kbps``,
``standard`` and ``tail`` with ``scale`` and ``jpeg_quality``. Documented defaults: a config's
``frame_rate`` = the profile's; ``dataset`` = '' (unknown); ``tail_detector`` and each of its keys = the
tail detector node's own parameters. A key the schema does not know is reported with the nearest known key
(``Profile.notes``, logged by the nodes as warnings; a misspelt optional key would otherwise fall back to
its default unseen).
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from runespoor_cloud.tail import parse_scale_thresholds
from runespoor_common import paths
from runespoor_edge.codec import QUALITY_RANGE, VALID_SCALES


STALE_LIMIT = 10   # non-tail verdicts on frames sent with other knobs ignored in a row, at most


class ProfileError(ValueError):
    """A profile file that is missing or malformed (the message names the file and the problem)."""


@dataclass(frozen=True)
class Config:
    scale: int
    jpeg_quality: int
    frame_rate: float = 0.0


@dataclass(frozen=True)
class Level:
    bandwidth_kbps: float
    standard: Config
    tail: Config

    def config_id(self, tail: bool) -> str:
        return f'{self.bandwidth_kbps:g}kbps/{"tail" if tail else "standard"}'


#: the keys the profile schema knows, per place (for the unknown-key warnings)
TOP_KEYS = ('dataset', 'frame_rate', 'tail_detector', 'levels')
LEVEL_KEYS = ('bandwidth_kbps', 'standard', 'tail')
CONFIG_KEYS = ('scale', 'jpeg_quality', 'frame_rate')
TAIL_DETECTOR_KEYS = ('small_region_area', 'tail_threshold', 'rule', 'scale_thresholds', 'downsample')


@dataclass
class Profile:
    dataset: str
    frame_rate: float
    levels: list[Level]
    tail_detector: dict = field(default_factory=dict)
    path: str = ''
    #: warnings found while reading (unknown keys with the nearest known one); the nodes log them
    notes: list[str] = field(default_factory=list)

    def level_for(self, kbps: float) -> Level:
        """The highest level whose bandwidth the link carries (the lowest level if none fits)."""
        fitting = [lv for lv in self.levels if lv.bandwidth_kbps <= kbps]
        return fitting[-1] if fitting else self.levels[0]


def _unknown_keys(d: dict, known: tuple[str, ...], where: str, notes: list[str]) -> None:
    for key in d:
        if key in known:
            continue
        near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{near[0]}'?" if near else f'known: {", ".join(known)}'
        notes.append(f'{where}unknown key {key!r} ignored ({hint})')


def _config(d, where: str, frame_rate: float, notes: list[str]) -> Config:
    if not isinstance(d, dict):
        raise ValueError(f'{where}: expected a mapping with scale and jpeg_quality, got {d!r}')
    missing = [k for k in ('scale', 'jpeg_quality') if k not in d]
    if missing:
        raise ValueError(f'{where}: {" and ".join(missing)} missing (required)')
    _unknown_keys(d, CONFIG_KEYS, f'{where}: ', notes)
    try:
        scale, quality = int(d['scale']), int(d['jpeg_quality'])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f'{where}: needs integer scale and jpeg_quality ({exc})')
    if scale not in VALID_SCALES:
        raise ValueError(f'{where}: scale {scale} is not one of {list(VALID_SCALES)}')
    if not QUALITY_RANGE[0] <= quality <= QUALITY_RANGE[1]:
        raise ValueError(f'{where}: jpeg_quality {quality} outside {list(QUALITY_RANGE)}')
    fr = float(d.get('frame_rate', frame_rate))
    if not math.isfinite(fr) or fr < 0:
        raise ValueError(f'{where}: frame_rate {fr} must be finite and >= 0')
    return Config(scale, quality, fr)


def parse_profile(doc, path: str = '<profile>') -> Profile:
    notes: list[str] = []
    try:
        if not isinstance(doc, dict):
            raise ValueError('top level must be a mapping')
        _unknown_keys(doc, TOP_KEYS, '', notes)
        raw = doc.get('levels')
        if not isinstance(raw, list) or not raw:
            raise ValueError('needs a non-empty list "levels"')
        if 'frame_rate' not in doc:
            raise ValueError('frame_rate missing (required: the frames/s the levels\' byte budgets assume, '
                             'e.g. frame_rate: 10.0; 0 = every camera frame)')
        frame_rate = float(doc['frame_rate'])
        if not math.isfinite(frame_rate) or frame_rate < 0:
            raise ValueError(f'frame_rate {frame_rate} must be finite and >= 0')
        levels = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise ValueError(f'levels[{i}] must be a mapping')
            _unknown_keys(item, LEVEL_KEYS, f'levels[{i}]: ', notes)
            for key in ('standard', 'tail'):
                if key not in item:
                    raise ValueError(f'levels[{i}].{key} missing (required)')
            try:
                kbps = float(item.get('bandwidth_kbps', float('nan')))
            except (TypeError, ValueError):
                kbps = float('nan')
            if not math.isfinite(kbps) or kbps <= 0:
                raise ValueError(f'levels[{i}].bandwidth_kbps must be a positive number')
            levels.append(Level(kbps, _config(item.get('standard'), f'levels[{i}].standard', frame_rate, notes),
                                _config(item.get('tail'), f'levels[{i}].tail', frame_rate, notes)))
        levels.sort(key=lambda lv: lv.bandwidth_kbps)
        if len({lv.bandwidth_kbps for lv in levels}) != len(levels):
            raise ValueError('two levels have the same bandwidth_kbps')
        td = doc.get('tail_detector') or {}
        if not isinstance(td, dict):
            raise ValueError('tail_detector must be a mapping')
        _unknown_keys(td, TAIL_DETECTOR_KEYS, 'tail_detector: ', notes)
        if td.get('rule', 'below') not in ('below', 'above'):
            raise ValueError(f"tail_detector.rule must be 'below' or 'above', got {td['rule']!r}")
        for key, lo, hi in (('small_region_area', 1e-6, 1.0), ('tail_threshold', 0.0, 1.0), ('downsample', 1, 64)):
            if key in td:
                v = td[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi):
                    raise ValueError(f'tail_detector.{key} must be a number in [{lo:g}, {hi:g}], got {v!r}')
        if 'downsample' in td and float(td['downsample']) != int(td['downsample']):
            raise ValueError(f'tail_detector.downsample must be an integer, got {td["downsample"]!r}')
        if not isinstance(td.get('scale_thresholds') or {}, dict):
            raise ValueError('tail_detector.scale_thresholds must be a mapping scale -> fraction')
        parse_scale_thresholds(td.get('scale_thresholds') or {})   # raises on a bad entry
        dataset = doc.get('dataset', '')
        if not isinstance(dataset, str):
            raise ValueError(f'dataset must be a name, got {dataset!r}')
        return Profile(dataset, frame_rate, levels, dict(td), str(path),
                       [f'profile {path}: {n}' for n in notes])
    except (ValueError, TypeError, OverflowError) as exc:  # TypeError: a value of the wrong kind (null, list, ...)
        raise ProfileError(f'profile {path}: {exc}') from None


def resolve_profile(value: str) -> Path:
    """A profile parameter's value: a path, or a bare name for config/profiles/<name>.yaml."""
    p = Path(value)
    if p.suffix in ('.yaml', '.yml') or p.is_absolute() or len(p.parts) > 1:
        return p
    return paths.config_dir() / 'profiles' / f'{value}.yaml'


def yaml_problem(exc: BaseException) -> str:
    """A YAML error in one line: 'line 2, column 3: expected the node content, but found '-''."""
    mark = getattr(exc, 'problem_mark', None)
    problem = getattr(exc, 'problem', None)
    if problem:
        where = f'line {mark.line + 1}, column {mark.column + 1}: ' if mark is not None else ''
        return f'{where}{problem}'
    return ' '.join(str(exc).split())[:200] or type(exc).__name__


def load_profile(path: str | os.PathLike) -> Profile:
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f'profile {path}: file not found')
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise ProfileError(f'profile {path}: not valid YAML ({yaml_problem(exc)})') from None
    return parse_profile(doc, str(path))


@dataclass(frozen=True)
class Decision:
    config: Config
    tail_mode: bool
    bandwidth_kbps: float
    config_id: str
    reason: str
    reaction_s: float | None = None   # tail frame capture stamp -> this decision (tail switches only)


class CacController:
    """Standard/tail switching per bandwidth level, with hysteresis on the way back."""

    def __init__(self, profile: Profile, return_after: int = 5, bandwidth_kbps: float | None = None):
        if return_after < 1:
            raise ValueError(f'return_after must be >= 1, got {return_after}')
        self.profile = profile
        self.return_after = int(return_after)
        self.level = profile.level_for(bandwidth_kbps if bandwidth_kbps is not None else math.inf)
        self.tail_mode = False
        self.non_tail_run = 0
        self.stale_run = 0   # non-tail verdicts on frames sent before the last switch, in a row
        self.last_id: str | None = None
        self.reaction_times: list[float] = []

    def current(self) -> tuple[Config, str]:
        cfg = self.level.tail if self.tail_mode else self.level.standard
        return cfg, self.level.config_id(self.tail_mode)

    def _emit(self, reason: str, reaction: float | None = None) -> Decision | None:
        cfg, cid = self.current()
        if cid == self.last_id:
            return None
        self.last_id = cid
        return Decision(cfg, self.tail_mode, self.level.bandwidth_kbps, cid, reason, reaction)

    def start(self) -> Decision | None:
        return self._emit(f'start at {self.level.bandwidth_kbps:g} kbit/s level')

    def on_bandwidth(self, kbps: float) -> Decision | None:
        """The uplink carries `kbps` now: move to the matching level (keeping the current mode)."""
        if not math.isfinite(kbps) or kbps < 0:
            return None
        level = self.profile.level_for(kbps)
        if level == self.level:
            return None
        old = self.level.bandwidth_kbps
        self.level = level
        return self._emit(f'bandwidth {kbps:g} kbit/s: level {old:g} -> {level.bandwidth_kbps:g} kbit/s')

    def on_tail_report(self, is_tail: bool, ratio: float, capture_stamp: float | None = None,
                       now: float | None = None, sent_with: str = '',
                       threshold: float | None = None) -> Decision | None:
        """One tail detector verdict. `sent_with`: config_id of the knobs the judged frame was sent with
        ('' = unknown). In tail mode, a non-tail verdict on a frame sent *before* the switch (still in
        flight then) says nothing about the tail config and does not count towards going back (at most
        `STALE_LIMIT` in a row: an edge that keeps sending other knobs is not applying ours anyway)."""
        if is_tail:
            self.non_tail_run = self.stale_run = 0
            if self.tail_mode:
                return None
            self.tail_mode = True
            reaction = None
            if capture_stamp is not None and now is not None:
                reaction = max(0.0, now - capture_stamp)
                self.reaction_times.append(reaction)
            why = f' (threshold {threshold:.4f})' if threshold is not None else ''
            return self._emit(f'tail frame: small-region ratio {ratio:.4f}{why}', reaction)
        if self.tail_mode and sent_with and sent_with != self.current()[1]:
            self.stale_run += 1
            if self.stale_run <= STALE_LIMIT:
                return None
        else:
            self.stale_run = 0
        self.non_tail_run += 1
        if self.tail_mode and self.non_tail_run >= self.return_after:
            self.tail_mode = False
            return self._emit(f'{self.non_tail_run} non-tail frames in a row: back to standard')
        return None
