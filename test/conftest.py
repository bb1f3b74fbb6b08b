"""Test fixtures. Network safety first: this file sets loopback-only DDS discovery for the whole test
session before anything can import rclpy, and gives every test a ROS domain of its own."""
from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.pop('ROS_STATIC_PEERS', None)
os.environ.setdefault('PYTHONUNBUFFERED', '1')

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / 'shared'
sys.path.insert(0, str(REPO))

# A run's domains start at a random offset so that two test runs on one machine rarely meet.
_DOMAINS = itertools.cycle(list(range(20, 100)))
for _ in range(random.SystemRandom().randint(0, 79)):
    next(_DOMAINS)


@pytest.fixture(autouse=True)
def ros_domain(monkeypatch) -> int:
    """Every test gets its own ROS_DOMAIN_ID (subprocesses inherit it)."""
    domain = next(_DOMAINS)
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return domain


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f'../shared is missing beside the repository ({SHARED}); tests read real data from it')
    return SHARED


@pytest.fixture
def rclpy_context():
    """An initialised rclpy context for in-process node tests (shut down afterwards)."""
    import rclpy
    from rclpy.context import Context
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, spin=None) -> bool:
    """Poll `predicate` (spinning `spin()` between polls when given) until true or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spin is not None:
            spin()
        if predicate():
            return True
        if spin is None:
            time.sleep(interval)
    return bool(predicate())


class NodeProcess:
    """A node started as its own process (`python -m module --ros-args ...`), output captured."""

    def __init__(self, module: str, ros_args: list[str] | None = None, name: str | None = None):
        cmd = [sys.executable, '-m', module, '--ros-args']
        if name:
            cmd += ['-r', f'__node:={name}']
        cmd += list(ros_args or [])
        import tempfile
        self._out = tempfile.TemporaryFile(mode='w+')
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                     env=dict(os.environ), start_new_session=True)

    def output(self) -> str:
        self._out.flush()
        self._out.seek(0)
        return self._out.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        import signal
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def node_process():
    """Factory: node_process(module, ros_args=[...], name=...) -> NodeProcess; all stopped at the end."""
    started: list[NodeProcess] = []

    def start(module: str, ros_args: list[str] | None = None, name: str | None = None) -> NodeProcess:
        p = NodeProcess(module, ros_args, name)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


# ---------------------------------------------------------------- models and frames shared by the chain tests
# Session-scoped: loading ESPNet and the ASR x4 weights costs seconds, and test_chain / test_inference share
# them. The imports are inside the fixtures so that tests which need no torch do not pay for it.
@pytest.fixture(scope='session')
def val_frames():
    """Two CamVid val frames at 480x360 (RGB uint8), as the bench loads them."""
    from runespoor_tools.bench import load_frames
    f, src = load_frames((480, 360), None, 2)
    assert src.startswith('camvid val'), src
    return f


@pytest.fixture(scope='session')
def espnet_segmenter():
    from runespoor_cloud.segmentation import Segmenter
    return Segmenter('espnet', dataset='camvid')


@pytest.fixture(scope='session')
def asr4_restorer():
    """The committed ASR x4 weights in a plain (reference-path) Restorer."""
    from runespoor_tools.bench import make_restorer
    return make_restorer(('asr',), (4,), 'cpu', None)['asr'][0]


def write_two_level_profile(path: Path, frame_rate: float = 10.0) -> Path:
    """A CAC profile with two levels whose tail configs differ from the standard ones (350 and 700 kbit/s)."""
    path.write_text(TWO_LEVEL_PROFILE.format(frame_rate=frame_rate))
    return path


TWO_LEVEL_PROFILE = """dataset: camvid
frame_rate: {frame_rate}
levels:
  - bandwidth_kbps: 350.0
    standard: {{scale: 6, jpeg_quality: 90}}
    tail: {{scale: 4, jpeg_quality: 70}}
  - bandwidth_kbps: 700.0
    standard: {{scale: 4, jpeg_quality: 90}}
    tail: {{scale: 2, jpeg_quality: 60}}
"""
