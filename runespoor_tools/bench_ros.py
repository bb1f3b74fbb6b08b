"""The DDS parts of `runespoor bench`: message latency between two processes, and the CAC reaction time
through the real nodes. `runespoor bench` imports it only when those sections run, so that the rest of
the bench needs no ROS install.

Network safety: every process here runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST in a ROS domain of
its own (runespoor_common.rosenv): this process via apply_to_this_process, children via safe_env.

Transport: a pong process (``python -m runespoor_tools.bench_ros pong``) answers every EncodedFrame /
Image it receives with a small Header carrying its arrival time (CLOCK_REALTIME; both processes share the
machine's clock), so one-way latency = arrival - the sender's stamp taken just before publish
(serialization, DDS and deserialization included); the round trip adds the small reply.

Control: edge_streamer (runespoor_edge.streamer_node) and cac_controller (runespoor_cloud.controller_node)
run as their own processes with a one-level profile; this process plays camera and tail detector: it
publishes camera frames, then a tail TailReport, and times (a) the controller's tail KnobConfig and (b) the
first uplink EncodedFrame sent with the tail knobs; non-tail reports bring the controller back to standard
between repetitions.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.utilities import get_rmw_implementation_identifier
from runespoor.msg import EncodedFrame, KnobConfig, TailReport
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from runespoor_common import graph, rosenv, stats
from runespoor_common.node_main import run_node
from runespoor_common.qos import IMAGE_QOS, LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from runespoor_edge.codec import edge_encode

PONG_TOPICS = {'EncodedFrame': ('bench/ping_encoded', 'sensor'), 'Image': ('bench/ping_image', 'image')}
REPLY_TOPIC = 'bench/pong'
PING_TYPES = {'EncodedFrame': EncodedFrame, 'Image': Image}
QOS = {'sensor': SENSOR_QOS, 'image': IMAGE_QOS, 'reliable': RELIABLE_QOS}


def _domain(args) -> int:
    """The bench's own ROS domain (--domain-id, else a random one: never the caller's running graph)."""
    chosen = getattr(args, 'domain_id', None)
    return int(chosen) if chosen is not None else rosenv.pick_domain_id()


def _summ(samples):
    """The bench's timing summary (same keys as bench.summarize: median_ms, p95_ms, ...)."""
    return stats.summarize(samples, unit='ms', digits=4)


def _spawn(cmd: list[str], env: dict) -> tuple[subprocess.Popen, object]:
    log = tempfile.TemporaryFile(mode='w+')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, log


def _stop(proc: subprocess.Popen, log=None) -> str:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(8)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    text = ''
    if log is not None and not log.closed:
        log.seek(0)
        text = log.read()[-2000:]
        log.close()
    return text


class _Spinner:
    """An rclpy context + node spun by a background thread (this process's side of a measurement)."""

    def __init__(self, name: str):
        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node(name, context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self._stop = False
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while not self._stop and self.ctx.ok():
            self.ex.spin_once(timeout_sec=0.01)

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def _wait(pred, timeout: float, step: float = 0.002) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


# --------------------------------------------------------------------------- transport
def _payloads(quick: bool):
    """(message type, payload description, frame, payload bytes, scale) for the measured messages."""
    rng = np.random.default_rng(1)
    out = []
    for (w, h), scale in (((480, 360), 4), ((2048, 1024), 1)):
        small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        frame = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        out.append(('EncodedFrame', f'{w}x{h} JPEG x{scale} q75', frame, edge_encode(frame, scale, 75), scale))
    for (w, h) in ((480, 360), (2048, 1024)):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out.append(('Image', f'{w}x{h} rgb8', frame, frame.tobytes(), 1))
    return out


def _ping(mtype: str, frame: np.ndarray, data: bytes, scale: int, seq: int):
    """One ping: an EncodedFrame as the edge sends it, or a raw rgb8 Image; the header's frame_id is `seq`."""
    h, w = frame.shape[:2]
    if mtype == 'EncodedFrame':
        msg = EncodedFrame()
        msg.source_width, msg.source_height = w, h
        msg.knobs.scale, msg.knobs.jpeg_quality = scale, 75
        msg.image.format = 'jpeg'
        msg.image.data = data
    else:
        msg = Image()
        msg.height, msg.width, msg.encoding, msg.step = h, w, 'rgb8', w * 3
        msg.data = data
    msg.header.frame_id = str(seq)
    return msg


def _ping_series(pub, replies: dict, seqs, mtype: str, frame: np.ndarray, data: bytes, scale: int, n: int
                 ) -> tuple[list[float], list[float], int]:
    """`n` timed pings (after 2 warm-up ones), each awaited: one-way and round-trip times [ms], and how
    many got no reply within 3 s."""
    one_way, rtt, lost = [], [], 0
    for i in range(n + 2):  # 2 warm-up messages
        seq = next(seqs)
        msg = _ping(mtype, frame, data, scale, seq)
        t_send = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_send, 1_000_000_000)
        pub.publish(msg)
        got = _wait(lambda: seq in replies, 3.0, 0.0005)
        if i < 2:
            continue
        if not got:
            lost += 1
            continue
        arrival, back = replies[seq]
        one_way.append((arrival - t_send) / 1e6)
        rtt.append((back - t_send) / 1e6)
        time.sleep(0.005)
    return one_way, rtt, lost


