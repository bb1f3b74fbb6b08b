"""The pip-mode runner starts the robot and cloud roles as processes and stops them cleanly."""
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]
CLI = [sys.executable, '-m', 'runespoor_tools.cli', 'launch']


def _start(args):
    return subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ), start_new_session=True)


def _read_until(proc, needles, timeout):
    """Collect output until every needle has appeared (or timeout); returns the text."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    text, deadline = '', time.monotonic() + timeout
    while time.monotonic() < deadline and not all(n in text for n in needles):
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if not line:
                break
            text += line
    return text


@pytest.mark.parametrize('role,needles', [
    ('robot', ['[edge_streamer]']),
    ('cloud', ['[restorer', '[segmentation', '[tail_detector', '[cac_controller']),
])
def test_role_starts_and_stops_cleanly_on_sigint(role, needles):
    proc = _start([role])
    try:
        # every node has logged (it is constructed and spinning): no fixed sleep, a generous timeout
        text = _read_until(proc, needles, 180)
        assert all(n in text for n in needles), text[-3000:]
        assert proc.poll() is None, f'runner exited early:\n{text[-3000:]}'
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, (text + rest)[-3000:]
        assert 'stopping the nodes' in rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_runner_refuses_a_bad_value_before_starting_anything():
    proc = _start(['robot', '--set', 'edge_streamer:jpeg_quality=500'])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "edge_streamer: parameter 'jpeg_quality': must be in [40, 95], got 500" in out
    assert 'started' not in out and 'Traceback' not in out


def test_runner_exits_nonzero_when_a_node_dies():
    proc = _start(['robot'])
    try:
        text = _read_until(proc, ['edge streamer up'], 180)
        assert 'edge streamer up' in text, text[-3000:]
        pid = int(text.split('started edge_streamer (pid ')[1].split(')')[0])
        os.kill(pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
        out = text + rest
        assert proc.returncode == 1, out[-3000:]
        assert 'node edge_streamer exited with code -9' in out and 'stopping the others' in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
