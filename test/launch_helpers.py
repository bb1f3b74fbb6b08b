"""Helpers for tests that drive the real `ros2` CLI and `ros2 launch` as subprocesses.

The launch system and the CLI come from ../shared/ros2-kit, installed into the venv by `make setup`.
`launch_testing` is deliberately absent (its pytest plugin makes every pytest 9 run abort), so launch tests
are plain pytest driving `ros2 launch` as a subprocess. Every process runs with the test's ROS_DOMAIN_ID and
loopback-only discovery (test/conftest.py sets both), and AMENT_PREFIX_PATH = the venv (what the README's
shell setup exports for the `ros2` verbs). No fixed sleeps: everything waits on a condition.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / 'shared'
KIT = SHARED / 'ros2-kit'
VENV = Path(sys.prefix)
ROS2 = VENV / 'bin' / 'ros2'
RUNESPOOR = VENV / 'bin' / 'runespoor'

#: what launch logs when a process did not stop on SIGINT within its sigterm_timeout (5 s)
ESCALATION = re.compile(r"sending signal 'SIG(TERM|KILL)'")


def require_ros2() -> str:
    """The `ros2` command of this venv; fails when the kit is beside the repo but not installed."""
    if ROS2.exists():
        return str(ROS2)
    if KIT.is_dir():
        pytest.fail(f'{ROS2} missing although {KIT} exists: run `make setup` (tools/setup_env.sh installs it)')
    pytest.skip('no ros2 CLI in this venv (pip route without ../shared/ros2-kit)')


def ros2_env(extra: dict | None = None, ament: bool = True) -> dict:
    """The environment of a `ros2` call: the test's domain, loopback discovery, AMENT_PREFIX_PATH = venv."""
    env = dict(os.environ)
    assert env.get('ROS_DOMAIN_ID'), 'conftest gives every test a ROS_DOMAIN_ID'
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PATH'] = f'{VENV / "bin"}{os.pathsep}{env.get("PATH", "")}'
    env['PYTHONUNBUFFERED'] = '1'
    if ament:
        env['AMENT_PREFIX_PATH'] = str(VENV)
    else:
        env.pop('AMENT_PREFIX_PATH', None)
    env.update(extra or {})
    return env


