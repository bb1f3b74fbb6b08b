"""The DDS parts of `runespoor bench`: message latency between two processes, and the CAC reaction time
through the real nodes. Imported only when those sections run (rclpy stays out of the logic modules).

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

import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from runespoor_common import graph, rosenv, stats

PONG_TOPICS = {'EncodedFrame': ('bench/ping_encoded', 'sensor'), 'Image': ('bench/ping_image', 'image')}
REPLY_TOPIC = 'bench/pong'


def _qos(name: str):
    from runespoor_common.qos import IMAGE_QOS, RELIABLE_QOS, SENSOR_QOS
    return {'sensor': SENSOR_QOS, 'image': IMAGE_QOS, 'reliable': RELIABLE_QOS}[name]


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
    import signal
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
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
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
        import rclpy
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
    """(message type, payload description, builder) for the measured messages."""
    import cv2

    from runespoor_edge.codec import edge_encode
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


def transport(args, log=print) -> dict:
    """Latency of EncodedFrame and full-resolution Image between this process and a pong process."""
    domain = rosenv.apply_to_this_process(_domain(args))
    env = rosenv.safe_env(domain_id=domain)
    reps = args.transport_reps or (12 if args.quick else 60)
    proc, plog = _spawn([sys.executable, '-m', 'runespoor_tools.bench_ros', 'pong'], env)
    sp = None
    try:
        from runespoor.msg import EncodedFrame
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header
        sp = _Spinner('bench_transport')
        node = sp.node
        replies: dict[int, tuple[int, int]] = {}   # seq -> (pong arrival ns, reply arrival ns)
        lock = threading.Lock()

        def on_reply(msg):
            now = time.time_ns()
            seq, arrival = (int(v) for v in msg.frame_id.split())
            with lock:
                replies[seq] = (arrival, now)
        node.create_subscription(Header, REPLY_TOPIC, on_reply, _qos('reliable'))
        pubs = {t: node.create_publisher(EncodedFrame if t == 'EncodedFrame' else Image, topic, _qos(q))
                for t, (topic, q) in PONG_TOPICS.items()}
        if not _wait(lambda: all(p.get_subscription_count() > 0 for p in pubs.values())
                     and node.count_publishers(REPLY_TOPIC) > 0, 20.0):
            return {'error': 'the pong process was not discovered within 20 s', 'pong_log': _stop(proc, plog)}
        seq = 0
        rows = []
        for mtype, desc, frame, data, scale in _payloads(args.quick):
            n = reps if len(data) < 1_000_000 else max(5, reps // 3)
            h, w = frame.shape[:2]
            one_way, rtt, lost = [], [], 0
            for i in range(n + 2):  # 2 warm-up messages
                seq += 1
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
                t_send = time.time_ns()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_send, 1_000_000_000)
                pubs[mtype].publish(msg)
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
            rows.append({'message': mtype, 'payload': desc, 'bytes': len(data),
                         'qos': 'sensor (best effort)' if mtype == 'EncodedFrame' else 'image (reliable, depth 2)',
                         'one_way': _summ(one_way), 'round_trip': _summ(rtt), 'lost': lost, 'sent': n})
            log(f'transport {mtype} {desc}: one-way {rows[-1]["one_way"]["median_ms"]} ms, lost {lost}/{n}')
        from rclpy.utilities import get_rmw_implementation_identifier
        return {'rows': rows, 'rmw': get_rmw_implementation_identifier(), 'domain_id': domain,
                'discovery_range': os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')}
    except Exception as exc:  # a broken ROS install must not lose the other sections
        return {'error': f'{type(exc).__name__}: {exc}'}
    finally:
        if sp is not None:
            sp.close()
        _stop(proc, plog)


def pong_main() -> int:
    """The pong process: answer each ping with a Header 'seq arrival_ns' on bench/pong."""
    rosenv.apply_to_this_process(int(os.environ['ROS_DOMAIN_ID']) if os.environ.get('ROS_DOMAIN_ID') else None)
    from rclpy.node import Node

    from runespoor_common.node_main import run_node

    class Pong(Node):
        def __init__(self):
            super().__init__('bench_pong')
            from runespoor.msg import EncodedFrame
            from sensor_msgs.msg import Image
            from std_msgs.msg import Header
            self._Header = Header
            self.reply = self.create_publisher(Header, REPLY_TOPIC, _qos('reliable'))
            for mtype, (topic, q) in PONG_TOPICS.items():
                self.create_subscription(EncodedFrame if mtype == 'EncodedFrame' else Image, topic, self.on_ping,
                                         _qos(q))

        def on_ping(self, msg):
            arrival = time.time_ns()
            out = self._Header()
            out.frame_id = f'{msg.header.frame_id} {arrival}'
            self.reply.publish(out)

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


def control(args, log=print) -> dict:
    """CAC reaction time through the real edge_streamer and cac_controller nodes."""
    missing = [m for m in ('runespoor_edge.streamer_node', 'runespoor_cloud.controller_node')
               if importlib.util.find_spec(m) is None]
    if missing:
        return {'error': f'node modules not available yet: {", ".join(missing)}'}
    domain = rosenv.apply_to_this_process(_domain(args))
    env = rosenv.safe_env(domain_id=domain)
    reps = args.control_reps or (5 if args.quick else 20)
    camera_hz = 30.0
    return_after = 2
    tmpdir = tempfile.TemporaryDirectory(prefix='runespoor-bench-')
    profile = Path(tmpdir.name) / 'profile.yaml'
    profile.write_text(PROFILE_YAML)
    procs = []
    sp = None
    try:
        procs.append(_spawn([sys.executable, '-m', 'runespoor_edge.streamer_node', '--ros-args',
                             '-p', 'bandwidth_kbps:=0.0', '-p', 'scale:=4', '-p', 'jpeg_quality:=90'], env))
        procs.append(_spawn([sys.executable, '-m', 'runespoor_cloud.controller_node', '--ros-args',
                             '-p', f'profile:={profile}', '-p', f'return_after:={return_after}',
                             '-p', 'bandwidth_source:=parameter', '-p', 'bandwidth_kbps:=1000000.0'], env))
        from runespoor.msg import EncodedFrame, KnobConfig, TailReport
        from sensor_msgs.msg import Image

        from runespoor_common.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
        sp = _Spinner('bench_control')
        node = sp.node
        lock = threading.Lock()
        knobs_log: list[tuple[float, bool, str]] = []      # (perf time, tail_mode, config_id)
        frames_log: list[tuple[float, bool, str]] = []

        def on_knobs(msg):
            with lock:
                knobs_log.append((time.perf_counter(), bool(msg.tail_mode), msg.config_id))

        def on_frame(msg):
            with lock:
                frames_log.append((time.perf_counter(), bool(msg.knobs.tail_mode), msg.knobs.config_id))
        node.create_subscription(KnobConfig, graph.KNOBS, on_knobs, LATCHED_QOS)
        node.create_subscription(EncodedFrame, graph.UPLINK, on_frame, SENSOR_QOS)
        cam = node.create_publisher(Image, graph.CAMERA_IMAGE, SENSOR_QOS)
        reports = node.create_publisher(TailReport, graph.TAIL_REPORT, RELIABLE_QOS)
        rng = np.random.default_rng(2)
        small = rng.integers(0, 256, (360 // 16, 480 // 16, 3), dtype=np.uint8)
        import cv2
        frame = cv2.resize(small, (480, 360), interpolation=cv2.INTER_CUBIC).tobytes()

        def publish_frame():
            msg = Image()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id = 'camera'
            msg.height, msg.width, msg.encoding, msg.step = 360, 480, 'rgb8', 480 * 3
            msg.data = frame
            cam.publish(msg)
        node.create_timer(1.0 / camera_hz, publish_frame)
        seq = [0]

        def report(is_tail: bool):
            seq[0] += 1
            msg = TailReport()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id = 'camera'
            msg.seq = seq[0]
            msg.is_tail = is_tail
            msg.small_region_ratio = 0.001 if is_tail else 0.05
            msg.tail_threshold, msg.small_region_area, msg.downsample = 0.01, 0.01, 4
            reports.publish(msg)
        ready = _wait(lambda: reports.get_subscription_count() > 0 and cam.get_subscription_count() > 0
                      and any(not t for _, t, _ in frames_log), 30.0, 0.01)
        if not ready:
            return {'error': 'edge_streamer / cac_controller not up within 30 s (no standard-knob uplink frame)',
                    'logs': [_stop(p, lg) for p, lg in procs]}
        to_knobs, to_frame, total, failures = [], [], [], 0
        for i in range(reps):
            time.sleep(float(rng.uniform(0.05, 0.05 + 1.0 / camera_hz)))   # random camera phase
            with lock:
                nk, nf = len(knobs_log), len(frames_log)
            t0 = time.perf_counter()
            report(True)
            ok = _wait(lambda: any(t for _, t, _ in frames_log[nf:]), 5.0, 0.0005)
            with lock:
                k = next((ts for ts, t, _ in knobs_log[nk:] if t), None)
                f = next((ts for ts, t, _ in frames_log[nf:] if t), None)
            if not ok or f is None:
                failures += 1
            else:
                total.append((f - t0) * 1000.0)
                if k is not None:
                    to_knobs.append((k - t0) * 1000.0)
                    to_frame.append((f - k) * 1000.0)
            # back to standard: return_after non-tail reports, then wait for a standard frame
            with lock:
                nf = len(frames_log)
            for _ in range(return_after):
                report(False)
                time.sleep(0.01)
            _wait(lambda: any(not t for _, t, _ in frames_log[nf:]), 5.0, 0.002)
        log(f'control: reaction median {_summ(total)["median_ms"]} ms over {len(total)} switches')
        return {'nodes': 'edge_streamer + cac_controller (separate processes)', 'camera_hz': camera_hz,
                'return_after': return_after, 'domain_id': domain,
                'reaction': _summ(total), 'controller': _summ(to_knobs), 'edge_apply': _summ(to_frame),
                'failures': failures, 'reps': reps,
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
