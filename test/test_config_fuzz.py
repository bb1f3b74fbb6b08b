"""Fuzzing every configuration loader with Hypothesis (derandomized, reproducible; no ROS):

- the CAC profile (runespoor_cloud/controller.py): parse_profile on random documents built from the
  schema's keys, misspelt keys and values of every kind, and load_profile on random bytes and on mutated
  real profiles;
- the robot / cloud / replay parameter files (runespoor_common/runner.py read_params_file + the nodes'
  declared parameters via params.check_values), on random documents and mutated real files;
- schedule and threshold strings: the edge's bandwidth schedule (link.Schedule.parse), the demo's
  (run_analysis.parse_schedule), scale_thresholds, WxH sizes.

Property: a loader either returns a value of the documented shape or raises its own error type (ProfileError,
LinkError, ValueError) whose message is one non-empty line -- never another exception, never a traceback
for the user to read.
"""
from __future__ import annotations

import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent


def fuzz(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def one_line(exc: BaseException, given_input=None) -> None:
    """A non-empty message on one line (unless it quotes an input that itself spans lines)."""
    text = str(exc)
    assert text.strip(), f'{type(exc).__name__} without a message'
    if not any(c in str(given_input) for c in '\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029'):
        assert '\n' not in text, f'multi-line message: {text!r}'


# values of every kind YAML can produce
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def keyed(keys: tuple[str, ...], value_strategy) -> st.SearchStrategy:
    """Mappings over the schema's keys, misspellings of them and random keys."""
    misspelt = st.sampled_from([k[:-1] for k in keys] + [k.replace('_', '') for k in keys] + ['x', 'levels '])
    key = st.one_of(st.sampled_from(keys), misspelt, st.text(max_size=6), st.integers(-3, 9))
    return st.dictionaries(key, value_strategy, max_size=len(keys) + 2)


# ---------------------------------------------------------------------------------------------- profiles
from runespoor_cloud.controller import (CONFIG_KEYS, LEVEL_KEYS, TAIL_DETECTOR_KEYS, TOP_KEYS,  # noqa: E402
                                        Profile, ProfileError, load_profile, parse_profile)

config_doc = st.one_of(keyed(CONFIG_KEYS, st.one_of(st.sampled_from([1, 2, 4, 6, 8, 3, 40, 95, 900]), scalars)),
                       scalars)
level_doc = st.one_of(
    st.fixed_dictionaries({'bandwidth_kbps': st.one_of(st.floats(0, 1e5), scalars), 'standard': config_doc,
                           'tail': config_doc}),
    keyed(LEVEL_KEYS, st.one_of(config_doc, scalars)))
td_doc = st.one_of(keyed(TAIL_DETECTOR_KEYS, st.one_of(st.floats(0, 1), st.sampled_from(['below', 'above']),
                                                       st.dictionaries(st.integers(0, 9), st.floats(0, 2), max_size=3),
                                                       scalars)), scalars)
profile_doc = st.one_of(
    st.fixed_dictionaries({'dataset': st.one_of(st.just('camvid'), scalars),
                           'frame_rate': st.one_of(st.floats(0, 60), scalars),
                           'levels': st.lists(level_doc, max_size=4)},
                          optional={'tail_detector': td_doc, 'extra': values}),
    keyed(TOP_KEYS, values), values)


def check_profile(doc, path='fuzz.yaml') -> None:
    try:
        p = parse_profile(doc, path)
    except ProfileError as exc:
        assert str(exc).startswith(f'profile {path}: ')
        one_line(exc)
        return
    assert isinstance(p, Profile) and p.levels and math.isfinite(p.frame_rate) and p.frame_rate >= 0
    assert [lv.bandwidth_kbps for lv in p.levels] == sorted(lv.bandwidth_kbps for lv in p.levels)
    for note in p.notes:
        assert note.startswith(f'profile {path}: ') and 'unknown key' in note and '\n' not in note


@fuzz(600)
@given(profile_doc)
def test_parse_profile_returns_a_profile_or_a_profile_error(doc):
    check_profile(doc)


SHIPPED_PROFILE = (REPO / 'config' / 'profiles' / 'camvid.yaml').read_bytes()


def mutate(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for pos, kind, byte in edits:
        if not b:
            break
        i = pos % len(b)
        if kind == 0:
            b[i] = byte
        elif kind == 1:
            del b[i]
        elif kind == 2:
            b.insert(i, byte)
        else:
            del b[i:]
    return bytes(b)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.integers(0, 255)), min_size=1, max_size=4)


@fuzz(300)
@given(st.one_of(st.binary(max_size=400), edits.map(lambda e: mutate(SHIPPED_PROFILE, e))))
def test_load_profile_on_random_and_mutated_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp('p') / 'fuzz.yaml'
    path.write_bytes(data)
    try:
        p = load_profile(path)
    except ProfileError as exc:
        assert str(exc).startswith(f'profile {path}: ')
        one_line(exc)
        return
    assert p.levels


