"""`runespoor ros` (pip-only route): the ros2 verbs on rclpy against real node processes, and the run-time
refusals of docs/robustness.md §6 as a user sees them (`ros2 param set` output)."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_for, write_two_level_profile

pytestmark = [pytest.mark.ros, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent
ROS = [sys.executable, '-m', 'runespoor_tools.cli', 'ros', '--rclpy']


def ros(*args, timeout=120):
    res = subprocess.run(ROS + list(args), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return res.returncode, res.stdout + res.stderr


def test_ros_verbs_on_rclpy(node_process, tmp_path):
    prof = write_two_level_profile(tmp_path / 'p.yaml')
    edge = node_process('runespoor_edge.streamer_node', ['-p', 'bandwidth_kbps:=0.0'])
    ctl = node_process('runespoor_cloud.controller_node', ['-p', f'profile:={prof}'])
    # the edge has applied the controller's start config (it logs it): the graph is up
    assert wait_for(lambda: 'start at' in edge.output(), 120), edge.output() + ctl.output()
    assert wait_for(lambda: '/cac_controller' in ros('node', 'list')[1], 120)
    code, out = ros('--spin-time', '5', 'node', 'list')
    assert code == 0 and '/edge_streamer' in out.split() and '/cac_controller' in out.split(), out
    listed = lambda: ros('topic', 'list', '-t')[1]  # noqa: E731 - discovery may take longer than one call
    assert wait_for(lambda: '/runespoor/knobs [runespoor/msg/KnobConfig]' in (out := listed())
                    and '/runespoor/knobs_applied' in out, 120)
    code, out = ros('param', 'get', '/edge_streamer', 'scale')
    assert code == 0 and out.strip() == 'Integer value is: 4', out      # the 700 kbit/s standard config
    # a change that cannot take effect is refused with the reason; a wrong type says what to write
    code, out = ros('param', 'set', '/cac_controller', 'bandwidth_kbps', '150.0')
    assert code == 1 and out.startswith('Setting parameter failed: bandwidth_kbps is only followed when '
                                        'bandwidth_source is parameter'), out
    code, out = ros('param', 'set', '/cac_controller', 'bandwidth_kbps', '150')
    assert code == 1 and 'bandwidth_kbps expects a float, got integer 150: write 150.0' in out, out
    assert ros('param', 'set', '/cac_controller', 'bandwidth_source', 'parameter') == (0, 'Set parameter successful\n')
    assert ros('param', 'set', '/cac_controller', 'bandwidth_kbps', '400.0') == (0, 'Set parameter successful\n')
    # the controller moved to the 350 kbit/s level and the edge applied it (published back on knobs_applied)
    code, out = ros('topic', 'echo', '/runespoor/knobs_applied', '--once', '--timeout', '60')
    assert code == 0 and 'config_id:' in out, out
    assert wait_for(lambda: "350kbps/standard" in ros('topic', 'echo', '/runespoor/knobs_applied', '--once')[1], 60)
    code, out = ros('param', 'dump', '/edge_streamer')
    assert code == 0 and out.startswith('/edge_streamer:\n  ros__parameters:\n') and 'scale: 6' in out, out
    code, out = ros('topic', 'hz', '/runespoor/link_stats', '--duration', '4')
    assert code == 0 and ('average rate:' in out or 'no new messages' in out), out
