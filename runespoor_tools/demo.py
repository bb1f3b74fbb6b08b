"""`runespoor demo`: the main job end to end on a replayed real sequence (what `make demo` runs).

bag player -> edge streamer (emulated uplink, bandwidth schedule) -> restorer (trained ASR) ->
segmentation -> tail detector -> CAC controller -> knobs back to the edge, with the robot role and the
cloud role as separate processes over DDS (loopback only, a domain of its own). Writes runs/<timestamp>/:
summary.json, summary.md, timeline.png (the paper's Fig. 12), recording.mcap (via `runespoor bag
record`), overlay.mp4.

Fail fast: the whole configuration (schedule, --set parameters, the parameter files, the CAC profile,
the bag and its camera topic, the data root, the segmentation weights) is checked before any model is
loaded; a bad input is one line naming it (exit 2). The cloud is respawned when it dies (`--respawn-delay`,
`--no-respawn`); the robot and the replay keep running without it. Ctrl-C (or SIGTERM) stops the nodes,
writes what the run has (summary.json with `interrupted: true`) and exits 130.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from runespoor_cloud.chain import CloudChain
from runespoor_cloud.controller import load_profile
from runespoor_cloud.metrics import frame_miou
from runespoor_cloud.restore import Restorer, weight_path
from runespoor_cloud.segmentation import Segmenter, check_weights, default_weights
from runespoor_common import graph, paths, rosenv
from runespoor_common.datasets import label_lut
from runespoor_common.runner import Runner, check_runners, deferred_signals, parse_sets
from runespoor_common.stats import summarize
from runespoor_edge import bagio
from runespoor_edge.codec import edge_roundtrip
from runespoor_tools import run_analysis as ra
from runespoor_tools.monitor import Monitor

#: Recorded with every demo run: the whole graph but the restorer's frame_info (the uplink carries it).
RECORD_TOPICS = [graph.absolute(t) for t in graph.TOPICS if t != graph.FRAME_INFO]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--quick', action='store_true', help='a ~30 s run (schedule compressed 2x)')
    parser.add_argument('--format', choices=['camvid', 'cityscapes', 'video'], default='camvid',
                        help='source of the sequence to convert when no --bag is given')
    parser.add_argument('--input', type=Path, default=None,
                        help='data set root or video file (default: <data root>/camvid)')
    parser.add_argument('--split', default='val', help='data set split (default: val)')
    parser.add_argument('--sequence', default='0016E5',
                        help='sequence prefix (CamVid) or city (Cityscapes) to replay (default: 0016E5)')
    parser.add_argument('--bag', type=Path, default=None, help='replay this rosbag2 instead of converting')
    parser.add_argument('--schedule', default=None,
                        help='bandwidth schedule "t_s:kbps,..." (default: the paper\'s 0/5/12/19 s shape, '
                             'full/half/fifth/full, scaled to the source\'s pixel rate)')
    parser.add_argument('--duration', type=float, default=None,
                        help='replay length [s] (default: last schedule phase + 7 s)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda for the cloud models')
    parser.add_argument('--data-root', default=None, help='data root (default: $RUNESPOOR_DATA or ../shared/data)')
    parser.add_argument('--weights-dir', default=None, help="the project's trained weights (default: models/)")
    parser.add_argument('--out', type=Path, default=Path('runs'), help='parent folder of the run folder')
    parser.add_argument('--domain-id', type=int, default=None, help='ROS_DOMAIN_ID (default: random)')
    parser.add_argument('--set', action='append', default=[], metavar='NODE:PARAM=VALUE',
                        help='override a node parameter, e.g. --set cac_controller:return_after=3')
    parser.add_argument('--cloud-process', choices=['single', 'per-node'], default='single',
                        help='cloud nodes in one process (default: restored frames handed over by direct calls, '
                             'as `runespoor launch cloud --single-process`) or one process per node')
    parser.add_argument('--no-baselines', action='store_true',
                        help='skip the offline ASR-only / bilinear-only replays for the timeline')
    parser.add_argument('--respawn-delay', type=float, default=graph.RESPAWN_DELAY_S if hasattr(graph, 'RESPAWN_DELAY_S')
                        else 2.0, help='restart a cloud process this many seconds after it dies [s]')
    parser.add_argument('--no-respawn', action='store_true',
                        help='do not restart the cloud when it dies (the robot keeps running either way)')


# ---------------------------------------------------------------------------------------------------
def ensure_bag(args) -> Path:
    """The bag to replay: --bag, or a cached conversion of the chosen sequence under runs/bags/."""
    if args.bag is not None:
        if not Path(args.bag).exists():
            raise ConfigError(f'--bag {args.bag}: not found')
        return Path(args.bag)
    try:
        root = Path(args.input) if args.input else paths.data_root(args.data_root)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    if args.format == 'video':
        src = args.input or root / 'video' / 'solidWhiteRight.mp4'
        name = f'video_{Path(src).stem}'
    else:
        src = args.input or root / args.format
        name = f'{args.format}_{args.split}_{args.sequence}'
    if not Path(src).exists():
        what = '--input' if args.input else ('data root (--data-root or $RUNESPOOR_DATA)')
        raise ConfigError(f'{what}: {src} not found')
    bag = args.out / 'bags' / name
    if bag.exists() and any(bag.glob('*.mcap')):
        print(f'demo: replaying the cached bag {bag}')
        return bag
    print(f'demo: converting {args.format} {src} ({args.split} {args.sequence}) -> {bag}')
    try:
        bagio.convert(fmt=args.format, input=Path(src), out=bag, split=args.split,
                      sequence=None if args.format == 'video' else args.sequence)
    except (bagio.BagError, ValueError, OSError) as exc:
        raise ConfigError(f'cannot convert {src}: {exc}') from None
    return bag


class ConfigError(ValueError):
    """A bad input of the demo, named in one line (exit 2)."""


def check_bag(bag: Path) -> dict:
    """The bag's summary, when it can be replayed as a camera: readable, with frames on the camera topic
    and their size and rate."""
    try:
        info = bagio.bag_summary(bag)
    except (bagio.BagError, OSError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f'bag {bag}: {exc}' if str(bag) not in str(exc) else str(exc)) from None
    image = graph.absolute(graph.CAMERA_IMAGE)
    if not info.get('frames'):
        raise ConfigError(f'bag {bag}: no frames on {image} (it has {sorted(info.get("topics", {}))}); the demo '
                          'replays camera frames')
    if not (info.get('width', 0) > 0 and info.get('height', 0) > 0 and info.get('fps', 0) > 0):
        raise ConfigError(f'bag {bag}: {image} frames of size {info.get("width")}x{info.get("height")} at '
                          f'{info.get("fps")} fps; expected a positive size and rate')
    return info


def check_args(args) -> None:
    """The demo's own flags, before anything is read or started."""
    if args.schedule:
        try:
            ra.parse_schedule(args.schedule)
        except ValueError as exc:
            raise ConfigError(f'--schedule {args.schedule!r}: expected "t_s:kbps,..." with t >= 0 and kbps >= 0, '
                              f'e.g. 0:10000,5:5000 ({exc})') from None
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise ConfigError(f'--duration {args.duration}: must be a number of seconds > 0')
    if not (math.isfinite(args.respawn_delay) and args.respawn_delay >= 0):
        raise ConfigError(f'--respawn-delay {args.respawn_delay}: must be >= 0 s')
    try:
        parse_sets(args.set)
    except SystemExit as exc:
        raise ConfigError(str(exc)) from None


