"""Atomic file writes: an output file (results, profiles, weights) is written beside its destination and
renamed over it, so a reader sees the old file or the new one and never a part (rename is atomic on POSIX)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def write_atomic(path: str | os.PathLike, write: Callable[[IO], Any], binary: bool = False,
                 fsync: bool = False) -> Path:
    """Create `path` (and its folder) with `write(fh)`; `fsync` flushes to disk before the rename (for
    files that take long to remake, such as trained weights). The file is 0644: mkstemp makes 0600, and
    these are ordinary output files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb' if binary else 'w') as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    return write_atomic(path, lambda fh: fh.write(text))


def write_json_atomic(obj: Any, path: str | os.PathLike, **dump_args) -> Path:
    """JSON with `json.dump(obj, fh, **dump_args)` and a final newline."""
    def write(fh):
        json.dump(obj, fh, **dump_args)
        fh.write('\n')
    return write_atomic(path, write)
