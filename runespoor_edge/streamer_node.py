"""edge_streamer: camera frames -> knobs (scale, JPEG quality, frame rate) -> emulated uplink.

Thin node over runespoor_edge.streamer (the logic) and runespoor_edge.link (the token bucket):

  subscribes  camera/image_raw      sensor_msgs/Image   sensor-data QoS (best effort, depth 5)
              runespoor/knobs       runespoor/KnobConfig reliable + transient local, depth 1
  publishes   runespoor/uplink      runespoor/EncodedFrame  sensor-data QoS, one per sent frame
              runespoor/link_stats  runespoor/LinkStats     reliable, once per stats_period_s

A KnobConfig applies from the next camera frame on; an invalid one is logged and ignored (the previous
knobs stay). The knobs are also parameters (`ros2 param set /edge_streamer scale 4`), validated the same
way; each applied KnobConfig is mirrored into them so `ros2 param get` shows the knobs in force.

Whatever sets the knobs (a KnobConfig, a hand-set parameter, the safe fallback after `knob_timeout_s`),
the knobs in force are published back on runespoor/knobs_applied (KnobConfig, latched) and shown on
/diagnostics (`knobs`), so the controller and the monitor see the real state, not the one they asked for.
"""
from __future__ import annotations

import random
import sys
import time

from rclpy.node import Node
from rclpy.parameter import Parameter
from runespoor.msg import EncodedFrame, KnobConfig, LinkStats
from sensor_msgs.msg import Image

from runespoor_common import graph
from runespoor_common.diagnostics import NodeStats, attach
from runespoor_common.imgconv import ImageEncodingError, image_to_rgb
from runespoor_common.node_main import run_node
from runespoor_common.params import Param, declare, in_range, non_negative, one_of, positive
from runespoor_common.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from runespoor_edge.codec import QUALITY_RANGE, VALID_SCALES
from runespoor_edge.knobs import KnobError, KnobSettings
from runespoor_edge.link import POLICIES, LinkError, Schedule, TokenBucketLink
from runespoor_edge.streamer import Streamer


def _schedule(v):
    if not str(v).strip():
        return None
    try:
        Schedule.parse(v)
    except LinkError as exc:
        return str(exc)
    return None


def _int_at_least(lo):
    def check(v):
        return None if isinstance(v, int) and v >= lo else f'must be an integer >= {lo}, got {v!r}'
    return check


KNOB_PARAMS = ('scale', 'jpeg_quality', 'frame_rate')
LINK_PARAMS = ('bandwidth_kbps', 'schedule', 'link_policy', 'burst_s', 'max_queue', 'max_queue_delay_s')

PARAMS = [
    Param('scale', 1, f'downsampling factor, one of {list(VALID_SCALES)} (sent size = floor(source / scale))',
          one_of(*VALID_SCALES)),
    Param('jpeg_quality', 75, f'JPEG quality {QUALITY_RANGE[0]}..{QUALITY_RANGE[1]} [OpenCV units]',
          in_range(*QUALITY_RANGE)),
    Param('frame_rate', 0.0, 'target frame rate, camera frames above it are skipped; 0 = every frame [frames/s]',
          non_negative),
    Param('bandwidth_kbps', 10000.0, 'emulated uplink bandwidth when no schedule is set; 0 = unlimited [kbit/s]',
          non_negative),
    Param('schedule', '', 'bandwidth schedule "t_s:kbps,..." from the first camera frame, e.g. '
          '"0:10000,5:5000,12:2000,19:10000"; empty = constant bandwidth_kbps', _schedule),
    Param('link_policy', 'delay', 'a frame the link cannot take now: "delay" (queue it) or "drop"',
          one_of(*POLICIES)),
    Param('burst_s', 0.0, 'bits an idle link may save up, in seconds of the current bandwidth; 0 = an exact '
          'link (a frame of b bits takes b / bandwidth on the wire) [s]', non_negative),
    Param('max_queue', 3, 'frames that may wait behind the one on the wire (policy delay); when full the '
          'oldest waiting frame is dropped [frames]', _int_at_least(0)),
    Param('max_queue_delay_s', 1.0, 'waiting frames older than this are dropped [s]', positive),
    Param('knob_timeout_s', 0.0, 'fall back to the safe knobs when, after a first KnobConfig, none arrived '
          'and no runespoor/knobs publisher (controller) was present for this long; 0 = never [s]',
          non_negative),
    Param('safe_scale', 4, 'safe-config scale (used after a knob timeout)', one_of(*VALID_SCALES)),
    Param('safe_jpeg_quality', 50, 'safe-config JPEG quality', in_range(*QUALITY_RANGE)),
    Param('safe_frame_rate', 0.0, 'safe-config frame rate; 0 = every frame [frames/s]', non_negative),
    Param('stats_period_s', 1.0, 'LinkStats period [s]', positive, read_only=True),
    Param('poll_period_s', 0.005, 'how often queued frames are checked against the bucket [s]', positive,
          read_only=True),
    Param('generic_as_color', True, 'read camera frames in the generic encodings 8UC3, 8UC4, 8UC1, 16UC1 (what '
          'cv_bridge writes without an encoding) as bgr8, bgra8, mono8, mono16, which cv_bridge itself refuses '
          '(runespoor_common.imgconv.GENERIC_AS_COLOR); false = strict cv_bridge', read_only=True),
]


