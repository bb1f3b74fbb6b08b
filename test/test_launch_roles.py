"""The launch files under the real launch system (`ros2 launch`, ../shared/ros2-kit), checked with the real
`ros2` CLI: robot, cloud and replay as separate process groups on one test domain, every launch argument
taking effect, clean SIGINT, the demo with a small bag and a cloud node respawned, the refusals before any
node starts, and `-s` listing exactly the graph's arguments. Plain pytest driving subprocesses
(launch_testing is deliberately absent: its pytest plugin breaks pytest 9); test/launch_helpers.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml

from launch_helpers import (BEST_EFFORT, LATCHED, RELIABLE, REPO, VENV, assert_clean_stop, echo_once, fast_cloud_params,
                            launch_argument_names, node_list, param_get, require_ros2, ros2, ros2_env,
                            ros2_launch, small_bag, wait_until)
from runespoor_common import graph

pytestmark = [pytest.mark.ros, pytest.mark.slow]

START_TIMEOUT = 300.0   # model loading on a starved 2-core machine


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    return small_bag(tmp_path_factory.mktemp('bag') / 'camvid12')


@pytest.mark.parametrize('role', sorted(graph.ROLES))
def test_show_args_lists_exactly_the_graph_arguments(role):
    require_ros2()
    out = ros2('launch', 'runespoor', f'{role}.launch.py', '-s')
    assert launch_argument_names(out) == [a.name for a in graph.launch_args_for(role)], out
    for a in graph.launch_args_for(role):
        assert a.description.split(' (')[0] in out


def test_robot_cloud_replay_as_separate_launches(tmp_path, bag):
    """Three `ros2 launch` process groups, one domain: every argument reaches its parameter, frames flow to
    the tail detector, the controller's knobs reach the edge, and SIGINT stops each group cleanly."""
    require_ros2()
    ns = 'rs1'
    robot_params = tmp_path / 'robot.yaml'
    data = yaml.safe_load((REPO / 'config' / 'robot.yaml').read_text())
    data['/**/edge_streamer']['ros__parameters'].update(max_queue=4, bandwidth_kbps=123.0)
    robot_params.write_text(yaml.safe_dump(data))
    # device: cuda in the file, cpu from the launch argument: the argument must win
    cloud_params = fast_cloud_params(tmp_path / 'cloud.yaml', {('restorer', 'device'): 'cuda',
                                                                 ('segmentation', 'device'): 'cuda',
                                                                 ('cac_controller', 'return_after'): 3})
    launches = {}
    try:
        launches['cloud'] = ros2_launch('runespoor', 'cloud.launch.py', f'namespace:={ns}', 'device:=cpu',
                                        f'params_file:={cloud_params}')
        launches['robot'] = ros2_launch('runespoor', 'robot.launch.py', f'namespace:={ns}', 'bandwidth:=3000',
                                        'schedule:=0:3000,600:2500', f'params_file:={robot_params}')
        launches['replay'] = ros2_launch('runespoor', 'replay.launch.py', f'namespace:={ns}', f'bag:={bag}',
                                         'loop:=true')

        def diag():
            return '\n'.join(f'--- {k}\n{v.output()[-2500:]}' for k, v in launches.items())

        expected = sorted(f'/{ns}/{s.name}' for s in graph.nodes_for('demo', include_external=False))
        wait_until(lambda: set(expected) <= set(node_list()), START_TIMEOUT, f'nodes {expected}', diag=diag)
        # each launch argument took effect (and the params files where no argument overrides them)
        e, r = f'/{ns}/edge_streamer', f'/{ns}/restorer'
        assert param_get(e, 'bandwidth_kbps') == '3000.0'
        assert param_get(e, 'schedule') == '0:3000,600:2500'
        assert param_get(e, 'max_queue') == '4'
        assert param_get(r, 'device') == 'cpu' and param_get(f'/{ns}/segmentation', 'device') == 'cpu'
        assert param_get(r, 'methods') == '2:bilinear,4:bilinear,6:bilinear,8:bilinear'
        assert param_get(f'/{ns}/cac_controller', 'return_after') == '3'
        assert param_get(f'/{ns}/bag_player', 'loop') == 'True'
        # frames flow camera -> edge -> restorer -> segmentation -> tail detector
        report = wait_until(lambda: echo_once(f'/{ns}/runespoor/tail_report', 'runespoor/msg/TailReport', *RELIABLE,
                                              timeout=60), START_TIMEOUT, 'a TailReport', diag=diag)
        assert 0.0 <= report['small_region_ratio'] <= 1.0
        # the controller's knobs reach the edge: frames are sent with its config
        knobs = echo_once(f'/{ns}/runespoor/knobs', 'runespoor/msg/KnobConfig', *LATCHED)
        assert knobs['config_id'] not in ('', 'param'), knobs
        wait_until(lambda: echo_once(f'/{ns}/runespoor/uplink', 'runespoor/msg/EncodedFrame', *BEST_EFFORT,
                                     timeout=60)['knobs']['config_id'] not in ('', 'param'),
                   START_TIMEOUT, 'an uplink frame sent with the controller\'s knobs', diag=diag)
        assert param_get(e, 'scale') in {str(s) for s in (1, 2, 4, 6, 8)}
        # SIGINT to each launch while frames flow (cloud first: its nodes publish while shutting down)
        for name in ('cloud', 'robot', 'replay'):
            rc = launches[name].interrupt()
            assert_clean_stop(launches[name], rc)
    finally:
        for la in launches.values():
            la.kill()