def ros2(*args: str, timeout: float = 120.0, env: dict | None = None, check: bool = True) -> str:
    """Run `ros2 ARGS...` to completion; its stdout (stderr appended on failure)."""
    res = subprocess.run([require_ros2(), *args], capture_output=True, text=True, timeout=timeout,
                         env=env or ros2_env(), stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise AssertionError(f'ros2 {" ".join(args)} -> {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}')
    return res.stdout


def wait_until(fn, timeout: float, what: str, interval: float = 0.5, diag=None):
    """Call `fn()` until it returns something truthy (exceptions count as not yet); returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except (AssertionError, subprocess.TimeoutExpired, ValueError, KeyError, yaml.YAMLError) as exc:
            last = exc
        if time.monotonic() > deadline:
            extra = diag() if diag else ''
            raise AssertionError(f'timed out after {timeout:.0f} s waiting for {what}; last: {last}\n{extra}')
        time.sleep(interval)


def param_get(node: str, name: str, timeout: float = 300.0) -> str:
    """`ros2 param get NODE NAME` -> the value text ('3000.0', 'cpu', ...)."""
    out = wait_until(lambda: ros2('param', 'get', '--no-daemon', node, name, timeout=60), timeout,
                     f'ros2 param get {node} {name}')
    m = re.match(r'\s*\w+ value is: (.*)', out.strip(), re.S)
    assert m, out
    return m.group(1).strip()


def param_dump(node: str, timeout: float = 300.0) -> dict:
    """`ros2 param dump NODE` parsed: {parameter: value}."""
    out = wait_until(lambda: ros2('param', 'dump', '--no-daemon', node, timeout=60), timeout,
                     f'ros2 param dump {node}')
    data = yaml.safe_load(out)
    (key, body), = data.items()
    return body['ros__parameters']


def node_list() -> list[str]:
    return ros2('node', 'list', '--no-daemon', '--all', timeout=60).split()


def node_info(node: str, timeout: float = 120.0) -> dict[str, list[str]]:
    """`ros2 node info NODE` as {section: sorted lines}, once two calls in a row agree: a fresh `ros2`
    process discovers the node's endpoints gradually."""
    previous = [None]

    def settled():  # every node has publishers (/rosout) and parameter services once discovered
        info = _node_info_once(node)
        same = info == previous[0]
        previous[0] = info
        return info if same and info.get('Publishers') and info.get('Service Servers') else None
    return wait_until(settled, timeout, f'a settled `ros2 node info {node}`', interval=0.2)


def _node_info_once(node: str) -> dict[str, list[str]]:
    out = ros2('node', 'info', '--no-daemon', node, timeout=60)
    sections: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines()[1:]:
        if not line.strip():
            continue
        if not line.startswith(' ' * 4) and line.strip().endswith(':'):
            current = line.strip().rstrip(':')
            sections[current] = []
        elif current is not None:
            sections[current].append(line.strip())
    return {k: sorted(v) for k, v in sections.items()}


def echo_once(topic: str, msg_type: str, *qos: str, timeout: float = 120.0) -> dict:
    """One message of `topic` (`ros2 topic echo --once`), parsed from its YAML."""
    out = ros2('topic', 'echo', '--once', '--no-daemon', '--no-arr', *qos, topic, msg_type, timeout=timeout)
    return yaml.safe_load(out.split('\n---')[0])


LATCHED = ('--qos-reliability', 'reliable', '--qos-durability', 'transient_local')
BEST_EFFORT = ('--qos-reliability', 'best_effort', '--qos-durability', 'volatile')
RELIABLE = ('--qos-reliability', 'reliable', '--qos-durability', 'volatile')


def launch_argument_names(show_args_output: str) -> list[str]:
    """The argument names that `ros2 launch ... -s` prints, in order."""
    return re.findall(r"^    '([^']+)':$", show_args_output, re.M)


def pids_in_session(sid: int) -> set[int]:
    """Processes whose session id is `sid` (orphans keep their session when reparented)."""
    out = set()
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                if os.getsid(int(d)) == sid:
                    out.add(int(d))
            except (ProcessLookupError, PermissionError):
                pass
    return out


def alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(') ', 1)[1][0] != 'Z'
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class Launched:
    """A command (`ros2 launch ...`, `runespoor launch ...`) in a session of its own, output captured."""

    def __init__(self, cmd: list[str], env: dict | None = None, cwd: Path | None = None):
        self.cmd = cmd
        self._out = tempfile.TemporaryFile(mode='w+')
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env=env or ros2_env(),
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd)
        self.pid = self.proc.pid

    def output(self) -> str:
        self._out.flush()
        self._out.seek(0)
        return self._out.read()

    def node_pids(self) -> set[int]:
        """Every process launch reported starting, and everything still in its session."""
        out = self.output()  # `ros2 launch`: "process started with pid [N]"; `runespoor launch`: "started X (pid N)"
        started = {int(p) for p in re.findall(r'process started with pid \[(\d+)\]', out)}
        started |= {int(p) for p in re.findall(r'started \S+ \(pid (\d+)\)', out)}
        return (started | pids_in_session(self.pid)) - {self.pid}

    def left_over(self) -> set[int]:
        return {p for p in self.node_pids() | pids_in_session(self.pid) if alive(p)}

    def interrupt(self, group: bool = False, timeout: float = 120.0) -> int:
        """SIGINT to the launcher (or to its whole process group, like Ctrl-C); its exit code."""
        if self.proc.poll() is None:
            (os.killpg if group else os.kill)(self.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Last resort at the end of a test: SIGKILL the launcher and anything it left."""
        for pid in self.left_over() | ({self.pid} if self.proc.poll() is None else set()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def ros2_launch(*args: str, env: dict | None = None) -> Launched:
    return Launched([require_ros2(), 'launch', *args], env=env)


def assert_clean_stop(launched: Launched, rc: int, stop_timeout: float = 30.0) -> None:
    """Exit code 0, no process of the launch left, no traceback, no SIGTERM/SIGKILL escalation (i.e. every
    node stopped on SIGINT within launch's 5 s), every started process reported finished cleanly."""
    out = launched.output()
    wait_until(lambda: not launched.left_over(), stop_timeout, 'no process left', diag=lambda: out[-3000:])
    assert rc == 0, f'exit code {rc}\n{out[-4000:]}'
    assert 'Traceback' not in out, out[-4000:]
    assert not ESCALATION.search(out), f'a node did not stop within 5 s of SIGINT\n{out[-4000:]}'
    started = re.findall(r'process started with pid \[(\d+)\]', out)
    finished = re.findall(r'process has finished cleanly \[pid (\d+)\]', out)
    assert sorted(started) == sorted(finished), f'started {started}, finished cleanly {finished}\n{out[-4000:]}'


def small_bag(out: Path, frames: int = 12) -> Path:
    """A CamVid val bag of `frames` frames (runespoor bag convert; needs ../shared/data)."""
    if not (SHARED / 'data' / 'camvid').is_dir():
        pytest.fail(f'{SHARED}/data/camvid is missing; tests read real data from ../shared')
    subprocess.run([str(RUNESPOOR), 'bag', 'convert', '--format', 'camvid', '--input', str(SHARED / 'data' / 'camvid'),
                    '--split', 'val', '--limit', str(frames), '--out', str(out), '--quiet'],
                   check=True, capture_output=True, timeout=300)
    return out


def fast_cloud_params(path: Path, changes: dict | None = None) -> Path:
    """config/cloud.yaml with bilinear restoration (no SR model to load), no warm-up (a node answers its
    parameter services only once it spins) and `changes` {(node, param): value}."""
    data = yaml.safe_load((REPO / 'config' / 'cloud.yaml').read_text())
    data['/**/restorer']['ros__parameters']['methods'] = '2:bilinear,4:bilinear,6:bilinear,8:bilinear'
    for node in ('restorer', 'segmentation'):
        data[f'/**/{node}']['ros__parameters']['warmup_size'] = 'none'
    for (node, param), value in (changes or {}).items():
        data[f'/**/{node}']['ros__parameters'][param] = value
    path.write_text(yaml.safe_dump(data))
    return path