def transport(args, log=print) -> dict:
    """Latency of EncodedFrame and full-resolution Image between this process and a pong process."""
    domain = rosenv.apply_to_this_process(_domain(args))
    env = rosenv.safe_env(domain_id=domain)
    reps = args.transport_reps or (12 if args.quick else 60)
    proc, plog = _spawn([sys.executable, '-m', 'runespoor_tools.bench_ros', 'pong'], env)
    sp = None
    try:
        sp = _Spinner('bench_transport')
        node = sp.node
        replies: dict[int, tuple[int, int]] = {}   # seq -> (pong arrival ns, reply arrival ns)
        lock = threading.Lock()

        def on_reply(msg):
            now = time.time_ns()
            seq, arrival = (int(v) for v in msg.frame_id.split())
            with lock:
                replies[seq] = (arrival, now)
        node.create_subscription(Header, REPLY_TOPIC, on_reply, QOS['reliable'])
        pubs = {t: node.create_publisher(PING_TYPES[t], topic, QOS[q]) for t, (topic, q) in PONG_TOPICS.items()}
        if not _wait(lambda: all(p.get_subscription_count() > 0 for p in pubs.values())
                     and node.count_publishers(REPLY_TOPIC) > 0, 20.0):
            return {'error': 'the pong process was not discovered within 20 s', 'pong_log': _stop(proc, plog)}
        seqs = itertools.count(1)
        rows = []
        for mtype, desc, frame, data, scale in _payloads(args.quick):
            n = reps if len(data) < 1_000_000 else max(5, reps // 3)
            one_way, rtt, lost = _ping_series(pubs[mtype], replies, seqs, mtype, frame, data, scale, n)
            rows.append({'message': mtype, 'payload': desc, 'bytes': len(data),
                         'qos': 'sensor (best effort)' if mtype == 'EncodedFrame' else 'image (reliable, depth 2)',
                         'one_way': _summ(one_way), 'round_trip': _summ(rtt), 'lost': lost, 'sent': n})
            log(f'transport {mtype} {desc}: one-way {rows[-1]["one_way"]["median_ms"]} ms, lost {lost}/{n}')
        return {'rows': rows, 'rmw': get_rmw_implementation_identifier(), 'domain_id': domain,
                'discovery_range': os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')}
    except Exception as exc:  # a broken ROS install must not lose the other sections
        return {'error': f'{type(exc).__name__}: {exc}'}
    finally:
        if sp is not None:
            sp.close()
        _stop(proc, plog)


class Pong(Node):
    """The pong process's node: answers each ping with a Header 'seq arrival_ns' on bench/pong."""

    def __init__(self):
        super().__init__('bench_pong')
        self.reply = self.create_publisher(Header, REPLY_TOPIC, QOS['reliable'])
        for mtype, (topic, q) in PONG_TOPICS.items():
            self.create_subscription(PING_TYPES[mtype], topic, self.on_ping, QOS[q])

    def on_ping(self, msg):
        arrival = time.time_ns()
        out = Header()
        out.frame_id = f'{msg.header.frame_id} {arrival}'
        self.reply.publish(out)


def pong_main() -> int:
    """The pong process (``python -m runespoor_tools.bench_ros pong``), in the domain its parent chose."""
    rosenv.apply_to_this_process(int(os.environ['ROS_DOMAIN_ID']) if os.environ.get('ROS_DOMAIN_ID') else None)
    return run_node(Pong, [])


# --------------------------------------------------------------------------- control (CAC reaction)
PROFILE_YAML = """\
dataset: camvid
frame_rate: 0.0
tail_detector: {small_region_area: 0.01, tail_threshold: 0.01, downsample: 4}
levels:
  - bandwidth_kbps: 1000000.0
    standard: {scale: 4, jpeg_quality: 90}
    tail: {scale: 2, jpeg_quality: 50}
"""
CAMERA_HZ = 30.0
RETURN_AFTER = 2   # non-tail reports that bring the controller back to standard


def _node_commands(profile: Path) -> list[list[str]]:
    """edge_streamer (standard knobs x4 q90, no bandwidth cap) and cac_controller (the one-level profile)."""
    return [[sys.executable, '-m', 'runespoor_edge.streamer_node', '--ros-args',
             '-p', 'bandwidth_kbps:=0.0', '-p', 'scale:=4', '-p', 'jpeg_quality:=90'],
            [sys.executable, '-m', 'runespoor_cloud.controller_node', '--ros-args',
             '-p', f'profile:={profile}', '-p', f'return_after:={RETURN_AFTER}',
             '-p', 'bandwidth_source:=parameter', '-p', 'bandwidth_kbps:=1000000.0']]


class _ControlProbe:
    """This process's side of the control measurement: the camera (a frame every 1/CAMERA_HZ s), the tail
    detector (TailReports on demand), and what comes back: the controller's knobs and the edge's uplink
    frames, each logged as (perf time, tail_mode, config_id)."""

    def __init__(self, node):
        self.node = node
        self.lock = threading.Lock()
        self.knobs_log: list[tuple[float, bool, str]] = []
        self.frames_log: list[tuple[float, bool, str]] = []
        node.create_subscription(KnobConfig, graph.KNOBS, self._on_knobs, LATCHED_QOS)
        node.create_subscription(EncodedFrame, graph.UPLINK, self._on_frame, SENSOR_QOS)
        self.cam = node.create_publisher(Image, graph.CAMERA_IMAGE, SENSOR_QOS)
        self.reports = node.create_publisher(TailReport, graph.TAIL_REPORT, RELIABLE_QOS)
        self.rng = np.random.default_rng(2)
        small = self.rng.integers(0, 256, (360 // 16, 480 // 16, 3), dtype=np.uint8)
        self.frame = cv2.resize(small, (480, 360), interpolation=cv2.INTER_CUBIC).tobytes()
        node.create_timer(1.0 / CAMERA_HZ, self._publish_frame)
        self.seq = 0

    def _on_knobs(self, msg):
        with self.lock:
            self.knobs_log.append((time.perf_counter(), bool(msg.tail_mode), msg.config_id))

    def _on_frame(self, msg):
        with self.lock:
            self.frames_log.append((time.perf_counter(), bool(msg.knobs.tail_mode), msg.knobs.config_id))

    def _publish_frame(self):
        msg = Image()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = 'camera'
        msg.height, msg.width, msg.encoding, msg.step = 360, 480, 'rgb8', 480 * 3
        msg.data = self.frame
        self.cam.publish(msg)

    def report(self, is_tail: bool):
        self.seq += 1
        msg = TailReport()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = 'camera'
        msg.seq = self.seq
        msg.is_tail = is_tail
        msg.small_region_ratio = 0.001 if is_tail else 0.05
        msg.tail_threshold, msg.small_region_area, msg.downsample = 0.01, 0.01, 4
        self.reports.publish(msg)

    def wait_ready(self) -> bool:
        """Both nodes subscribed and a standard-knob uplink frame seen (within 30 s)."""
        return _wait(lambda: self.reports.get_subscription_count() > 0 and self.cam.get_subscription_count() > 0
                     and any(not t for _, t, _ in self.frames_log), 30.0, 0.01)

    def switch_to_tail(self) -> tuple[float, float | None, float | None]:
        """Publish a tail report; (its time, the first tail knobs' time, the first tail uplink frame's time
        or None when none came within 5 s)."""
        with self.lock:
            nk, nf = len(self.knobs_log), len(self.frames_log)
        t0 = time.perf_counter()
        self.report(True)
        ok = _wait(lambda: any(t for _, t, _ in self.frames_log[nf:]), 5.0, 0.0005)
        with self.lock:
            k = next((ts for ts, t, _ in self.knobs_log[nk:] if t), None)
            f = next((ts for ts, t, _ in self.frames_log[nf:] if t), None)
        return t0, k, f if ok else None

    def back_to_standard(self):
        """RETURN_AFTER non-tail reports, then wait (up to 5 s) for a standard uplink frame."""
        with self.lock:
            nf = len(self.frames_log)
        for _ in range(RETURN_AFTER):
            self.report(False)
            time.sleep(0.01)
        _wait(lambda: any(not t for _, t, _ in self.frames_log[nf:]), 5.0, 0.002)


def _measure_reactions(probe: _ControlProbe, reps: int, log) -> dict:
    """`reps` switches to tail and back, each at a random camera phase: the reaction and its two spans."""
    to_knobs, to_frame, total, failures = [], [], [], 0
    for _ in range(reps):
        time.sleep(float(probe.rng.uniform(0.05, 0.05 + 1.0 / CAMERA_HZ)))   # random camera phase
        t0, k, f = probe.switch_to_tail()
        if f is None:
            failures += 1
        else:
            total.append((f - t0) * 1000.0)
            if k is not None:
                to_knobs.append((k - t0) * 1000.0)
                to_frame.append((f - k) * 1000.0)
        probe.back_to_standard()
    log(f'control: reaction median {_summ(total)["median_ms"]} ms over {len(total)} switches')
    return {'reaction': _summ(total), 'controller': _summ(to_knobs), 'edge_apply': _summ(to_frame),
            'failures': failures}


def control(args, log=print) -> dict:
    """CAC reaction time through the real edge_streamer and cac_controller nodes."""
    domain = rosenv.apply_to_this_process(_domain(args))
    env = rosenv.safe_env(domain_id=domain)
    reps = args.control_reps or (5 if args.quick else 20)
    tmpdir = tempfile.TemporaryDirectory(prefix='runespoor-bench-')
    profile = Path(tmpdir.name) / 'profile.yaml'
    profile.write_text(PROFILE_YAML)
    procs = []
    sp = None
    try:
        for cmd in _node_commands(profile):
            procs.append(_spawn(cmd, env))
        sp = _Spinner('bench_control')
        probe = _ControlProbe(sp.node)
        if not probe.wait_ready():
            return {'error': 'edge_streamer / cac_controller not up within 30 s (no standard-knob uplink frame)',
                    'logs': [_stop(p, lg) for p, lg in procs]}
        measured = _measure_reactions(probe, reps, log)
        return {'nodes': 'edge_streamer + cac_controller (separate processes)', 'camera_hz': CAMERA_HZ,
                'return_after': RETURN_AFTER, 'domain_id': domain, **measured, 'reps': reps,
                'note': 'tail report published -> first uplink EncodedFrame with tail_mode knobs received; '
                        'includes waiting for the next camera frame (up to 1/camera_hz)'}
    except Exception as exc:
        return {'error': f'{type(exc).__name__}: {exc}'}
    finally:
        if sp is not None:
            sp.close()
        for p, lg in procs:
            _stop(p, lg)
        tmpdir.cleanup()


if __name__ == '__main__':
    if sys.argv[1:2] == ['pong']:
        sys.exit(pong_main())
    sys.exit('usage: python -m runespoor_tools.bench_ros pong')
