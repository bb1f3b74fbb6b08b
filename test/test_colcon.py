"""The colcon route (README, "ROS 2 workspace route"), as a user on a ROS 2 machine takes it, against the Kilted
wheels of this venv as the underlay: colcon-core + colcon-ros from PyPI into a throwaway venv, `colcon build` of
a clone of the repository in a temporary workspace, `. install/setup.bash`, then
`ros2 launch runespoor robot.launch.py -s` and one node started from the install space (`ros2 run`).

The clone is `git clone` of this checkout plus the working tree's uncommitted and untracked (not ignored) files,
so a local run builds what would be committed; in CI the two are the same. The slowest test of the suite
(README states its time); it needs the PyPI index (or a pip cache) for colcon, like `make setup`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch_helpers import REPO, VENV, Launched, param_get, require_ros2, ros2_env, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

COLCON_PACKAGES = ['colcon-core', 'colcon-ros', 'colcon-bash']  # colcon-bash writes install/setup.bash


def _run(cmd, cwd=None, env=None, timeout=1200, what=''):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f'{what or cmd}: exit {res.returncode}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}'
    return res.stdout


def _clone(dest: Path) -> None:
    """`git clone` of the checkout, then its working-tree changes (modified, deleted, untracked not ignored)."""
    _run(['git', 'clone', '--quiet', '--no-hardlinks', str(REPO), str(dest)], what='git clone')
    listed = _run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO).split('\0')
    present = {f for f in listed if f and (REPO / f).is_file()}
    for f in present:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dest / f)
    tracked = _run(['git', 'ls-files', '-z'], cwd=dest).split('\0')
    for f in tracked:
        if f and f not in present and (dest / f).is_file():
            (dest / f).unlink()


def _bash(script: str, cwd: Path, env: dict, timeout=600, what='') -> str:
    return _run(['bash', '-c', 'set -eo pipefail\n' + script], cwd=cwd, env=env, timeout=timeout, what=what)


def test_colcon_build_and_run_from_the_install_space(tmp_path):
    require_ros2()
    t0 = time.monotonic()
    times = {}
    # colcon in a throwaway venv (the same base interpreter as this venv)
    tools = tmp_path / 'colcon-venv'
    base = getattr(sys, '_base_executable', sys.executable)
    _run([base, '-m', 'venv', str(tools)], what='python -m venv')
    _run([str(tools / 'bin' / 'pip'), 'install', '--disable-pip-version-check', '-q', *COLCON_PACKAGES],
         timeout=900, what='pip install colcon-core colcon-ros')
    times['colcon venv'] = time.monotonic() - t0
    ws = tmp_path / 'ws'
    _clone(ws / 'src' / 'runespoor')
    # underlay = this venv with the Kilted wheels (what `source /opt/ros/kilted/setup.bash` is elsewhere)
    env = ros2_env()
    env.update(CMAKE_PREFIX_PATH=str(VENV), PATH=f'{VENV / "bin"}{os.pathsep}{env["PATH"]}',
               MAKEFLAGS='-j2', PYTHONDONTWRITEBYTECODE='1')
    env.pop('PYTHONPATH', None)
    t1 = time.monotonic()
    _bash(f'"{tools}/bin/colcon" build --executor sequential '
          f'--cmake-args -DPython3_EXECUTABLE="{VENV}/bin/python" -DBUILD_TESTING=OFF', ws, env, timeout=1500,
          what='colcon build')
    times['colcon build'] = time.monotonic() - t1
    install = ws / 'install'
    assert (install / 'runespoor' / 'share' / 'runespoor' / 'launch' / 'robot.launch.py').is_file()
    assert (install / 'runespoor' / 'lib' / 'runespoor' / 'edge_streamer').is_file()
    # `. install/setup.bash`, then the launch file's arguments and the package seen from the install space
    out = _bash('. install/setup.bash\n'
                'ros2 pkg prefix runespoor\n'
                'python -c "import runespoor_common, runespoor.msg; print(runespoor_common.__file__)"\n'
                'ros2 launch runespoor robot.launch.py -s', ws, env, what='setup.bash + ros2 launch -s')
    lines = out.splitlines()
    assert lines[0] == str(install / 'runespoor'), out
    assert lines[1].startswith(str(install / 'runespoor' / 'lib')), out  # not the checkout
    assert "'bandwidth':" in out and "'params_file':" in out, out
    assert f"{install / 'runespoor' / 'share' / 'runespoor' / 'config' / 'robot.yaml'}" in out, out
    # one node from the install space: ros2 run runespoor edge_streamer
    node = Launched(['bash', '-c', f'. "{install}/setup.bash" && exec ros2 run runespoor edge_streamer '
                     '--ros-args -p bandwidth_kbps:=1234.0'], env=env)
    try:
        assert wait_until(lambda: param_get('/edge_streamer', 'bandwidth_kbps') == '1234.0', 300,
                          'edge_streamer from the install space', diag=lambda: node.output()[-3000:])
        script = str(install / 'runespoor' / 'lib' / 'runespoor' / 'edge_streamer').encode()
        cmdlines = [Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0') for pid in node.left_over()]
        assert any(script in c for c in cmdlines), cmdlines
        assert node.interrupt(group=True) == 0, node.output()[-3000:]
        assert 'Traceback' not in node.output()
    finally:
        node.kill()
    times['total'] = time.monotonic() - t0
    print('colcon route times [s]:', {k: round(v, 1) for k, v in times.items()})