def test_demo_launch_with_a_small_bag_respawns_a_dead_cloud_node(tmp_path, bag):
    """demo.launch.py: frames flow with the bag; a SIGKILLed cloud node comes back (respawn is on for the
    cloud in the demo) while the edge keeps its pid; Ctrl-C (SIGINT to the group) stops everything."""
    require_ros2()
    cloud_params = fast_cloud_params(tmp_path / 'cloud.yaml')
    la = ros2_launch('runespoor', 'demo.launch.py', f'bag:={bag}', 'loop:=true', 'respawn_delay:=0.5',
                     f'params_file_cloud:={cloud_params}')
    try:
        diag = lambda: la.output()[-4000:]
        wait_until(lambda: echo_once('/runespoor/tail_report', 'runespoor/msg/TailReport', *RELIABLE, timeout=60),
                   START_TIMEOUT, 'a TailReport', diag=diag)
        out = la.output()
        pid = int(next(l for l in out.splitlines() if '[tail_detector-' in l and 'process started' in l)
                  .rsplit('[', 1)[1].rstrip(']'))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: la.output().count('[tail_detector-3]: process started') >= 2, 120,
                   'tail_detector respawned', diag=diag)
        wait_until(lambda: echo_once('/runespoor/tail_report', 'runespoor/msg/TailReport', *RELIABLE, timeout=60),
                   START_TIMEOUT, 'a TailReport from the respawned tail_detector', diag=diag)
        assert la.output().count('[edge_streamer-5]: process started') == 1  # the robot never restarted
        rc = la.interrupt(group=True)
        out = la.output()
        # the SIGKILLed process is reported as died; every other one finished cleanly
        assert 'exit code -9' in out
        out_clean = out.replace(f'process has died [pid {pid}, exit code -9', '')
        assert 'process has died' not in out_clean, out[-4000:]
        wait_until(lambda: not la.left_over(), 30, 'no process left', diag=diag)
        assert rc == 0 and 'Traceback' not in out, out[-4000:]
        assert "sending signal 'SIGTERM'" not in out, out[-4000:]
    finally:
        la.kill()


def test_rviz_without_rviz2_is_refused_before_any_node_starts():
    require_ros2()
    env = ros2_env()
    if subprocess.run([sys.executable, '-c', 'from ament_index_python.packages import get_package_prefix as g; '
                       'g("rviz2")'], env=env, capture_output=True).returncode == 0:
        pytest.skip('rviz2 is installed here: the refusal path cannot be exercised')
    la = ros2_launch('runespoor', 'cloud.launch.py', 'rviz:=true', env=env)
    try:
        rc = la.proc.wait(120)
        out = la.output()
        assert rc != 0
        assert 'rviz:=true but rviz2 is not installed' in out and 'no node was started' in out, out
        assert 'process started' not in out and 'Traceback' not in out, out
        wait_until(lambda: not la.left_over(), 30, 'no process left', diag=lambda: out)
    finally:
        la.kill()


@pytest.mark.parametrize('args, reason', [
    (['bandwidth:=fast'], "bad launch argument: could not convert string to float: 'fast'"),
    ([], 'bag:=<rosbag2 folder> is required'),
    (['bag:=/nonexistent/bag'], 'bag:=/nonexistent/bag: no such file or folder'),
    (['params_file_robot:=/nonexistent.yaml'], 'params_file_robot:=/nonexistent.yaml: no such file'),
    (['namespace:=a b'], "namespace:='a b' is not a valid ROS namespace"),
])
def test_a_bad_argument_is_refused_before_any_node_starts(bag, args, reason):
    """The demo starts cloud nodes first: an error found later would orphan them; nothing starts instead."""
    require_ros2()
    if args and not any(a.startswith('bag:=') for a in args):
        args = args + [f'bag:={bag}']
    la = ros2_launch('runespoor', 'demo.launch.py', *args)
    try:
        rc = la.proc.wait(120)
        out = la.output()
        assert rc != 0 and reason in out and 'no node was started' in out, out
        assert 'process started' not in out and 'Traceback' not in out, out
        wait_until(lambda: not la.left_over(), 30, 'no process left', diag=lambda: out)
    finally:
        la.kill()


def test_launch_needs_no_ament_prefix_path():
    """With no AMENT_PREFIX_PATH a launch file run by path still starts its node (python -m module) with
    the checkout's parameter file, and generate_launch_description() works in plain Python."""
    require_ros2()
    env = ros2_env(ament=False)
    la = ros2_launch(str(REPO / 'launch' / 'robot.launch.py'), 'bandwidth:=2500', env=env)
    try:
        wait_until(lambda: param_get('/edge_streamer', 'bandwidth_kbps') == '2500.0', START_TIMEOUT,
                   'edge_streamer with bandwidth 2500', diag=lambda: la.output()[-3000:])
        assert param_get('/edge_streamer', 'jpeg_quality') in {str(q) for q in range(40, 96)}
        assert_clean_stop(la, la.interrupt())
    finally:
        la.kill()
    code = ('import runpy; ld = runpy.run_path("launch/cloud.launch.py")["generate_launch_description"](); '
            'print(len(ld.entities))')
    res = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
