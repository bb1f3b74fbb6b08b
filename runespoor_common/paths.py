"""Where things are: the package share folder (config, launch, models), data and third-party weights.

Data and weights are located by --data-root / $RUNESPOOR_DATA and --model-dir / $RUNESPOOR_MODELS,
falling back to ../shared/data and ../shared/models beside a source checkout when present.
"""
from __future__ import annotations

import os
from pathlib import Path

_SRC_ROOT = Path(__file__).resolve().parent.parent


def source_root() -> Path | None:
    """The repository root when running from a source checkout (editable install), else None."""
    return _SRC_ROOT if (_SRC_ROOT / 'package.xml').is_file() and (_SRC_ROOT / 'config').is_dir() else None


def share_dir() -> Path:
    """Folder holding config/, launch/ and models/: the checkout in editable mode, else the install."""
    src = source_root()
    if src is not None:
        return src
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('runespoor'))
    except Exception:  # not on AMENT_PREFIX_PATH: a pip-mode install into a prefix such as a venv
        import sys
        return Path(sys.prefix) / 'share' / 'runespoor'


def config_dir() -> Path:
    return share_dir() / 'config'


def weights_dir() -> Path:
    """The project's own trained weights (models/ in the repository, share/runespoor/models installed)."""
    return share_dir() / 'models'


def _shared() -> Path | None:
    src = source_root()
    if src is not None and (src.parent / 'shared').is_dir():
        return src.parent / 'shared'
    return None


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get('RUNESPOOR_DATA'):
        return Path(os.environ['RUNESPOOR_DATA'])
    shared = _shared()
    if shared is not None:
        return shared / 'data'
    raise FileNotFoundError('no data root: pass --data-root or set RUNESPOOR_DATA')


def model_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Third-party weights (ESPNet, CARN-M)."""
    if explicit:
        return Path(explicit)
    if os.environ.get('RUNESPOOR_MODELS'):
        return Path(os.environ['RUNESPOOR_MODELS'])
    shared = _shared()
    if shared is not None:
        return shared / 'models'
    raise FileNotFoundError('no model dir: pass --model-dir or set RUNESPOOR_MODELS')
