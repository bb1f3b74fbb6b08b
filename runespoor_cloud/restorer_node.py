"""Restorer (ASR) node: runespoor/uplink (EncodedFrame) -> runespoor/restored (sensor_msgs/Image).

Decodes the JPEG and restores the source resolution with the method configured for the frame's scale
(bilinear / sr / asr / cloudseg; one model per scale, loaded once at start, strictly): the decode and
restore stages of the cloud chain (runespoor_cloud/chain.py). The restored
image keeps the camera frame's header. Each frame's metadata (seq, knobs, session) goes on
runespoor/frame_info (an EncodedFrame without the JPEG) so the tail detector can judge it.
Bad frames are rejected with a throttled, specific log line and a diagnostics counter.
"""
from __future__ import annotations

import math
import sys
import time

from rclpy.node import Node
from sensor_msgs.msg import Image

from runespoor.msg import EncodedFrame
from runespoor_cloud.chain import CloudChain
from runespoor_cloud.restore import METHODS, Restorer, check_weights
from runespoor_cloud.serving import SERVING_PARAMS, inference_options, warmup_size
from runespoor_common import graph
from runespoor_common.diagnostics import NodeStats, attach
from runespoor_common.imgconv import rgb_to_image
from runespoor_common.node_main import run_node
from runespoor_common.params import Param, declare, one_of, parses
from runespoor_common.qos import IMAGE_QOS, RELIABLE_QOS, UPLINK_IN_QOS
from runespoor_edge.codec import VALID_SCALES, CodecError

MAX_SOURCE_SIDE = 8192
REJECT_LOG_PERIOD_S = 2.0  # one log line per rejection kind per period


def parse_methods(text: str) -> dict[int, str]:
    """"2:asr,4:asr" -> {2: 'asr', 4: 'asr'} (validated)."""
    out = {}
    for item in str(text).split(','):
        if not item.strip():
            continue
        try:
            scale, method = item.split(':')
            scale, method = int(scale), method.strip()
        except ValueError:
            raise ValueError(f'methods entry {item!r}: expected SCALE:METHOD, e.g. "4:asr"')
        if scale not in VALID_SCALES or scale == 1:
            raise ValueError(f'methods entry {item!r}: scale must be one of {list(VALID_SCALES[1:])}')
        if method not in METHODS:
            raise ValueError(f'methods entry {item!r}: method must be one of {list(METHODS)}')
        out[scale] = method
    return out


PARAMS = [
    Param('dataset', 'camvid', 'data set the restoration models were trained for (weights subfolder)',
          one_of('camvid', 'cityscapes'), read_only=True),
    Param('methods', '2:asr,4:asr,6:asr,8:asr',
          'restoration method per scale "SCALE:METHOD,..." (bilinear, sr, asr, cloudseg)', parses(parse_methods),
          read_only=True),
    Param('weights_dir', '', "folder of the project's trained weights (<dir>/<dataset>/<method>_x<scale>.pt); "
          "empty = the installed models/", read_only=True),
] + SERVING_PARAMS


def check_config(values: dict) -> list[str]:
    """Start-up checks without ROS (runespoor launch / demo run them before any node starts): every weight
    file the methods need exists and records the right scale, data set and method (no model is built)."""
    try:
        methods = parse_methods(values['methods'])
    except ValueError as exc:
        return [f'methods: {exc}']
    return check_weights(methods, values.get('weights_dir') or None, values['dataset'])


