"""The fault matrix (docs/robustness.md §6): faults a robot meets and errors a user meets.

- quiet shutdown: SIGINT/SIGTERM of a node flooding its publishers (timer + thread, one node or two in a
  multi-threaded executor) stops it with code 0, no traceback, no RCLError, no "never retrieved";
- the runner: respawn (launch_ros semantics), the robot outliving the cloud, a node that cannot start not
  respawned (fake processes, no DDS); and the real thing: the cloud SIGKILLed under `runespoor launch demo`
  is respawned while the edge keeps running and follows the new controller;
- the edge: the link going to (almost) zero and back, and a frame flood (logic, no ROS);
- no silent no-ops: the controller refuses bandwidth_kbps while it follows LinkStats, a hand-set edge knob is
  published back and seen by the controller, type errors say what to write;
- fail fast: `runespoor demo` / `runespoor launch` name a bad bag, data root, profile, parameter, schedule
  in one line before loading any model (exit 2), and an interrupted demo exits 130 with what it has;
- wrong weights: the Cityscapes ESPNet is refused as the CamVid model;
- replay like a live camera: restamped by default, stamps monotonic across loops.

No test depends on machine speed: every wait is on a condition (a log line, a message, a process state)
with a generous timeout.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_two_level_profile

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / 'shared'
CLI = [sys.executable, '-m', 'runespoor_tools.cli']
NOISE = ('Traceback', 'never retrieved', 'RCLError', 'context is invalid', 'context is not valid')


# ----------------------------------------------------------------------------------------------- helpers
class Proc:
    """A command in a session of its own, its output read line by line as it comes."""

    def __init__(self, cmd: list[str], cwd=REPO):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=dict(os.environ), cwd=cwd, start_new_session=True)
        self.text = ''
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)

    def read_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate(self.text) and time.monotonic() < deadline:
            if self._sel.select(timeout=0.5):
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.text += line
        return predicate(self.text)

    def signal(self, sig) -> None:
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout: float = 60) -> int:
        rest, _ = self.proc.communicate(timeout=timeout)
        self.text += rest
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def procs():
    started: list[Proc] = []

    def start(cmd):
        p = Proc(cmd)
        started.append(p)
        return p
    yield start
    for p in started:
        p.kill()


@pytest.fixture(scope='module')
def small_bag(tmp_path_factory):
    """Three CamVid val frames (with labels) as an MCAP bag."""
    from runespoor_edge import bagio
    root = SHARED / 'data' / 'camvid'
    assert root.is_dir(), f'{root} is missing'
    out = tmp_path_factory.mktemp('bags') / 'camvid3'
    bagio.convert('camvid', root, out, split='val', limit=3, progress=False)
    return out


def camera_less_bag(path: Path) -> Path:
    """A readable bag without /camera/image_raw (one std_msgs/String topic)."""
    from runespoor_edge import bagio
    ts = bagio.typestore()
    w = bagio.open_writer(path, 'mcap')
    w.open()
    conn = w.add_connection('/chatter', 'std_msgs/msg/String', typestore=ts)
    for i in range(3):
        w.write(conn, 1_000_000_000 + i * 100_000_000,
                ts.serialize_cdr(ts.types['std_msgs/msg/String'](data=f'm{i}'), 'std_msgs/msg/String'))
    w.close()
    return path


def assert_quiet(text: str) -> None:
    found = [n for n in NOISE if n in text]
    assert not found, f'{found} in the output:\n{text[-4000:]}'


# ----------------------------------------------------------------------------------- quiet shutdown
@pytest.mark.ros
@pytest.mark.parametrize('mode', ['one', 'multi'])
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_stop_while_publishing_is_quiet(procs, mode, sig):
    """A node publishing from a 1 ms timer and from its own thread (the bag player's way), alone or two in a
    MultiThreadedExecutor (the cloud process's way): the stop races publishes and waits, and must be silent."""
    p = procs([sys.executable, str(REPO / 'test' / 'peers' / 'flood_peer.py')] + (['multi'] if mode == 'multi' else []))
    want = 2 if mode == 'multi' else 1
    assert p.read_until(lambda t: t.count('flooding') >= want, 60), p.text
    p.signal(sig)
    code = p.finish(30)
    assert code == 0, p.text
    assert_quiet(p.text)


# ------------------------------------------------------------------------------ runner supervision
class FakeRunner:
    """A Runner whose processes are `python -c` sleepers (no DDS), named and grouped like the demo's."""

    def __new__(cls, respawn, names=(('cloud', 'cloud'), ('edge_streamer', 'robot'), ('bag_player', 'replay')),
                bad_exit: str = ''):
        from runespoor_common.runner import Runner
        import io

        class _R(Runner):
            def commands(self):
                self.groups = dict(names)
                out = {}
                for name, _ in names:
                    code = 'import sys; sys.exit(2)' if name == bad_exit else 'import time; time.sleep(600)'
                    out[name] = [sys.executable, '-c', code]
                return out
        r = _R('demo', respawn=respawn, output=io.StringIO())
        return r


def _until(pred, timeout=60.0, step=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def test_runner_respawns_a_killed_cloud_and_leaves_the_robot_alone():
    r = FakeRunner(respawn={'restorer': 0.2, 'segmentation': 0.2})   # any cloud node: the cloud process
    r.start()
    try:
        edge_pid, cloud_pid = r.procs['edge_streamer'].pid, r.procs['cloud'].pid
        os.kill(cloud_pid, signal.SIGKILL)
        dead = {}
        assert _until(lambda: r.procs['cloud'].pid != cloud_pid, step=lambda: dead.update(r.supervise()))
        assert dead == {} and r.restarts == {'cloud': 1}
        assert r.procs['cloud'].poll() is None and r.procs['edge_streamer'].pid == edge_pid
        assert r.procs['edge_streamer'].poll() is None
        log = r.output.getvalue()
        assert 'node cloud exited with code -9; respawning in 0.2 s' in log and 'respawning cloud (restart 1)' in log
    finally:
        codes = r.stop()
    assert all(c in (0, -2, -15) for c in codes.values()), codes


def test_runner_without_respawn_the_robot_outlives_the_cloud():
    r = FakeRunner(respawn={})
    r.start()
    try:
        os.kill(r.procs['cloud'].pid, signal.SIGKILL)
        dead = {}
        assert _until(lambda: 'cloud' in dead, step=lambda: dead.update(r.supervise()))
        assert dead == {'cloud': -9} and not r.must_stop(dead)            # the robot keeps running
        assert r.procs['edge_streamer'].poll() is None and r.procs['bag_player'].poll() is None
        os.kill(r.procs['edge_streamer'].pid, signal.SIGKILL)              # a robot node dying stops the role
        dead = {}
        assert _until(lambda: 'edge_streamer' in dead, step=lambda: dead.update(r.supervise()))
        assert r.must_stop(dead)
    finally:
        r.stop()


def test_runner_does_not_respawn_a_node_that_cannot_start():
    r = FakeRunner(respawn={'cloud': 0.0}, bad_exit='cloud')
    r.start()
    try:
        dead = {}
        assert _until(lambda: 'cloud' in dead, step=lambda: dead.update(r.supervise()))
        assert dead == {'cloud': 2} and r.restarts == {}
        assert 'it could not start; not respawned' in r.output.getvalue()
    finally:
        r.stop()


@pytest.mark.ros
@pytest.mark.slow
def test_cloud_sigkill_under_runespoor_launch_demo_is_respawned_and_the_edge_follows(procs, small_bag):
    """`runespoor launch demo`: SIGKILL the cloud process; the runner restarts it (respawn, on by default
    for the cloud in the demo role), the edge streamer keeps running the whole time and applies the new
    controller's KnobConfig; SIGINT then stops everything with code 0 and no traceback."""
    bilinear = "restorer:methods='2:bilinear,4:bilinear,6:bilinear,8:bilinear'"
    p = procs(CLI + ['launch', 'demo', '--bag', str(small_bag), '--loop', 'true', '--single-process',
                     '--respawn-delay', '0.5', '--set', bilinear, '--set', 'restorer:warmup_size=none',
                     '--set', 'segmentation:warmup_size=none'])
    edge_knobs = lambda t: [ln for ln in t.splitlines() if ln.startswith('[edge_streamer') and 'knobs ->' in ln  # noqa: E731
                            and 'start at' in ln]
    assert p.read_until(lambda t: len(edge_knobs(t)) >= 1, 300), p.text[-5000:]
    cloud_pid = int(p.text.split('started cloud (pid ')[1].split(')')[0])
    edge_pid = int(p.text.split('started edge_streamer (pid ')[1].split(')')[0])
    os.kill(cloud_pid, signal.SIGKILL)
    assert p.read_until(lambda t: 'respawning cloud (restart 1)' in t and len(edge_knobs(t)) >= 2, 300), \
        p.text[-5000:]
    assert 'node edge_streamer exited' not in p.text and 'stopping the others' not in p.text
    os.kill(edge_pid, 0)   # the same edge process all along
    p.signal(signal.SIGINT)
    code = p.finish(60)
    assert code == 0, p.text[-5000:]
    assert 'Traceback' not in p.text and 'never retrieved' not in p.text, p.text[-5000:]


# ------------------------------------------------------------------------------------ the edge alone
def _streamer(schedule: str, max_queue: int = 3):
    from runespoor_edge.knobs import KnobSettings
    from runespoor_edge.link import TokenBucketLink
    from runespoor_edge.streamer import Streamer
    clock = [0.0]
    link = TokenBucketLink(schedule=schedule, max_queue=max_queue, max_delay_s=1.0, clock=lambda: clock[0])
    return Streamer(KnobSettings(scale=2, jpeg_quality=75), link=link, clock=lambda: clock[0]), clock


def test_link_to_zero_and_back_bounded_queue_then_flowing_again():
    """Schedule 10 Mbit/s, then 1 kbit/s (the link as good as gone) for 20 s, then 10 Mbit/s again, 15 fps
    of 160x120 noise: during the stall at most the frame on the wire gets out, every other frame is dropped
    and counted, the queue stays bounded; after it frames flow again."""
    s, clock = _streamer('0:10000,4:1,24:10000')
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), np.uint8)
    sent_in = {'before': 0, 'stall': 0, 'after': 0}
    max_q = 0
    for i in range(int(40 * 15)):
        t = i / 15
        clock[0] = t
        res = s.on_frame(frame, t)
        res2 = s.poll(t)
        phase = 'before' if t < 4 else 'stall' if t < 24 else 'after'
        sent_in[phase] += len(res.sent) + len(res2.sent)
        max_q = max(max_q, s.link.queue_length)
    assert sent_in['before'] > 30 and sent_in['after'] > 100, sent_in
    assert sent_in['stall'] <= 2, sent_in
    assert max_q <= 4 and s.link.counters.dropped_frames > 250


def test_frame_flood_keeps_the_queue_and_memory_bounded():
    """10 000 camera frames offered at once (no time passing) into a 100 kbit/s link: the queue never
    grows past max_queue + the frame on the wire; everything else is dropped and counted."""
    s, clock = _streamer('0:100', max_queue=3)
    frame = np.full((96, 128, 3), 90, np.uint8)
    for i in range(10_000):
        s.on_frame(frame, 1.0 + i * 1e-6, now=1.0)
        assert s.link.queue_length <= 4
    w = s.take_window(now=1.0)
    assert w.frames_total + w.dropped_total + s.link.queue_length == 10_000
    assert w.dropped_total >= 9_990


# --------------------------------------------------------------------------------- no silent no-ops
@pytest.mark.ros
def test_controller_refuses_bandwidth_kbps_while_following_link_stats(rclpy_context, tmp_path):
    from rclpy.parameter import Parameter
    from runespoor_cloud.controller_node import ControllerNode
    prof = write_two_level_profile(tmp_path / 'p.yaml')
    node = ControllerNode(context=rclpy_context, cli_args=['--ros-args', '-p', f'profile:={prof}'])
    try:
        res = node.set_parameters([Parameter('bandwidth_kbps', value=150.0)])[0]
        assert not res.successful
        assert 'bandwidth_source is parameter' in res.reason and 'link_stats' in res.reason
        assert node.p['bandwidth_kbps'] == 0.0
        res = node.set_parameters([Parameter('bandwidth_kbps', value=-1)])[0]   # the type, said plainly
        assert not res.successful and res.reason == 'bandwidth_kbps expects a float, got integer -1: write -1.0'
        # the documented way: switch the mode first, then the value takes effect
        assert node.set_parameters([Parameter('bandwidth_source', value='parameter')])[0].successful
        assert node.set_parameters([Parameter('bandwidth_kbps', value=400.0)])[0].successful
        assert node.cac.level.bandwidth_kbps == 350.0
        # both at once is fine too
        res = node.set_parameters_atomically([Parameter('bandwidth_source', value='link_stats'),
                                              Parameter('bandwidth_kbps', value=800.0)])
        assert not res.successful
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_hand_set_edge_knob_is_published_back_and_seen_by_the_controller(rclpy_context, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from runespoor.msg import KnobConfig
    from runespoor_cloud.controller_node import ControllerNode
    from runespoor_common import graph
    from runespoor_common.qos import LATCHED_QOS
    from runespoor_edge.streamer_node import EdgeStreamer
    from conftest import wait_for
    prof = write_two_level_profile(tmp_path / 'p.yaml')
    edge = EdgeStreamer(context=rclpy_context, cli_args=['--ros-args', '-p', 'bandwidth_kbps:=0.0'])
    ctl = ControllerNode(context=rclpy_context, cli_args=['--ros-args', '-p', f'profile:={prof}'])
    import rclpy
    obs = rclpy.create_node('knob_observer', context=rclpy_context)
    applied = []
    obs.create_subscription(KnobConfig, graph.KNOBS_APPLIED, applied.append, LATCHED_QOS)
    ex = SingleThreadedExecutor(context=rclpy_context)
    for n in (edge, ctl, obs):
        ex.add_node(n)
    spin = lambda: ex.spin_once(timeout_sec=0.05)  # noqa: E731
    try:
        # the controller's start config reaches the edge and comes back as applied
        assert wait_for(lambda: any(m.config_id == '700kbps/standard' for m in applied), 60, spin=spin), \
            [m.config_id for m in applied]
        assert wait_for(lambda: ctl.stats.values.get('edge_in_sync') == 'true', 30, spin=spin)
        assert edge.set_parameters([Parameter('scale', value=8)])[0].successful
        assert wait_for(lambda: applied[-1].config_id == 'param' and applied[-1].scale == 8, 30, spin=spin)
        assert wait_for(lambda: ctl.stats.values.get('edge_config') == 'param', 30, spin=spin)
        assert ctl.stats.values['edge_in_sync'] == 'false' and ctl.cac.last_id is None   # re-sent next time
        assert edge.stats.values['knobs'].startswith('x8')
    finally:
        for n in (obs, ctl, edge):
            n.destroy_node()


def test_parameter_type_errors_say_what_to_write():
    from runespoor_common.params import Param, check_values, type_error
    f, i, s, b = (Param('bandwidth_kbps', 0.0, ''), Param('scale', 4, ''), Param('schedule', '', ''),
                  Param('loop', False, ''))
    assert type_error(f, -1) == 'bandwidth_kbps expects a float, got integer -1: write -1.0'
    assert type_error(i, 4.0) == 'scale expects an integer, got float 4.0: write 4'
    assert type_error(s, 5) == "schedule expects a string, got integer 5: write '5' (quoted)"
    assert type_error(b, 'yes') == "loop expects a boolean (true or false), got string 'yes': write true or false"
    assert type_error(f, 1.5) is None and type_error(Param('t', ['a'], ''), []) is None
    errors, warnings = check_values([f, i], {'bandwith_kbps': 1.0, 'scale': 4.0}, 'robot.yaml: edge_streamer')
    assert errors == ['robot.yaml: edge_streamer: scale expects an integer, got float 4.0: write 4']
    assert warnings == ["robot.yaml: edge_streamer: unknown parameter 'bandwith_kbps' (did you mean "
                        "'bandwidth_kbps'?); it is ignored"]


# ------------------------------------------------------------------------------------------ fail fast
@pytest.mark.slow
@pytest.mark.parametrize('case', ['missing_bag', 'truncated_bag', 'camera_less_bag', 'missing_data_root',
                                  'corrupt_profile', 'wrong_parameter', 'bad_schedule'])
def test_demo_names_a_bad_input_in_one_line_before_loading_models(tmp_path, small_bag, case):
    import shutil
    args = ['--bag', str(small_bag)]
    if case == 'missing_bag':
        args, want = ['--bag', str(tmp_path / 'nope')], f'--bag {tmp_path / "nope"}: not found'
    elif case == 'truncated_bag':
        bag = tmp_path / 'trunc'
        shutil.copytree(small_bag, bag)
        f = next(bag.glob('*.mcap'))
        f.write_bytes(f.read_bytes()[:3000])
        args, want = ['--bag', str(bag)], f'{bag}: corrupt or truncated bag'
    elif case == 'camera_less_bag':
        bag = camera_less_bag(tmp_path / 'nocam')
        args, want = ['--bag', str(bag)], f"bag {bag}: no frames on /camera/image_raw (it has ['/chatter'])"
    elif case == 'missing_data_root':
        args, want = ['--data-root', str(tmp_path / 'nodata')], f'{tmp_path / "nodata"}/camvid not found'
    elif case == 'corrupt_profile':
        bad = tmp_path / 'bad.yaml'
        bad.write_text('levels: [\n  - {bandwidth_kbps: 1\n')
        args += ['--set', f'cac_controller:profile={bad}']
        want = f'cac_controller: profile {bad}: not valid YAML (line 2'
    elif case == 'wrong_parameter':
        args += ['--set', 'edge_streamer:bandwidth_kbps=-1']
        want = 'edge_streamer: bandwidth_kbps expects a float, got integer -1: write -1.0'
    else:
        args += ['--schedule', '0:abc']
        want = "--schedule '0:abc': expected"
    res = subprocess.run(CLI + ['demo', '--out', str(tmp_path / 'runs')] + args, capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert want in out, out
    assert 'Traceback' not in out and 'up after' not in out   # nothing was started
    assert not (tmp_path / 'runs').exists() or not any((tmp_path / 'runs').glob('2*'))


@pytest.mark.ros
@pytest.mark.slow
def test_launch_refuses_a_misspelt_parameter_with_the_nearest_name():
    res = subprocess.run(CLI + ['launch', 'robot', '--set', 'edge_streamer:bandwith_kbps=5.0'],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "unknown parameter 'bandwith_kbps' (did you mean 'bandwidth_kbps'?)" in out and 'started' not in out


@pytest.mark.ros
@pytest.mark.slow
def test_interrupted_demo_exits_130_with_what_it_has(procs, tmp_path, small_bag):
    p = procs(CLI + ['demo', '--bag', str(small_bag), '--out', str(tmp_path / 'runs'), '--no-baselines'])
    assert p.read_until(lambda t: 'runespoor launch: started' in t, 300), p.text[-4000:]
    os.kill(p.proc.pid, signal.SIGINT)   # Ctrl-C reaches the demo process (its nodes run in sessions of their own)
    code = p.finish(120)
    assert code == 130, p.text[-4000:]
    assert 'Traceback' not in p.text, p.text[-4000:]
    summary = json.loads(next((tmp_path / 'runs').glob('2*/summary.json')).read_text())
    assert summary['interrupted'] is True
    # every node process the demo started is gone (none left running in the background)
    import re
    pids = [int(x) for x in re.findall(r'started \w+ \(pid (\d+)\)', p.text)]
    assert pids, p.text[-3000:]

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f'/proc/{pid}/stat').read_text().split()[2] == 'Z'
    assert _until(lambda: all(gone(pid) for pid in pids), 30), [pid for pid in pids if not gone(pid)]


def test_cityscapes_weights_are_refused_as_camvid():
    from runespoor_cloud.models import ModelFileError
    from runespoor_cloud.segmentation import Segmenter, check_weights
    city = SHARED / 'models' / 'espnet' / 'espnet_p_2_q_8_cityscapes.pth'
    assert check_weights('espnet', city, 'cityscapes') == 20
    with pytest.raises(ModelFileError, match='model has 20 outputs, camvid needs 11 .*fit cityscapes'):
        check_weights('espnet', city, 'camvid')
    with pytest.raises(ModelFileError, match='model has 20 outputs, camvid needs 11'):
        Segmenter('espnet', weights=city, dataset='camvid')


def test_unreadable_weights_do_not_repeat_torch_advice(tmp_path):
    from runespoor_cloud.models import ModelFileError
    from runespoor_cloud.segmentation import check_weights
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'garbage' * 20)
    with pytest.raises(ModelFileError) as err:
        check_weights('espnet', bad, 'camvid')
    assert f'{bad}: truncated or unreadable weight file' in str(err.value)
    assert 'weights_only' not in str(err.value) and '\n' not in str(err.value)


def test_profile_unknown_keys_are_warned_and_frame_rate_is_required():
    from runespoor_cloud.controller import ProfileError, parse_profile
    doc = {'dataset': 'camvid', 'frame_rate': 10.0, 'tail_detectr': {'tail_threshold': 0.1},
           'levels': [{'bandwidth_kbps': 100.0, 'standard': {'scale': 8, 'jpeg_quality': 60, 'framerate': 5},
                       'tail': {'scale': 6, 'jpeg_quality': 40}}]}
    p = parse_profile(doc, 'p.yaml')
    assert "profile p.yaml: unknown key 'tail_detectr' ignored (did you mean 'tail_detector'?)" in p.notes
    assert "profile p.yaml: levels[0].standard: unknown key 'framerate' ignored (did you mean 'frame_rate'?)" \
        in p.notes
    no_rate = {k: v for k, v in doc.items() if k != 'frame_rate'}
    with pytest.raises(ProfileError, match='profile p.yaml: frame_rate missing'):
        parse_profile(no_rate, 'p.yaml')


# -------------------------------------------------------------------------------- replay like a camera
def test_replay_restamps_by_default_and_stamps_rise_across_loops(small_bag):
    import yaml
    from runespoor_common import graph
    from runespoor_edge import bagio
    from runespoor_edge.bag_player_node import PARAMS
    assert next(p for p in PARAMS if p.name == 'restamp').default is True
    doc = yaml.safe_load((REPO / 'config' / 'replay.yaml').read_text())
    section = next(v for k, v in doc.items() if k.strip('/').endswith('bag_player'))
    assert section['ros__parameters']['restamp'] is True
    arg = next(a for a in graph.launch_args_for('replay') if a.name == 'restamp')
    assert ('bag_player', 'restamp', 'bool') in arg.sets
    now = 1_800_000_000_000_000_000
    pb = bagio.BagPlayback(small_bag, ['/camera/image_raw'], loop=True, restamp=True, now_ns=lambda: now)
    stamps = []
    for item in pb.items():
        stamps.append(bagio.cdr_stamp_ns(item.data))
        if len(stamps) >= 9:   # three loops of three frames
            break
    assert all(b > a for a, b in zip(stamps, stamps[1:])), stamps
    assert stamps[0] == now
    kept = bagio.BagPlayback(small_bag, ['/camera/image_raw'], loop=True, restamp=False)
    raw = []
    for item in kept.items():
        raw.append(bagio.cdr_stamp_ns(item.data))
        if len(raw) >= 6:
            break
    assert raw[:3] == raw[3:6]   # bag stamps repeat on every loop: why restamp is the default


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    import types
    from runespoor_cloud.controller import ProfileError
    from runespoor_tools import cli
    mod = types.ModuleType('fake_subcommand')
    mod.add_arguments = lambda p: p.add_argument('--kind', default='bad')

    def run(args):
        if args.kind == 'bad':
            raise ProfileError('profile p.yaml: frame_rate missing (required)')
        if args.kind == 'bug':
            raise RuntimeError('something\nbroke')
        raise KeyboardInterrupt
    mod.run = run
    monkeypatch.setitem(sys.modules, 'fake_subcommand', mod)
    monkeypatch.setitem(cli.SUBCOMMANDS, 'fake', ('fake_subcommand', 'a test subcommand'))
    assert cli.main(['fake']) == 2
    assert capsys.readouterr().err == 'runespoor fake: error: profile p.yaml: frame_rate missing (required)\n'
    assert cli.main(['fake', '--kind', 'bug']) == 1
    assert capsys.readouterr().err == ('runespoor fake: unexpected RuntimeError: something broke '
                                       '(--debug shows the traceback)\n')
    assert cli.main(['fake', '--kind', 'int']) == 130
    with pytest.raises(ProfileError):
        cli.main(['fake', '--debug'])


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize('setting,needle', [
    ('segmentation:weights={city}', 'model has 20 outputs, camvid needs 11'),
    ('restorer:weights_dir={tmp}', 'asr_x4.pt: model file is missing'),
])
def test_launch_cloud_refuses_wrong_weights_before_any_node_starts(tmp_path, setting, needle):
    """`runespoor launch cloud` checks the weight files (no model built) before it starts a node."""
    city = SHARED / 'models' / 'espnet' / 'espnet_p_2_q_8_cityscapes.pth'
    res = subprocess.run(CLI + ['launch', 'cloud', '--set', setting.format(city=city, tmp=tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out[-3000:]
    assert needle in out and 'started' not in out and 'Traceback' not in out, out[-3000:]


def test_restorer_check_config_names_a_checkpoint_of_another_method(tmp_path):
    """A weight file recording another method is refused at the start-up check, naming the file."""
    import shutil

    import torch
    from runespoor_cloud.restorer_node import check_config
    src = REPO / 'models' / 'camvid' / 'sr_x4.pt'
    (tmp_path / 'camvid').mkdir()
    ckpt = torch.load(src, map_location='cpu', weights_only=True)
    ckpt['method'] = 'sr'
    torch.save(ckpt, tmp_path / 'camvid' / 'asr_x4.pt')
    shutil.copy(src, tmp_path / 'camvid' / 'sr_x4.pt')
    assert check_config({'methods': '4:sr', 'weights_dir': str(tmp_path), 'dataset': 'camvid'}) == []
    errors = check_config({'methods': '4:asr', 'weights_dir': str(tmp_path), 'dataset': 'camvid'})
    assert len(errors) == 1 and "asr_x4.pt: trained as method 'sr', expected 'asr'" in errors[0], errors
