"""The README cannot drift: every `ros2 ...` and `runespoor ...` command line in it is run here (long-running
ones are started, checked and stopped with SIGINT), is run by the test named in ELSEWHERE, or says on its own
line in the README (`# needs ...`) what the test machines lack (a GPU, rviz2, rosbag2).

Command lines: every line of a fenced code block that starts with `ros2 ` or `runespoor ` (split at `&&`),
and every inline `ros2 ...` / `runespoor ...` span with three words after the command (or ending in an option)
and no placeholder (`<...>`,
`a|b`, `[...]`, which name a family of commands, not one). A README command missing from the tables below
fails `test_every_readme_command_is_covered`: add it to a step (or ELSEWHERE) when you add it to the README.

Commands run as written, with these substitutions only: `--domain-id 42` -> the test's domain (network
safety: every test has its own), `../shared` -> the shared folder beside the checkout, `/path/to/bag` -> a
small bag; relative paths (`bags/`, `runs/`) land in the test's temporary folder, optional `[--flags]` are
included, and `runespoor bag convert` gets `--limit` so that it converts a few frames (40 CamVid ones).
"""
from __future__ import annotations

import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from launch_helpers import (REPO, SHARED, VENV, Launched, assert_clean_stop, node_list, param_get, require_ros2,
                            ros2, ros2_env, wait_until)
from runespoor_common import graph

pytestmark = [pytest.mark.ros, pytest.mark.slow]

README = REPO / 'README.md'
START_TIMEOUT = 300.0
NEEDS = re.compile(r'#.*\bneeds\b')   # `# needs a GPU and rviz2 (...)` on the command's line


def readme_commands() -> dict[str, str]:
    """command -> its README comment ('' when none)."""
    text = README.read_text()
    cmds: dict[str, str] = {}
    for block in re.findall(r'^```(?:bash|sh|console)?\n(.*?)^```', text, re.S | re.M):
        for line in block.splitlines():
            code, _, comment = line.partition(' #')
            for part in code.split('&&'):
                part = part.strip()
                if re.match(r'(ros2|runespoor) ', part):
                    cmds[' '.join(part.split())] = comment.strip()
    outside = re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)
    for span in re.findall(r'`((?:ros2|runespoor) [^`]+)`', outside):
        cmd = ' '.join(span.split())
        words = cmd.split()
        if (len(words) >= 4 or words[-1].startswith('-')) and not re.search(r'[<>|\[\]]|\.\.\.', cmd):
            cmds.setdefault(cmd, '')
    return cmds


#: commands run by another test, exactly or as a superset (test -> why that counts)
ELSEWHERE = {
    'runespoor bench --quick': 'test/test_bench.py runs `runespoor bench --quick` on a tiny frame size; the '
                               'README quotes a full run on the development machine',
    'ros2 launch runespoor robot.launch.py -s': 'test/test_colcon.py (from the colcon install space) and '
                                                'test/test_launch_roles.py (every role, pip route)',
}

#: step name -> the README commands it runs
STEPS = {
    'bag_convert_info_and_replay_launch': [
        'runespoor bag convert --format camvid --input ../shared/data/camvid --split val --out bags/camvid_val',
        'runespoor bag convert --format cityscapes --input ../shared/data/cityscapes --split val --out bags/cs_val',
        'runespoor bag convert --format video --input ../shared/data/video/solidWhiteRight.mp4 --out bags/highway',
        'runespoor bag info bags/camvid_val',
        'runespoor bag convert --format cityscapes --input ../shared/data/cityscapes --split val --sequence '
        'frankfurt --out bags/frankfurt',
        'ros2 launch runespoor replay.launch.py bag:=bags/frankfurt',
    ],
    'bag_play_and_record': [
        'runespoor bag play bags/camvid_val --rate 2 --loop --start-offset 1.5 [--restamp] [--reliable] '
        '[--wait-subscribers 1]',
        'runespoor bag record --out runs/rec --topics /camera/image_raw /runespoor/uplink /runespoor/knobs '
        '[--duration 30]',
    ],
    'runner_two_terminals': [
        'runespoor launch cloud --device cpu --domain-id 42',
        'runespoor launch robot --bandwidth 2000 --domain-id 42',
    ],
    'runner_demo': ['runespoor launch demo --bag runs/bags/camvid_val_0016E5'],
    'runner_single_process': ['runespoor launch cloud --single-process'],
    'ros2_launch_robot': ['ros2 launch runespoor robot.launch.py bandwidth:=5000'],
    'ros2_launch_demo': ['ros2 launch runespoor demo.launch.py bag:=/path/to/bag'],
    'ros2_run_and_param_set': [
        'ros2 run runespoor edge_streamer',
        'ros2 param set /edge_streamer bandwidth_kbps 5000.0',
        'ros2 param set /cac_controller bandwidth_kbps 700.0',
    ],
}


