"""Declared ROS parameters with descriptors and validation (the ros2/demos pattern, written once).

A node lists its parameters as `Param`s; `declare()` declares them with a `ParameterDescriptor`
(description, read-only), checks the start-up values (a bad value stops the node with the reason) and
installs an on-set callback that rejects invalid `ros2 param set` values with a reason and passes accepted
changes to the node.

Messages are written for the person at the keyboard:
- a value of the wrong type names the parameter, the type it expects and how to write the value
  (``bandwidth_kbps expects a float, got integer -1: write -1.0``) instead of rclpy's
  ``Wrong parameter type, expected '3' got '2'`` (the parameters are declared with dynamic typing and the
  type is checked here, with the same strictness: an integer is not taken for a float);
- a parameter given in a parameter file or on the command line that the node does not declare (rclpy
  ignores it silently) is warned about with the nearest declared name;
- a change that cannot take effect in the node's current mode is refused with the reason
  (``declare(check_changes=...)``).

`check_values()` runs the same checks without ROS, on the values of a parameter file or of overrides, so
commands can validate a whole configuration before they start anything (runespoor_common/runner.py).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

Check = Callable[[Any], Optional[str]]
#: cross-parameter check of one set request: (changes, values in force) -> None or the reason it is refused
ChangesCheck = Callable[[dict, dict], Optional[str]]

#: parameters every rclpy node declares itself (not warned about as unknown)
BUILTIN_PARAMS = ('use_sim_time', 'start_type_description_service')


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    check: Optional[Check] = None
    read_only: bool = False


class ParameterError(ValueError):
    """A parameter value that fails its check (the message names the parameter and the reason)."""


def one_of(*allowed) -> Check:
    def check(v):
        return None if v in allowed else f'must be one of {list(allowed)}, got {v!r}'
    return check


def in_range(lo: float, hi: float) -> Check:
    def check(v):
        if isinstance(v, float) and not math.isfinite(v):
            return f'must be a finite number in [{lo}, {hi}], got {v!r}'
        return None if lo <= v <= hi else f'must be in [{lo}, {hi}], got {v!r}'
    return check


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def positive(v) -> Optional[str]:
    """Check: a finite number > 0."""
    return None if _finite(v) and v > 0 else f'must be a finite number > 0, got {v!r}'


def non_negative(v) -> Optional[str]:
    """Check: a finite number >= 0."""
    return None if _finite(v) and v >= 0 else f'must be a finite number >= 0, got {v!r}'


# ------------------------------------------------------------------------------------------- types
def _kind(v) -> str:
    """The ROS parameter type of a Python value, in words."""
    if isinstance(v, bool):
        return 'boolean'
    if isinstance(v, int):
        return 'integer'
    if isinstance(v, float):
        return 'float'
    if isinstance(v, str):
        return 'string'
    if isinstance(v, (bytes, bytearray)):
        return 'byte array'
    if isinstance(v, (list, tuple)):
        inner = {_kind(x) for x in v}
        return f'{inner.pop()} list' if len(inner) == 1 else ('empty list' if not v else 'mixed list')
    if v is None:
        return 'no value'
    return type(v).__name__


_ARTICLE = {'integer': 'an integer', 'float': 'a float', 'boolean': 'a boolean (true or false)',
            'string': 'a string'}


def type_error(param: Param, value: Any) -> Optional[str]:
    """None when `value` has the type of `param`'s default (as ROS types it), else the sentence that says
    what was expected and how to write it."""
    want, got = _kind(param.default), _kind(value)
    if want == got or (want.endswith(' list') and got == 'empty list') \
            or (want == 'empty list' and got.endswith(' list')):
        return None
    expects = _ARTICLE.get(want, f'a {want}')
    hint = ''
    if want == 'float' and got == 'integer':
        hint = f': write {float(value)!r}'
    elif want == 'integer' and got == 'float' and math.isfinite(value) and float(value).is_integer():
        hint = f': write {int(value)}'
    elif want == 'string' and got in ('integer', 'float', 'boolean'):
        hint = f": write '{value}' (quoted)"
    elif want == 'boolean' and got == 'string' and str(value).lower() in ('yes', 'no', 'on', 'off', '1', '0'):
        hint = ': write true or false'
    shown = repr(value) if got != 'boolean' else str(value).lower()
    return f'{param.name} expects {expects}, got {got} {shown}{hint}'


def validate(param: Param, value: Any) -> Optional[str]:
    """Return None when `value` is acceptable for `param` (type and check), else the reason."""
    reason = type_error(param, value)
    if reason:
        return reason
    if param.check is None:
        return None
    try:
        return param.check(value)
    except Exception as exc:  # a check that cannot even evaluate the value rejects it
        return f'invalid value {value!r}: {exc}'


def nearest(name: str, names: Iterable[str]) -> Optional[str]:
    """The known name closest to a misspelt one (None when nothing is close)."""
    match = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_key(name: str, names: Iterable[str], what: str = 'parameter') -> str:
    """'unknown parameter 'bandwith_kbps' (did you mean 'bandwidth_kbps'?)'."""
    near = nearest(name, names)
    return f'unknown {what} {name!r}' + (f' (did you mean {near!r}?)' if near else
                                         f' (known: {", ".join(sorted(names))})')


def check_values(params: list[Param], values: dict[str, Any], where: str = '') -> tuple[list[str], list[str]]:
    """Check values from a parameter file or overrides against the declared `params`, without ROS.
    Returns (errors, warnings), one line each, prefixed with `where` (e.g. 'config/robot.yaml:
    edge_streamer'): a wrong type or a failed check is an error (the node would refuse to start); an
    unknown name is a warning (the node ignores it)."""
    by_name = {p.name: p for p in params}
    errors, warnings = [], []
    prefix = f'{where}: ' if where else ''
    for name, value in values.items():
        p = by_name.get(name)
        if p is None:
            if name not in BUILTIN_PARAMS and not name.startswith('qos_overrides.'):
                warnings.append(f'{prefix}{unknown_key(name, by_name)}; it is ignored')
            continue
        reason = validate(p, value)
        if reason:
            errors.append(f'{prefix}{reason}' if reason.startswith(f'{name} ')
                          else f'{prefix}parameter {name!r}: {reason}')
    return errors, warnings


def declare(node, params: list[Param],
            on_change: Optional[Callable[[dict[str, Any]], None]] = None,
            check_changes: Optional[ChangesCheck] = None) -> dict[str, Any]:
    """Declare `params` on `node`; return their start-up values. Raises ParameterError on a bad one.

    ``check_changes(changes, values)``: called for every set request whose values passed their own
    checks, with the values in force; a returned reason refuses the whole request (a change that cannot
    take effect in the current mode is refused, not silently ignored)."""
    # imported here, not at the top: the checks and parse_size serve offline commands (eval, bench)
    # that must start without rclpy
    from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

    by_name = {p.name: p for p in params}
    values: dict[str, Any] = {}
    for p in params:
        # dynamic typing: the type is checked by validate(), which says what to write instead
        desc = ParameterDescriptor(description=p.description, read_only=p.read_only, dynamic_typing=True)
        value = node.declare_parameter(p.name, p.default, desc).value
        reason = validate(p, value)
        if reason:
            raise ParameterError(f'parameter {p.name!r}: {reason}' if not reason.startswith(f'{p.name} ')
                                 else f'parameter {reason}')
        values[p.name] = value
    overrides = getattr(node, '_parameter_overrides', None) or {}
    for name in sorted(set(overrides) - set(by_name)):
        if name in BUILTIN_PARAMS or name.startswith('qos_overrides.'):
            continue
        node.get_logger().warning(f'{unknown_key(name, by_name)} in the parameter file or command line; '
                                  'it is ignored')

    def on_set(changes):
        accepted = {}
        for change in changes:
            p = by_name.get(change.name)
            if p is None:
                continue
            reason = validate(p, change.value)
            if reason:
                node.get_logger().warning(f'rejected {change.name}={change.value!r}: {reason}')
                return SetParametersResult(successful=False, reason=reason if reason.startswith(change.name)
                                           else f'{change.name}: {reason}')
            accepted[change.name] = change.value
        if accepted and check_changes is not None:
            reason = check_changes(dict(accepted), dict(values))
            if reason:
                node.get_logger().warning(f'rejected {accepted}: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        if accepted:
            values.update(accepted)
            if on_change is not None:
                on_change(accepted)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return values


def parse_size(text: str, what: str = 'size', native: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """'480x360' -> (480, 360); 'none' or '' -> None; 'native' -> `native` (a data set's model size) when
    the caller gives one. Raises ValueError on anything else. The one size parser of parameters and
    command lines."""
    t = str(text).strip().lower()
    if t in ('', 'none'):
        return None
    if t == 'native' and native is not None:
        return tuple(native)
    try:
        w, h = (int(v) for v in t.split('x'))
    except ValueError:
        raise ValueError(f'{what} must be WIDTHxHEIGHT (e.g. 480x360){", native" if native is not None else ""} '
                         f'or none, got {text!r}') from None
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise ValueError(f'{what} {w}x{h} outside 1..16384 a side')
    return w, h


def parses(parser: Callable[[Any], Any]) -> Check:
    """A Param check that accepts what `parser` accepts; its ValueError message is the reason."""
    def check(v):
        try:
            parser(v)
        except ValueError as exc:
            return str(exc)
        return None
    return check


#: Param check for a WIDTHxHEIGHT / none / native value.
size_check = parses(lambda v: None if str(v).strip().lower() == 'native' else parse_size(v))