# ------------------------------------------------------------------------------------- parameter files
from runespoor_common.params import check_values  # noqa: E402
from runespoor_common.runner import read_params_file  # noqa: E402
from runespoor_edge.bag_player_node import PARAMS as PLAYER_PARAMS  # noqa: E402
from runespoor_edge.streamer_node import PARAMS as EDGE_PARAMS  # noqa: E402
from runespoor_cloud.controller_node import PARAMS as CTL_PARAMS  # noqa: E402
from runespoor_cloud.tail_detector_node import PARAMS as TAIL_PARAMS  # noqa: E402

NODE_PARAMS = {'edge_streamer': EDGE_PARAMS, 'bag_player': PLAYER_PARAMS, 'cac_controller': CTL_PARAMS,
               'tail_detector': TAIL_PARAMS}
param_names = tuple(p.name for ps in NODE_PARAMS.values() for p in ps)
params_doc = st.one_of(
    st.dictionaries(st.sampled_from(list(NODE_PARAMS) + ['/**', '/**/bag_player', 'edge_stramer', 'x']),
                    st.one_of(st.fixed_dictionaries({'ros__parameters': st.one_of(keyed(param_names, values), scalars)}),
                              values), max_size=4),
    values)


def check_params_text(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / 'params.yaml'
    path.write_bytes(text)
    vals, errors, warnings = read_params_file(path, list(NODE_PARAMS))
    for line in errors + warnings:
        assert line.startswith(f'{path}: ') and '\n' not in line, line
    for node, v in vals.items():
        e, w = check_values(NODE_PARAMS[node], v, f'{path}: {node}')
        for line in e + w:
            assert line and '\n' not in line, line


@fuzz(400)
@given(params_doc)
def test_parameter_files_give_errors_and_warnings_never_exceptions(tmp_path_factory, doc):
    try:
        text = yaml.safe_dump(doc).encode()
    except (yaml.YAMLError, ValueError, OverflowError):
        return
    check_params_text(tmp_path_factory.mktemp('f'), text)


SHIPPED_PARAMS = [(REPO / 'config' / f).read_bytes() for f in ('robot.yaml', 'cloud.yaml', 'replay.yaml')]


@fuzz(300)
@given(st.sampled_from(range(len(SHIPPED_PARAMS))), edits)
def test_mutated_shipped_parameter_files(tmp_path_factory, which, e):
    check_params_text(tmp_path_factory.mktemp('m'), mutate(SHIPPED_PARAMS[which], e))


def test_shipped_parameter_files_are_clean():
    """config/*.yaml hold no unknown key and no bad value for the nodes we can check without torch."""
    for f in ('robot.yaml', 'replay.yaml', 'cloud.yaml'):
        vals, errors, warnings = read_params_file(REPO / 'config' / f, list(NODE_PARAMS) + ['restorer', 'segmentation'])
        assert not errors and not warnings, (f, errors, warnings)
        for node, v in vals.items():
            if v and node in NODE_PARAMS:
                e, w = check_values(NODE_PARAMS[node], v, f'{f}: {node}')
                assert not e and not w, (f, e, w)


# ------------------------------------------------------------------------------------------- strings
from runespoor_cloud.tail import parse_scale_thresholds  # noqa: E402
from runespoor_common.params import parse_size  # noqa: E402
from runespoor_edge.link import LinkError, Schedule  # noqa: E402
from runespoor_tools.run_analysis import parse_schedule  # noqa: E402

schedule_text = st.one_of(
    st.text(alphabet='0123456789:.,- einfa', max_size=30),
    st.lists(st.tuples(st.one_of(st.floats(), st.integers(-5, 100)), st.one_of(st.floats(), st.integers(-5, 10**6))),
             max_size=5).map(lambda xs: ','.join(f'{t}:{k}' for t, k in xs)),
    st.text(max_size=20))


@fuzz(500)
@given(schedule_text)
def test_schedule_strings(text):
    try:
        s = Schedule.parse(text)
    except LinkError as exc:
        one_line(exc, text)
    else:
        assert s is not None
    try:
        entries = parse_schedule(text)
    except ValueError as exc:
        assert str(exc).strip()
    else:
        assert entries and all(math.isfinite(t) and t >= 0 and math.isfinite(k) and k >= 0 for t, k in entries)


@fuzz(400)
@given(st.one_of(schedule_text, st.dictionaries(st.one_of(st.integers(-2, 10), st.floats(), st.text(max_size=3)),
                                                st.one_of(st.floats(), st.text(max_size=3)), max_size=4)))
def test_scale_thresholds_strings_and_mappings(value):
    try:
        out = parse_scale_thresholds(value)
    except (ValueError, OverflowError) as exc:
        one_line(exc, value)
    else:
        assert all(s in (1, 2, 4, 6, 8) and 0.0 <= t <= 1.0 for s, t in out.items())


@fuzz(300)
@given(st.one_of(st.text(alphabet='0123456789xX none', max_size=14), st.text(max_size=10)))
def test_size_strings(text):
    try:
        out = parse_size(text)
    except ValueError as exc:
        one_line(exc, text)
    else:
        assert out is None or (1 <= out[0] <= 16384 and 1 <= out[1] <= 16384)