def _normal(cmd: str) -> str:
    return ' '.join(cmd.split())


def test_every_readme_command_is_covered():
    cmds = readme_commands()
    assert len(cmds) >= 15, cmds  # the extraction still finds the README's commands
    run_here = {_normal(c) for cs in STEPS.values() for c in cs}
    marked = {c for c, comment in cmds.items() if NEEDS.search('#' + comment)}
    uncovered = [c for c in cmds if c not in run_here and c not in ELSEWHERE and c not in marked]
    assert not uncovered, ('README command lines that no test runs (add them to a step in '
                           f'test/test_readme_commands.py, or mark what they need with `# needs ...`): {uncovered}')
    stale = [c for c in run_here | set(ELSEWHERE) if c not in cmds]
    assert not stale, f'commands tested here but no longer in the README: {stale}'
    for c in marked:  # what the tests lack, said with a reason
        assert re.search(r'needs (a GPU|rviz2|rosbag2)', cmds[c]) and '(' in cmds[c], (c, cmds[c])


# ------------------------------------------------------------------------------------------------ running them
class Ctx:
    def __init__(self, tmp_path: Path, domain: int):
        self.cwd = tmp_path
        self.domain = domain
        self.env = ros2_env()
        self.started: list[Launched] = []

    def argv(self, cmd: str) -> list[str]:
        cmd = cmd.replace('--domain-id 42', f'--domain-id {self.domain}').replace('../shared', str(SHARED))
        if '/path/to/bag' in cmd:
            cmd = cmd.replace('/path/to/bag', str(self.bag('runs/bags/small')))
        cmd = re.sub(r'\[([^\]]+)\]', r'\1', cmd)
        argv = shlex.split(cmd)
        if argv[:3] == ['runespoor', 'bag', 'convert']:  # CamVid val at 15 fps: 40 frames = 2.7 s of bag, more
            argv += ['--limit', '40' if 'camvid' in cmd else '6', '--quiet']  # than `bag play --start-offset 1.5`
        exe = VENV / 'bin' / argv[0]
        assert exe.exists(), exe
        return [str(exe)] + argv[1:]

    def run(self, cmd: str, timeout: float = 600) -> str:
        res = subprocess.run(self.argv(cmd), cwd=self.cwd, env=self.env, capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, f'{cmd}: exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}'
        return res.stdout + res.stderr

    def start(self, cmd: str) -> Launched:
        la = Launched(self.argv(cmd), env=self.env, cwd=self.cwd)
        self.started.append(la)
        return la

    def bag(self, rel: str) -> Path:
        path = self.cwd / rel
        if not path.exists():
            self.run(f'runespoor bag convert --format camvid --input ../shared/data/camvid --split val --out {rel}')
        return path

    def wait_nodes(self, names, la: Launched | list[Launched]):
        las = la if isinstance(la, list) else [la]
        wait_until(lambda: set(names) <= set(node_list()), START_TIMEOUT, f'nodes {sorted(names)}',
                   diag=lambda: '\n'.join(x.output()[-2500:] for x in las))

    def stop_clean(self, la: Launched, group: bool = False):
        rc = la.interrupt(group=group)
        if Path(la.cmd[0]).name == 'ros2' and la.cmd[1] == 'launch':
            assert_clean_stop(la, rc)
        else:
            out = la.output()
            assert rc == 0 and 'Traceback' not in out, (la.cmd, rc, out[-3000:])
            wait_until(lambda: not la.left_over(), 60, f'{la.cmd[:3]}: no process left', diag=lambda: out[-2000:])


def _names(role: str, single: bool = False) -> set[str]:
    if single:
        return {f'/{s.name}' for s in graph.nodes_for(role, False) if s.group != 'cloud'} | \
               {f'/{s.name}' for s in graph.nodes_for('cloud', False)}
    return {f'/{s.name}' for s in graph.nodes_for(role, False)}


def step_bag_convert_info_and_replay_launch(c: Ctx, cmds):
    for cmd in cmds[:3]:
        c.run(cmd)
    info = c.run(cmds[3])
    assert '/camera/image_raw' in info, info
    c.run(cmds[4])
    la = c.start(cmds[5])
    c.wait_nodes({'/bag_player'}, la)
    c.stop_clean(la)


def step_bag_play_and_record(c: Ctx, cmds):
    """play (looping, waits for one subscriber) + record (its `--duration 30` ends it): images recorded."""
    c.bag('bags/camvid_val')
    play = c.start(cmds[0])
    rec = c.start(cmds[1])
    rc = rec.proc.wait(START_TIMEOUT)
    out = rec.output()
    assert rc == 0 and 'Traceback' not in out, out[-3000:]
    m = re.search(r'wrote (\d+) messages', out)
    assert m and int(m.group(1)) > 0, out[-3000:] + play.output()[-2000:]
    c.stop_clean(play)
    info = c.run('runespoor bag info runs/rec')
    assert '/camera/image_raw' in info, info


def step_runner_two_terminals(c: Ctx, cmds):
    cloud, robot = c.start(cmds[0]), c.start(cmds[1])
    c.wait_nodes(_names('cloud') | _names('robot'), [cloud, robot])
    assert param_get('/edge_streamer', 'bandwidth_kbps') == '2000.0'
    assert param_get('/restorer', 'device') == 'cpu'
    c.stop_clean(robot)
    c.stop_clean(cloud)


def step_runner_demo(c: Ctx, cmds):
    c.bag('runs/bags/camvid_val_0016E5')
    la = c.start(cmds[0])
    c.wait_nodes(_names('demo'), la)
    c.stop_clean(la)


def step_runner_single_process(c: Ctx, cmds):
    la = c.start(cmds[0])
    c.wait_nodes(_names('cloud'), la)
    c.stop_clean(la)


def step_ros2_launch_robot(c: Ctx, cmds):
    la = c.start(cmds[0])
    wait_until(lambda: param_get('/edge_streamer', 'bandwidth_kbps') == '5000.0', START_TIMEOUT,
               'bandwidth 5000', diag=lambda: la.output()[-3000:])
    c.stop_clean(la)


def step_ros2_launch_demo(c: Ctx, cmds):
    la = c.start(cmds[0])
    c.wait_nodes(_names('demo'), la)
    c.stop_clean(la, group=True)  # Ctrl-C in a terminal: SIGINT to the whole foreground group


def step_ros2_run_and_param_set(c: Ctx, cmds):
    # the README's `ros2 run runespoor edge_streamer` (Executables) and the two `ros2 param set` lines
    edge = c.start(cmds[0])
    ctl = c.start('ros2 run runespoor cac_controller')  # for the second `ros2 param set`
    c.wait_nodes({'/edge_streamer', '/cac_controller'}, [edge, ctl])
    # run as written (through the ros2 daemon, whose view of the graph catches up after the nodes are up:
    # "Node not found" until it does), retried until it answers, generously
    out = wait_until(lambda: c.run(cmds[1], timeout=120), START_TIMEOUT, cmds[1])
    assert 'Set parameter successful' in out, out
    assert param_get('/edge_streamer', 'bandwidth_kbps') == '5000.0'
    out = wait_until(lambda: c.run(cmds[2], timeout=120), START_TIMEOUT, cmds[2])
    # successful, or refused with its reason while bandwidth_source is link_stats (README, cac_controller)
    assert 'Set parameter successful' in out or re.search(r'Setting parameter failed: \S', out), out
    for la in (edge, ctl):
        c.stop_clean(la, group=True)


@pytest.mark.parametrize('step', sorted(STEPS))
def test_readme_step(step, tmp_path, ros_domain):
    require_ros2()
    c = Ctx(tmp_path, ros_domain)
    try:
        globals()[f'step_{step}'](c, [_normal(x) for x in STEPS[step]])
    finally:
        for la in c.started:
            la.kill()
        subprocess.run([str(VENV / 'bin' / 'ros2'), 'daemon', 'stop'], env=c.env, capture_output=True, timeout=60)
