#!/usr/bin/env python3
"""Rewrite the CMake files of the ROS 2 PyPI wheels so that they point at this Python (docs/design.md §3).

The wheels' exported CMake files name the wheel builder's interpreter paths
(/opt/python/cp311-cp311/...). Replace them with this interpreter's include dir and NumPy's include dir.
Idempotent: files already fixed are left alone.
"""
from __future__ import annotations

import argparse
import sys
import sysconfig
from pathlib import Path

BUILDER_PREFIX = '/opt/python/cp311-cp311'


def replacements() -> list[tuple[str, str]]:
    import numpy
    inc = sysconfig.get_paths()['include']
    return [
        (f'{BUILDER_PREFIX}/lib/python3.11/site-packages/numpy/_core/include', numpy.get_include()),
        (f'{BUILDER_PREFIX}/include/python3.11', inc),
    ]


def fix(prefix: Path) -> int:
    reps = replacements()
    changed = 0
    for path in (prefix / 'share').rglob('*.cmake'):
        text = path.read_text(errors='surrogateescape')
        if BUILDER_PREFIX not in text:
            continue
        for old, new in reps:
            text = text.replace(old, new)
        path.write_text(text, errors='surrogateescape')
        changed += 1
    return changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--prefix', type=Path, default=Path(sys.prefix), help='venv prefix (default: this one)')
    args = ap.parse_args()
    n = fix(args.prefix)
    print(f'fix_ros_wheels_cmake: rewrote {n} CMake file(s) under {args.prefix}/share')
    return 0


if __name__ == '__main__':
    sys.exit(main())
