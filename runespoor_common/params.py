"""Declared ROS parameters with descriptors and validation (the ros2/demos pattern, written once).

A node lists its parameters as `Param`s; `declare()` declares them with a `ParameterDescriptor`
(description, type, read-only), checks the start-up values (a bad value stops the node with the reason)
and installs an on-set callback that rejects invalid `ros2 param set` values with a reason and passes
accepted changes to the node.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

Check = Callable[[Any], Optional[str]]


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


def validate(param: Param, value: Any) -> Optional[str]:
    """Return None when `value` is acceptable for `param`, else the reason."""
    if param.check is None:
        return None
    try:
        return param.check(value)
    except Exception as exc:  # a check that cannot even evaluate the value rejects it
        return f'invalid value {value!r}: {exc}'


def declare(node, params: list[Param],
            on_change: Optional[Callable[[dict[str, Any]], None]] = None) -> dict[str, Any]:
    """Declare `params` on `node`; return their start-up values. Raises ParameterError on a bad one."""
    # imported here, not at the top: the checks and parse_size serve offline commands (eval, bench)
    # that must start without rclpy
    from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
    from rclpy.parameter import Parameter

    by_name = {p.name: p for p in params}
    values: dict[str, Any] = {}
    for p in params:
        ptype = Parameter.Type.from_parameter_value(p.default)
        desc = ParameterDescriptor(description=p.description, read_only=p.read_only,
                                   type=ptype.value)
        value = node.declare_parameter(p.name, p.default, desc).value
        reason = validate(p, value)
        if reason:
            raise ParameterError(f'parameter {p.name!r}: {reason}')
        values[p.name] = value

    def on_set(changes):
        accepted = {}
        for change in changes:
            p = by_name.get(change.name)
            if p is None:
                continue
            reason = validate(p, change.value)
            if reason:
                node.get_logger().warning(f'rejected {change.name}={change.value!r}: {reason}')
                return SetParametersResult(successful=False, reason=f'{change.name}: {reason}')
            accepted[change.name] = change.value
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