def check_config(runners: list, info: dict, args) -> None:
    """Everything the nodes will read, before any model is loaded: each role's parameter files and
    overrides (profile, bag topics, parameter types and values), and the segmentation weights."""
    errors, warnings = check_runners(runners)
    for w in warnings:
        print(f'demo: warning: {w}')
    dataset = info.get('dataset') if info.get('dataset') in ('camvid', 'cityscapes') else 'camvid'
    try:
        check_weights('espnet', default_weights('espnet', dataset), dataset)
    except (ValueError, FileNotFoundError) as exc:   # ModelFileError, or no model dir
        errors.append(str(exc))
    if errors:
        raise ConfigError('; '.join(errors) if len(errors) == 1 else
                          f'{len(errors)} configuration errors:\n  ' + '\n  '.join(errors))


def restoration_methods(weights_dir: Path, dataset: str = 'camvid') -> str:
    """'2:asr,4:asr,...': ASR where its trained weights exist, else SR, else bilinear (said aloud)."""
    out = []
    for scale in (2, 4, 6, 8):
        method = next((m for m in ('asr', 'sr') if weight_path(weights_dir, dataset, m, scale).is_file()),
                      'bilinear')
        if method != 'asr':
            print(f'demo: no ASR weights for x{scale} in {weights_dir}; using {method} for it')
        out.append(f'{scale}:{method}')
    return ','.join(out)