class RestorerNode(Node):
    def __init__(self, **kwargs):
        super().__init__('restorer', **kwargs)
        p = declare(self, PARAMS)
        methods = parse_methods(p['methods'])
        t0 = time.monotonic()
        # Loads every model now, strictly; a missing/mismatched file raises ModelFileError naming it.
        self.restorer = Restorer(methods, weights_dir=p['weights_dir'] or None, dataset=p['dataset'],
                                 device=p['device'], threads=p['threads'] or None,
                                 options=inference_options(p['optimized']))
        self.chain = CloudChain(self.restorer, tail=None)  # this node runs the decode and restore stages
        size = warmup_size(p['warmup_size'], p['dataset'])
        if size is not None:  # every scale's graph is traced now, not on its first real frame
            self.restorer.warmup(size)
        self.get_logger().info(f'restoration {methods} on {p["device"]} loaded in '
                               f'{time.monotonic() - t0:.1f} s'
                               + (f' (warmed up at {size[0]}x{size[1]})' if size else ''))
        self.stats = NodeStats()
        self.sink = None  # single-process mode: callable(rgb, header, info_msg) instead of DDS
        self.session = None
        self.last_seq = None
        self._last_log: dict[str, float] = {}
        self.edge_restarts = 0
        self.pub = self.create_publisher(Image, graph.RESTORED, IMAGE_QOS)
        self.info_pub = self.create_publisher(EncodedFrame, graph.FRAME_INFO, RELIABLE_QOS)
        self.create_subscription(EncodedFrame, graph.UPLINK, self.on_frame, UPLINK_IN_QOS)
        attach(self, self.stats)

    def _reject(self, kind: str, text: str) -> None:
        # throttled per kind (rclpy's throttle is per call site: one fault would hide every other kind)
        self.stats.error(kind)
        now = time.monotonic()
        if now - self._last_log.get(kind, -math.inf) >= REJECT_LOG_PERIOD_S:
            self._last_log[kind] = now
            self.get_logger().warning(f'rejected frame ({kind}, {self.stats.errors[kind]} so far): {text}')

    def check(self, msg: EncodedFrame) -> tuple[str, str] | None:
        """None when the frame's metadata is usable, else (counter kind, why not)."""
        fmt = msg.image.format.lower()
        if 'jpeg' not in fmt and 'jpg' not in fmt:
            return 'format', f'format {msg.image.format!r} is not JPEG'
        if msg.knobs.scale not in VALID_SCALES:
            return 'scale', f'scale {msg.knobs.scale} is not one of {list(VALID_SCALES)}'
        if msg.knobs.scale != 1 and msg.knobs.scale not in self.restorer.methods:
            return 'no_model', f'no restoration model configured for x{msg.knobs.scale}'
        w, h = msg.source_width, msg.source_height
        if not (0 < w <= MAX_SOURCE_SIDE and 0 < h <= MAX_SOURCE_SIDE):
            return 'source_size', f'source size {w}x{h} is zero or absurd (max {MAX_SOURCE_SIDE} a side)'
        if w // msg.knobs.scale < 1 or h // msg.knobs.scale < 1:
            return 'source_size', f'source size {w}x{h} too small for x{msg.knobs.scale}'
        if len(msg.image.data) == 0:
            return 'empty', 'empty JPEG payload'
        return None

    def on_frame(self, msg: EncodedFrame) -> None:
        t0 = time.perf_counter()
        if self.session is not None and (msg.session_id != self.session or
                                         (self.last_seq is not None and msg.seq < self.last_seq)):
            self.get_logger().info(f'edge restarted (session {self.session} -> {msg.session_id}, '
                                   f'seq {self.last_seq} -> {msg.seq}); carrying on')
            self.edge_restarts += 1
            self.stats.values['edge_restarts'] = str(self.edge_restarts)
        self.session, self.last_seq = msg.session_id, msg.seq
        reason = self.check(msg)
        if reason:
            return self._reject(*reason)
        scale = msg.knobs.scale
        w, h = msg.source_width, msg.source_height
        try:
            # the header size is checked before decoding: a corrupt header must not cost GBs
            lr = self.chain.decode(bytes(msg.image.data), expected_size=(w // scale, h // scale))
        except CodecError as exc:
            kind = 'size' if 'expected' in str(exc) else 'jpeg'
            return self._reject(kind, f'{exc} (source {w}x{h} at x{scale})' if kind == 'size' else str(exc))
        if lr.shape[1] != w // scale or lr.shape[0] != h // scale:
            return self._reject('size', f'JPEG is {lr.shape[1]}x{lr.shape[0]} but source {w}x{h} at x{scale} '
                                        f'gives {w // scale}x{h // scale}')
        try:
            hr = self.chain.restore(lr, scale, (w, h))
        except (ValueError, RuntimeError, KeyError) as exc:
            return self._reject('restore', f'restoration failed: {exc}')
        info = EncodedFrame(header=msg.header, seq=msg.seq, session_id=msg.session_id, source_width=w,
                            source_height=h, knobs=msg.knobs, send_stamp=msg.send_stamp,
                            queue_delay_ms=msg.queue_delay_ms)
        info.image.header = msg.image.header
        info.image.format = msg.image.format
        self.info_pub.publish(info)
        if self.sink is not None:
            self.sink(hr, msg.header, info)
        if self.sink is None or self.pub.get_subscription_count() > 0:
            self.pub.publish(rgb_to_image(hr, 'rgb8', msg.header))
        now = self.get_clock().now().nanoseconds
        latency = (now - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) / 1e6
        self.stats.frame((time.perf_counter() - t0) * 1000, latency)
        self.stats.values['last_scale'] = str(scale)
        self.stats.values['last_method'] = 'none' if scale == 1 else self.restorer.method(scale)


def main(args=None):
    return run_node(RestorerNode, args)


if __name__ == '__main__':
    sys.exit(main())
