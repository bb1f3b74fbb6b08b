"""Where things are: the package share folder (config, launch, models), data and third-party weights.

Data and weights are located by --data-root / $RUNESPOOR_DATA and --model-dir / $RUNESPOOR_MODELS,
falling back to ../shared/data and ../shared/models beside a source checkout when present.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

try:  # the ament index exists where ROS is sourced; a pip-mode install has none
    from ament_index_python.packages import get_package_share_directory
except ImportError:
    get_package_share_directory = None

_SRC_ROOT = Path(__file__).resolve().parent.parent


def source_root() -> Path | None:
    """The repository root when running from a source checkout (editable install), else None."""
    return _SRC_ROOT if (_SRC_ROOT / 'package.xml').is_file() and (_SRC_ROOT / 'config').is_dir() else None


def share_dir() -> Path:
    """Folder holding config/, launch/ and models/: the checkout in editable mode, else the install (from
    the ament index where AMENT_PREFIX_PATH is set, else the prefix this package is installed in: never
    needs AMENT_PREFIX_PATH)."""
    src = source_root()
    if src is not None:
        return src
    if get_package_share_directory is not None:
        try:
            return Path(get_package_share_directory('runespoor'))
        except Exception:  # not on AMENT_PREFIX_PATH: a pip-mode install into a prefix such as a venv
            pass
    here = _SRC_ROOT.parent.parent.parent / 'share' / 'runespoor'  # <prefix>/lib/pythonX.Y/site-packages
    if here.is_dir():
        return here
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


def _locate(explicit, env: str, shared_name: str, what: str) -> Path:
    """`explicit`, else $`env`, else ../shared/`shared_name` beside a source checkout."""
    if explicit:
        return Path(explicit)
    if os.environ.get(env):
        return Path(os.environ[env])
    shared = _shared()
    if shared is not None:
        return shared / shared_name
    raise FileNotFoundError(f'no {what}: pass --{what.replace(" ", "-")} or set {env}')


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    return _locate(explicit, 'RUNESPOOR_DATA', 'data', 'data root')


def model_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Third-party weights (ESPNet, CARN-M)."""
    return _locate(explicit, 'RUNESPOOR_MODELS', 'models', 'model dir')