class MonitorThread:
    """The monitor node spinning in a thread of this process, in its own rclpy context."""

    def __init__(self):
        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = Monitor(context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while not self._stop.is_set() and self.ctx.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def publishers(self, topic: str) -> int:
        return self.node.count_publishers(topic)

    def close(self):
        self._stop.set()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


class NodeDied(RuntimeError):
    """A robot or replay node died: the run cannot go on."""


def supervise(runners: list) -> None:
    """One supervision step of every role: respawns; a cloud process dying for good is said and the run
    goes on (the robot outlives the cloud); a robot or replay process dying stops the run."""
    for r in runners:
        dead = r.supervise()
        if not dead:
            continue
        if r.role == 'cloud':
            print(f'demo: cloud process(es) {dead} gone for good; the robot keeps streaming with its last '
                  'knobs (then its safe config) -- the rest of the run has no cloud', flush=True)
        else:
            raise NodeDied(f'demo: node(s) {dead} died during the run; see the log above')


def wait_ready(mon: MonitorThread, topics: list[str], timeout: float, procs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        missing = [t for t in topics if mon.publishers(t) == 0]
        if not missing:
            return
        for r in procs:
            dead = r.supervise()
            if dead:
                raise NodeDied(f'demo: node(s) {dead} died during start-up; see the log above')
        time.sleep(0.2)
    raise NodeDied(f'demo: nodes not up after {timeout:.0f} s (no publisher on {missing})')


def make_runners(args, bag: Path, info: dict, sched_text: str, env: dict) -> tuple:
    """The cloud, robot and replay roles as processes, with the demo's parameter defaults (under --set)."""
    cloud_values = {'device': args.device}
    if args.weights_dir:
        cloud_values['weights_dir'] = args.weights_dir
    methods = restoration_methods(Path(args.weights_dir) if args.weights_dir else paths.weights_dir())
    print(f'demo: restoration per scale: {methods}')
    sets = parse_sets(args.set)
    warm = f'{info["width"]}x{info["height"]}'  # trace the models at the replay's size before it starts
    for node, defaults in (('restorer', {'methods': methods, 'warmup_size': warm}),
                           ('segmentation', {'warmup_size': warm}), ('bag_player', {'restamp': True})):
        sets[node] = {**defaults, **sets.get(node, {})}
    respawn = {} if args.no_respawn else {n.name: float(args.respawn_delay)
                                          for n in graph.nodes_for('cloud', include_external=False)}
    cloud = Runner('cloud', cloud_values, env=env, param_sets=sets, respawn=respawn,
                   single_process_cloud=args.cloud_process == 'single')
    robot = Runner('robot', {'schedule': sched_text}, env=env, param_sets=sets, respawn={})
    replay = Runner('replay', {'bag': str(bag), 'loop': 'true'}, env=env, param_sets=sets, respawn={})
    return cloud, robot, replay


def start_recorder(run_dir: Path, env: dict) -> subprocess.Popen:
    """`runespoor bag record` of RECORD_TOPICS into run_dir/recording, in a process group of its own."""
    return subprocess.Popen(
        [sys.executable, '-m', 'runespoor_tools.cli', 'bag', 'record', '--out', str(run_dir / 'recording'),
         '--topics', *RECORD_TOPICS],
        env=env, stdout=open(run_dir / 'recorder.log', 'w'), stderr=subprocess.STDOUT, start_new_session=True)


def stop_recorder(recorder: subprocess.Popen) -> None:
    """SIGINT lets the recorder finalize the bag (metadata.yaml); SIGKILL when it does not within 20 s."""
    if recorder.poll() is None:
        os.killpg(recorder.pid, signal.SIGINT)
        try:
            recorder.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(recorder.pid, signal.SIGKILL)


def print_progress(m, elapsed: float) -> None:
    """One line of what the monitor has seen so far."""
    with m.lock:
        mode = 'tail' if (m.knobs and m.knobs[-1].tail_mode) else 'standard'
        print(f'demo: t={elapsed:5.1f}s captured {len(m.captured):4d}  sent {len(m.sent):4d}  '
              f'processed {len(m.pred):4d}  tail reports {sum(t.is_tail for t in m.tails):3d}'
              f'/{len(m.tails):<4d} knobs {mode}', flush=True)


def replay_for(duration: float, runners: list, mon: MonitorThread) -> None:
    """Let the graph run for `duration` seconds of replay, printing progress every 2 s; stops the demo
    when a node dies."""
    t_replay = time.monotonic()
    next_print = 0.0
    while (elapsed := time.monotonic() - t_replay) < duration:
        supervise(runners)
        if elapsed >= next_print:
            print_progress(mon.node, elapsed)
            next_print += 2.0
        time.sleep(0.1)


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    try:   # fail fast: every input checked before a model is loaded; one line each, exit 2
        check_args(args)
        bag = ensure_bag(args)
        info = check_bag(bag)  # width, height, fps, frames, has_labels
    except ConfigError as exc:
        print(f'demo: {exc}', file=sys.stderr)
        return 2
    time_scale = 0.5 if args.quick else 1.0
    schedule = (ra.parse_schedule(args.schedule) if args.schedule
                else ra.paper_schedule(info['width'], info['height'], info['fps'], time_scale))
    duration = args.duration or (schedule[-1][0] + 7.0 * time_scale)
    domain = args.domain_id if args.domain_id is not None else rosenv.pick_domain_id()
    env = rosenv.safe_env(domain_id=domain)
    sched_text = ra.format_schedule(schedule)
    cloud, robot, replay = make_runners(args, bag, info, sched_text, env)
    try:
        check_config([cloud, robot, replay], info, args)
    except ConfigError as exc:
        print(f'demo: {exc}', file=sys.stderr)
        return 2
    run_dir = args.out / datetime.now().strftime('%Y%m%d-%H%M%S')
    run_dir.mkdir(parents=True, exist_ok=True)
    rosenv.apply_to_this_process(domain)
    print(f'demo: {info["frames"]} frames {info["width"]}x{info["height"]} @ {info["fps"]:.1f} fps, '
          f'schedule {sched_text} (kbit/s), {duration:.0f} s, ROS_DOMAIN_ID={domain}, run dir {run_dir}')

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)   # SIGTERM stops the demo like Ctrl-C
    interrupted, failure = False, None
    recorder, mon = None, None
    runners = [cloud, robot]
    try:
        try:
            with deferred_signals():   # a Ctrl-C inside Popen must not leave a recorder nobody stops
                recorder = start_recorder(run_dir, env)
            mon = MonitorThread()
            cloud.start()
            robot.start()
            wait_ready(mon, [graph.RESTORED, graph.SEG_LABELS, graph.TAIL_REPORT, graph.KNOBS, graph.UPLINK],
                       90, runners)
            print(f'demo: robot and cloud up after {time.monotonic() - t_start:.1f} s; replaying {bag.name}')
            replay.start()
            runners.append(replay)
            replay_for(duration, runners, mon)
            replay.stop()
            time.sleep(2.0)  # let the last frames drain through the cloud
        except KeyboardInterrupt:
            interrupted = True
            print('demo: interrupted; stopping the nodes and writing what the run has', flush=True)
        except NodeDied as exc:
            failure = str(exc)
            print(failure, file=sys.stderr, flush=True)
        finally:
            _stop_all(replay, robot, cloud, recorder, mon)
        if interrupted or failure:
            write_partial(run_dir, mon.node if mon else None, schedule, duration, info, t_start,
                          'interrupted' if interrupted else failure)
            return 130 if interrupted else 1
        print(f'demo: run finished after {time.monotonic() - t_start:.1f} s; analysing')
        try:
            summary = analyse(mon.node, run_dir, schedule, duration, info, args)
        except KeyboardInterrupt:
            write_partial(run_dir, mon.node, schedule, duration, info, t_start, 'interrupted during the analysis')
            return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary['wall_time_s'] = round(time.monotonic() - t_start, 1)
    (run_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    write_summary_md(run_dir, summary)
    print_result(run_dir, summary)
    return 0


def _stop_all(replay, robot, cloud, recorder, mon) -> None:
    """Stop everything that was started; a second Ctrl-C or a SIGTERM while stopping does not cut the stop
    short (it would leave nodes running)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for r in (replay, robot, cloud):
            r.stop()
        if recorder is not None:
            stop_recorder(recorder)
        if mon is not None:
            mon.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def write_partial(run_dir: Path, m, schedule, duration: float, info: dict, t_start: float, why: str) -> None:
    """What a run that did not finish has: the counts and knob changes the monitor saw (no accuracy
    analysis), in summary.json with `interrupted` set."""
    summary = {'interrupted': True, 'why': why, 'source': info, 'schedule_kbps': schedule, 'duration_s': duration,
               'wall_time_s': round(time.monotonic() - t_start, 1)}
    if m is not None:
        with m.lock:
            summary['frames'] = {'captured': len(m.captured), 'sent': len(m.sent), 'processed': len(m.pred)}
            summary['tail_reports'] = len(m.tails)
            summary['tail_frames_flagged'] = sum(1 for e in m.tails if e.is_tail)
            summary['knob_changes'] = [{'config_id': e.config_id, 'tail_mode': e.tail_mode, 'reason': e.reason}
                                       for e in m.knobs]
    (run_dir / 'summary.json').write_text(json.dumps(summary, indent=2, default=str))
    print(f'demo: partial results ({why}) in {run_dir / "summary.json"}', flush=True)


# ---------------------------------------------------------------------------------------------------
class FrameScores:
    """Per-frame mIoU of the live run and of HR inference on the evaluated frames (keys: capture stamps
    in ns), against the labels where the bag has them, else against the HR predictions."""

    def __init__(self, m, frames: list[int], info: dict, device: str):
        dataset = info.get('dataset') if info.get('dataset') in ('camvid', 'cityscapes') else 'camvid'
        self.seg = Segmenter(dataset=dataset, device=device)
        self.ncls = len(self.seg.info.class_names)
        self.have_gt = bool(m.gt) and info.get('labels') not in (None, 'none', 'unknown')
        if self.have_gt:  # bags keep the data set's own label ids; map them to class ids (255 = ignore)
            lut = label_lut(info['labels'])
            m.gt = {k: lut[v] for k, v in m.gt.items()}
        self.frames = frames
        self.ref, self.hr_acc, self.live_acc, self.t_of = {}, {}, {}, {}
        for k in frames:
            hr_pred = self.seg.predict(m.images[k])
            self.ref[k] = m.gt.get(k) if self.have_gt else hr_pred
            if self.ref[k] is None:
                continue
            self.hr_acc[k] = frame_miou(hr_pred, self.ref[k], self.ncls)
            self.live_acc[k] = frame_miou(m.pred[k], self.ref[k], self.ncls)
            self.t_of[k] = k * 1e-9
        self.keys = [k for k in frames if k in self.hr_acc]   # the frames with a reference

    def per_second(self, acc: dict, t0: float, end: float) -> np.ndarray:
        """Mean of `acc` per second of the run (over the evaluated frames)."""
        return ra.per_second([self.t_of[k] for k in self.keys], [acc[k] for k in self.keys], t0, end)

    def relative(self, sel: list[int], acc: dict) -> float | None:
        """Mean frame mIoU of `acc` over `sel` / mean HR frame mIoU over the same frames."""
        return (float(np.nanmean([acc[k] for k in sel]) / np.nanmean([self.hr_acc[k] for k in sel]))
                if sel else None)


def evaluated_frames(m, processed: list[int], most: int = 400) -> list[int]:
    """The processed frames whose camera image was kept, thinned evenly to at most `most`."""
    frames = [k for k in processed if k in m.images]
    if len(frames) > most:
        frames = frames[:: int(math.ceil(len(frames) / most))]
    return frames


def sent_kbps_per_second(sent, t0: float, secs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """kbit sent in each second of the run (by send time): all frames, and those sent with a tail config."""
    sent_sec, sent_tail_sec = np.zeros_like(secs), np.zeros_like(secs)
    for f in sent:
        i = int(f.send_time - t0)
        if 0 <= i < len(secs):
            sent_sec[i] += f.nbytes * 8 / 1000
            if f.tail_mode:
                sent_tail_sec[i] += f.nbytes * 8 / 1000
    return sent_sec, sent_tail_sec


def draw_timeline(m, run_dir: Path, sc: FrameScores, curves: dict, sent, schedule, t0: float, end: float,
                  info: dict) -> list[tuple[float, float]]:
    """timeline.png (the paper's Fig. 12); returns the spans the tail config was in force."""
    secs = np.arange(int(math.ceil(end)), dtype=float)
    sent_sec, sent_tail_sec = sent_kbps_per_second(sent, t0, secs)
    budget = np.array([next(k for t, k in reversed(schedule) if t <= s) for s in secs])
    spans = ra.tail_spans(m.knobs, t0, end)
    level_changes = [e.time - t0 for e in m.knobs if e.time >= t0 and e.reason.startswith('bandwidth')]
    tails = [e.stamp - t0 for e in m.tails if e.is_tail]
    ra.plot_timeline(run_dir / 'timeline.png', secs, curves, sent_sec, budget, spans, tails,
                     f'Runespoor CAC on {info.get("name", "replay")}: accuracy vs '
                     f'{"labels" if sc.have_gt else "HR predictions"}, relative to HR inference',
                     level_changes=level_changes, sent_tail_kbps=sent_tail_sec)
    return spans


def relative_by_phase(sc: FrameScores, methods: dict, schedule, t0: float, end: float, by_stamp
                      ) -> tuple[list[dict], dict]:
    """Frame-level comparison: relative accuracy per schedule phase, and on the frames the edge sent with a
    tail config."""
    per_phase = []
    for ph in ra.phases(schedule, end):
        sel = [k for k in sc.keys if ph.start <= sc.t_of[k] - t0 < ph.end]
        per_phase.append({'start_s': ph.start, 'end_s': ph.end, 'budget_kbps': ph.kbps, 'frames': len(sel),
                          **{name: sc.relative(sel, acc) for name, acc in methods.items()}})
    tail_sel = [k for k in sc.keys if getattr(by_stamp.get(k * 1e-9), 'tail_mode', False)]
    tail_mode_frames = {'frames': len(tail_sel), **{name: sc.relative(tail_sel, acc) for name, acc in methods.items()}}
    return per_phase, tail_mode_frames


def analyse(m, run_dir: Path, schedule, duration: float, info: dict, args) -> dict:
    if not m.captured:
        raise SystemExit('demo: no camera frame was observed; nothing to analyse')
    # first capture stamp of the run: the edge's own frames count too (the monitor may join late)
    t0 = min(m.captured + [f.stamp for f in m.sent])
    end = max(duration, max(m.captured) - t0 + 1e-3)
    sent = sorted(m.sent, key=lambda f: f.send_time)
    processed = sorted(m.pred)
    by_stamp = ra.StampIndex(sent)   # capture stamp -> what the edge sent

    # accuracy of the live ASR+CAC run, of HR inference, and the offline baselines on the same frames
    sc = FrameScores(m, evaluated_frames(m, processed), info, args.device)
    baselines = {}
    if not args.no_baselines:
        baselines = offline_baselines(m, sc.frames, sc.ref, schedule, t0, sc.seg, sc.ncls, args, by_stamp)
    hr_sec = sc.per_second(sc.hr_acc, t0, end)
    curves = {'ASR+CAC': sc.per_second(sc.live_acc, t0, end) / hr_sec}
    for name, acc in baselines.items():
        curves[name] = sc.per_second(acc, t0, end) / hr_sec
    spans = draw_timeline(m, run_dir, sc, curves, sent, schedule, t0, end, info)
    per_phase, tail_mode_frames = relative_by_phase(sc, {'ASR+CAC': sc.live_acc, **baselines}, schedule, t0,
                                                    end, by_stamp)
    write_overlay_video(m, run_dir / 'overlay.mp4', info['fps'])

    reaction = ra.reaction_times(m.tails, sent)
    latency = [m.pred_times[k] - k * 1e-9 for k in processed]
    proc_times = sorted(m.pred_times.values())
    cloud_fps = (len(proc_times) - 1) / (proc_times[-1] - proc_times[0]) if len(proc_times) > 1 else 0.0
    mean = lambda d: float(np.nanmean(list(d.values()))) if d else None  # noqa: E731
    return {
        'source': info, 'schedule_kbps': schedule, 'duration_s': duration,
        'frames': {'captured': len(m.captured), 'sent': len(sent), 'processed': len(processed),
                   'evaluated': len(sc.keys)},
        'kbps_per_phase': ra.kbps_per_phase(sent, schedule, t0, end),
        'tail_frames_flagged': sum(1 for e in m.tails if e.is_tail), 'tail_reports': len(m.tails),
        'knob_switches': len(m.knobs),
        'knob_changes': [{'t_s': round(e.time - t0, 3), 'config_id': e.config_id, 'tail_mode': e.tail_mode,
                          'reason': e.reason} for e in m.knobs],
        'cac_reaction_ms': summarize(reaction, scale=1000.0),     # s -> ms
        'end_to_end_latency_ms': summarize(latency, scale=1000.0),
        'cloud_fps': round(cloud_fps, 2),
        'accuracy_reference': 'labels' if sc.have_gt else 'HR predictions',
        'frame_miou': {'ASR+CAC': mean(sc.live_acc), 'HR': mean(sc.hr_acc),
                       **{k: mean({f: v[f] for f in sc.keys}) for k, v in baselines.items()}},
        'relative_accuracy_mean': {k: float(np.nanmean(v)) for k, v in curves.items()},
        'relative_accuracy_per_phase': per_phase,
        'relative_accuracy_tail_mode_frames': tail_mode_frames,
        'tail_mode_spans_s': [[round(a, 3), round(b, 3)] for a, b in spans],
        'sent_frames_tail_mode': sum(1 for f in sent if f.tail_mode),
    }


def baseline_config(profile, sent_frame, kbps_at_capture: float):
    """The config a controller without the content-aware switch would have used for a frame: the standard
    config of the bandwidth level the live controller had chosen when the edge sent it (the knobs'
    bandwidth_kbps), so the baselines follow the bandwidth with the same delay as the live run; the
    schedule's level at the capture time when the frame was not seen or its level is not in the profile."""
    level = None
    if sent_frame is not None and sent_frame.level_kbps > 0:
        level = next((lv for lv in profile.levels if math.isclose(lv.bandwidth_kbps, sent_frame.level_kbps,
                                                                  rel_tol=1e-6)), None)
    return (level or profile.level_for(kbps_at_capture)).standard


def offline_baselines(m, frames, ref, schedule, t0, seg, ncls, args, sent_by_stamp) -> dict[str, dict]:
    """ASR only and bilinear only over the same frames and schedule: each frame encoded offline with the
    standard config of the bandwidth level in force for it in the live run (no tail switching; see
    baseline_config), restored with ASR or bilinear, and segmented by the same model: the cloud chain
    (runespoor_cloud/chain.py) on the decoded frame."""
    profile = load_profile(paths.config_dir() / 'profiles' / f'{seg.info.name}.yaml')
    out = {'ASR only': {}, 'bilinear only': {}}
    chains = {}
    for k in frames:
        if ref.get(k) is None:
            continue
        t = k * 1e-9 - t0
        kbps = next(kb for ts, kb in reversed(schedule) if ts <= max(t, 0))
        cfg = baseline_config(profile, sent_by_stamp.get(k * 1e-9), kbps)
        img = m.images[k]
        lr, _ = edge_roundtrip(img, cfg.scale, cfg.jpeg_quality)
        for name, method in (('ASR only', 'asr'), ('bilinear only', 'bilinear')):
            key = (method, cfg.scale)
            if key not in chains:
                try:
                    restorer = Restorer({cfg.scale: method}, weights_dir=args.weights_dir or paths.weights_dir(),
                                        device=args.device)
                except Exception as exc:
                    print(f'demo: {method} x{cfg.scale} unavailable ({exc}); using bilinear for it')
                    restorer = Restorer({cfg.scale: 'bilinear'}, device=args.device)
                chains[key] = CloudChain(restorer, seg, tail=None)
            res = chains[key].process(lr, cfg.scale, (img.shape[1], img.shape[0]))
            out[name][k] = frame_miou(res.labels, ref[k], ncls)
    return out


def write_overlay_video(m, path: Path, fps: float) -> None:
    if not m.overlays:
        return
    h, w = m.overlays[0][1].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), max(1.0, float(fps)), (w, h))
    for _, rgb in sorted(m.overlays, key=lambda x: x[0]):
        if rgb.shape[:2] == (h, w):
            vw.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    vw.release()


def _fmt(v, unit='', nd=0):
    return 'n/a' if v is None else f'{v:.{nd}f}{unit}'


def write_summary_md(run_dir: Path, s: dict) -> None:
    r, l = s['cac_reaction_ms'], s['end_to_end_latency_ms']
    rows = '\n'.join(f"| {p['start_s']:.1f}–{p['end_s']:.1f} s | {p['budget_kbps']:.0f} | {p['sent_kbps']:.0f} | "
                     f"{p['frames']} |" for p in s['kbps_per_phase'])
    acc = '\n'.join(f'| {k} | {_fmt(v and 100 * v, " %", 1)} | '
                    f'{_fmt(100 * s["relative_accuracy_mean"].get(k, float("nan")), " %", 1) if k in s["relative_accuracy_mean"] else "–"} |'
                    for k, v in s['frame_miou'].items())
    names = list(s['frame_miou'].keys() - {'HR'})
    names = [n for n in ('ASR+CAC', 'ASR only', 'bilinear only') if n in names]
    pct = lambda v: _fmt(None if v is None else 100 * v, ' %', 1)  # noqa: E731
    phase_rows = '\n'.join(f"| {p['start_s']:.1f}–{p['end_s']:.1f} s | {p['budget_kbps']:.0f} | {p['frames']} | "
                           + ' | '.join(pct(p.get(n)) for n in names) + ' |'
                           for p in s.get('relative_accuracy_per_phase', []))
    tm = s.get('relative_accuracy_tail_mode_frames', {})
    tail_row = f"| frames sent with the tail config | – | {tm.get('frames', 0)} | " + ' | '.join(
        pct(tm.get(n)) for n in names) + ' |'
    text = f"""# Runespoor demo run

Source: {s['source'].get('name', '?')} ({s['source']['width']}x{s['source']['height']} @ {s['source']['fps']:.1f} fps),
replayed for {s['duration_s']:.0f} s; robot and cloud as separate processes over DDS (loopback).
Wall time {s.get('wall_time_s', 0):.0f} s.

- frames captured / sent / processed by the cloud: **{s['frames']['captured']} / {s['frames']['sent']} / {s['frames']['processed']}**
- tail frames flagged: **{s['tail_frames_flagged']}** of {s['tail_reports']} reports; knob switches: **{s['knob_switches']}**;
  frames sent in tail mode: {s['sent_frames_tail_mode']}
- **CAC reaction time** (capture of the tail frame -> first frame sent with the tail config):
  median **{_fmt(r['median'], ' ms')}**, p95 {_fmt(r['p95'], ' ms')} over {r['n']} reactions (paper: ~500 ms; AWStream ~10 s)
- end-to-end latency (capture -> labels): median {_fmt(l['median'], ' ms')}, p95 {_fmt(l['p95'], ' ms')}
- cloud throughput: {s['cloud_fps']:.2f} frames/s

| phase | budget [kbit/s] | sent [kbit/s] | frames sent |
|---|---|---|---|
{rows}

Accuracy (per-frame mIoU against {s['accuracy_reference']}, and per-second accuracy relative to HR inference):

| method | mean frame mIoU | mean relative accuracy |
|---|---|---|
{acc}

Per phase and on the frames the edge sent with a tail config (mean frame mIoU / mean HR frame mIoU on the
same frames; the baselines use the standard config of the bandwidth level the live controller was at):

| frames | budget [kbit/s] | frames | {' | '.join(names)} |
|---|---|---|{'---|' * len(names)}
{phase_rows}
{tail_row}

![timeline](timeline.png)

Files: `summary.json`, `timeline.png`, `overlay.mp4`, `recording/` (MCAP: open in Foxglove or `ros2 bag info`).
"""
    (run_dir / 'summary.md').write_text(text)


def print_result(run_dir: Path, s: dict) -> None:
    r = s['cac_reaction_ms']
    rel = s['relative_accuracy_mean']
    tm = s.get('relative_accuracy_tail_mode_frames', {})
    print('\n'.join([
        f'demo: done -> {run_dir}',
        f"  frames captured/sent/processed: {s['frames']['captured']}/{s['frames']['sent']}/{s['frames']['processed']}"
        f"   cloud {s['cloud_fps']:.2f} fps   tail frames flagged {s['tail_frames_flagged']}   switches {s['knob_switches']}",
        f"  CAC reaction: median {_fmt(r['median'], ' ms')}, p95 {_fmt(r['p95'], ' ms')} (paper ~500 ms)",
        '  relative accuracy: ' + ', '.join(f'{k} {100 * v:.1f} %' for k, v in rel.items()),
        f"  on the {tm.get('frames', 0)} frames sent with the tail config: "
        + ', '.join(f'{k} {100 * v:.1f} %' for k, v in tm.items() if k != 'frames' and v is not None),
    ]))