class EdgeStreamer(Node):
    def __init__(self, **kwargs):
        super().__init__('edge_streamer', **kwargs)
        self._syncing = False
        self.p = declare(self, PARAMS, on_change=self._on_params)
        p = self.p
        try:
            link = TokenBucketLink(bandwidth_kbps=float(p['bandwidth_kbps']), schedule=p['schedule'],
                                   policy=p['link_policy'], burst_s=float(p['burst_s']),
                                   max_queue=int(p['max_queue']), max_delay_s=float(p['max_queue_delay_s']))
            safe = KnobSettings(scale=p['safe_scale'], jpeg_quality=p['safe_jpeg_quality'],
                                frame_rate=float(p['safe_frame_rate']), config_id='safe',
                                reason=f'no KnobConfig for {p["knob_timeout_s"]:g} s')
            self.streamer = Streamer(
                KnobSettings(scale=p['scale'], jpeg_quality=p['jpeg_quality'], frame_rate=float(p['frame_rate']),
                             config_id='param', reason='start-up parameters'),
                link=link, safe_knobs=safe, knob_timeout_s=float(p['knob_timeout_s']))
        except (KnobError, LinkError) as exc:
            raise ValueError(str(exc)) from exc
        self.session_id = random.SystemRandom().getrandbits(32)
        self._EncodedFrame, self._LinkStats = EncodedFrame, LinkStats
        self.pub = self.create_publisher(EncodedFrame, graph.UPLINK, SENSOR_QOS)
        self.stats_pub = self.create_publisher(LinkStats, graph.LINK_STATS, RELIABLE_QOS)
        self.applied_pub = self.create_publisher(KnobConfig, graph.KNOBS_APPLIED, LATCHED_QOS)
        self.create_subscription(Image, graph.CAMERA_IMAGE, self._on_image, SENSOR_QOS)
        knob_sub = self.create_subscription(KnobConfig, graph.KNOBS, self._on_knobs, LATCHED_QOS)
        self._knobs_topic, self._presence_checked = knob_sub.topic_name, 0.0
        self.create_timer(float(p['poll_period_s']), self._on_poll)
        self.create_timer(float(p['stats_period_s']), self._on_stats)
        self.frames_in = 0
        # rejection counters (rejected_camera_encoding, rejected_knobs, ...) on /diagnostics
        self.stats = NodeStats()
        attach(self, self.stats)
        self._publish_applied(self.streamer.knobs)
        link_text = (f'schedule {p["schedule"]} kbit/s' if p['schedule'] else
                     f'{p["bandwidth_kbps"]:g} kbit/s' if p['bandwidth_kbps'] else 'unlimited')
        self.get_logger().info(f'edge streamer up: knobs {self.streamer.knobs.describe()}, link {link_text}, '
                               f'policy {p["link_policy"]}, session {self.session_id}')

    # ------------------------------------------------------------------ inputs
    def _on_image(self, msg):
        self.frames_in += 1
        try:
            rgb = image_to_rgb(msg, generic_as_color=self.p['generic_as_color'])
        except ImageEncodingError as exc:
            self.stats.error('camera_encoding')
            self.get_logger().error(f'camera frame rejected ({self.stats.errors["camera_encoding"]} so far): {exc}',
                                    throttle_duration_sec=5.0)
            return
        self.stats.frame()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp == 0.0:  # an unstamped camera: use the arrival time for the frame-rate knob
            stamp = time.monotonic()
        res = self.streamer.on_frame(rgb, stamp, meta=msg.header)
        if res.error:
            self.stats.error('encode')
            self.get_logger().error(f'frame not encoded: {res.error}', throttle_duration_sec=5.0)
        self._publish(res)

    def _on_knobs(self, msg):
        try:
            knobs = KnobSettings.from_msg(msg)
            self.streamer.set_knobs(knobs)
        except KnobError as exc:
            self.stats.error('knobs')
            self.get_logger().error(f'KnobConfig {msg.config_id!r} rejected ({self.stats.errors["knobs"]} so far), '
                                    f'keeping {self.streamer.knobs.describe()}: {exc}', throttle_duration_sec=2.0)
            return
        self.stats.values['safe_mode'] = 'false'
        self.get_logger().info(f'knobs -> {knobs.describe()} ({knobs.reason or "no reason given"})')
        self._mirror_params(knobs)
        self._publish_applied(knobs)

    def _publish_applied(self, knobs: KnobSettings) -> None:
        """The knobs in force, whoever set them, for the controller and the monitor."""
        self.applied_pub.publish(knobs.to_msg(self.get_clock().now().to_msg()))
        self.stats.values['knobs'] = knobs.describe()
        self.stats.values['knobs_source'] = knobs.config_id

    def _mirror_params(self, knobs: KnobSettings) -> None:
        self._syncing = True
        try:
            self.set_parameters([Parameter('scale', value=int(knobs.scale)),
                                 Parameter('jpeg_quality', value=int(knobs.jpeg_quality)),
                                 Parameter('frame_rate', value=float(knobs.frame_rate))])
        finally:
            self._syncing = False

    def _on_params(self, changed: dict) -> None:
        if self._syncing:
            return
        knob_changes = {k: changed[k] for k in KNOB_PARAMS if k in changed}
        if knob_changes:
            try:
                knobs = self.streamer.knobs.with_changes(**knob_changes, config_id='param',
                                                         reason='ros2 param set', tail_mode=False)
                self.streamer.set_knobs(knobs, from_controller=False)
                self.get_logger().info(f'knobs -> {knobs.describe()} (parameters; published on '
                                       f'{graph.KNOBS_APPLIED})')
                self._publish_applied(knobs)
            except KnobError as exc:  # cannot happen after the parameter checks; keep the knobs
                self.get_logger().error(str(exc))
        link_changes = {k: changed[k] for k in LINK_PARAMS if k in changed}
        if link_changes:
            names = {'link_policy': 'policy', 'max_queue_delay_s': 'max_delay_s'}
            try:
                self.streamer.link.configure(**{names.get(k, k): v for k, v in link_changes.items()})
                self.get_logger().info(f'link settings changed: {link_changes}')
            except LinkError as exc:
                self.get_logger().error(str(exc))
        if 'knob_timeout_s' in changed:
            self.streamer.knob_timeout_s = float(changed['knob_timeout_s'])

    # ------------------------------------------------------------------ outputs
    def _on_poll(self):
        now = time.monotonic()
        if self.streamer.knob_timeout_s > 0 and now - self._presence_checked >= 0.5:
            self._presence_checked = now
            if self.count_publishers(self._knobs_topic) > 0:  # the controller is alive, just quiet
                self.streamer.controller_seen()
        safe = self.streamer.check_knob_timeout()
        if safe is not None:
            self.get_logger().warning(f'no KnobConfig for {self.streamer.knob_timeout_s:g} s: safe knobs '
                                      f'{safe.describe()}')
            self.stats.values['safe_mode'] = 'true'
            self._mirror_params(safe)
            self._publish_applied(safe)
        if self.streamer.link.queue_length:
            self._publish(self.streamer.poll())

    def _publish(self, res):
        if res.dropped:
            reasons = ', '.join(sorted({d.reason for d in res.dropped}))
            self.get_logger().debug(f'uplink dropped {len(res.dropped)} frame(s): {reasons}')
        if not res.sent:
            return
        now = self.get_clock().now().to_msg()
        for p in res.sent:
            msg = self._EncodedFrame()
            msg.header = p.meta
            msg.seq = p.seq
            msg.session_id = self.session_id
            msg.source_width, msg.source_height = p.source_size
            msg.knobs = p.knobs.to_msg()
            msg.image.header = p.meta
            msg.image.format = 'jpeg'
            msg.image.data = p.data
            msg.send_stamp = now
            msg.queue_delay_ms = float(p.queue_delay_s * 1000.0)
            self.pub.publish(msg)

    def _on_stats(self):
        w = self.streamer.take_window()
        msg = self._LinkStats()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.role = 'edge'
        msg.window_s = float(w.window_s)
        msg.bytes_per_s = float(w.bytes_per_s)
        msg.kbps = float(w.kbps)
        msg.frames_per_s = float(w.frames_per_s)
        msg.dropped_in_window = int(w.dropped)
        msg.skipped_in_window = int(w.skipped)
        msg.frames_total = int(w.frames_total)
        msg.dropped_total = int(w.dropped_total)
        msg.bandwidth_kbps = float(w.bandwidth_kbps)
        msg.queue_delay_ms = float(w.queue_delay_ms)
        msg.latency_ms = float('nan')
        msg.queue_length = int(w.queue_length)
        self.stats_pub.publish(msg)


def main(args=None):
    return run_node(lambda: EdgeStreamer(), args)


if __name__ == '__main__':
    sys.exit(main())
