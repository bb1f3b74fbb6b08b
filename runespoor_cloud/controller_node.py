"""CAC controller node: runespoor/tail_report + runespoor/link_stats -> runespoor/knobs (KnobConfig,
reliable + transient local, depth 1). Logs every switch with its reason and records the reaction time
(tail frame's capture stamp -> knob published).

It also listens to runespoor/knobs_applied, the knobs the edge really applies: when they are not the
controller's (set by hand with `ros2 param set /edge_streamer ...`, or the edge's safe fallback) it says
so, shows them on /diagnostics (`edge_config`, `edge_in_sync`) and sends its next decision even when it
equals its previous one.

`bandwidth_kbps` is the level to plan for when `bandwidth_source` is `parameter` (and the start level).
Setting it at run time while the source is `link_stats` is refused with the reason (the edge's LinkStats
would override it at once): set `bandwidth_source parameter` first.
"""
from __future__ import annotations

import math
import sys

import numpy as np
from rclpy.node import Node

from runespoor.msg import KnobConfig, LinkStats, TailReport
from runespoor_cloud.controller import (CacController, Decision, ProfileError, load_profile,
                                       resolve_profile)
from runespoor_common import graph
from runespoor_common.diagnostics import NodeStats, attach
from runespoor_common.node_main import run_node
from runespoor_common.params import Param, declare, in_range, one_of
from runespoor_common.qos import LATCHED_QOS, RELIABLE_QOS


PARAMS = [
    Param('profile', 'camvid', 'CAC profile: a YAML path or a name in config/profiles/', read_only=True),
    Param('return_after', 5, 'consecutive non-tail frames before going back to the standard config [frames]',
          in_range(1, 1000)),
    Param('bandwidth_source', 'link_stats',
          'where the uplink bandwidth comes from: link_stats (the edge\'s LinkStats) or parameter',
          one_of('link_stats', 'parameter')),
    Param('bandwidth_kbps', 0.0, 'bandwidth to plan for when bandwidth_source = parameter, and at start; '
          '0 = the highest level [kbit/s]', in_range(0.0, 1e7)),
]


def check_changes(changes: dict, values: dict) -> str | None:
    """A run-time change that cannot take effect is refused with the reason (not silently ignored)."""
    source = changes.get('bandwidth_source', values['bandwidth_source'])
    if 'bandwidth_kbps' in changes and source != 'parameter':
        return (f'bandwidth_kbps is only followed when bandwidth_source is parameter (it is {source}: the '
                "edge's LinkStats set the level); run `ros2 param set /cac_controller bandwidth_source "
                'parameter` first, or set both at once')
    return None


def check_config(values: dict) -> list[str]:
    """Start-up configuration checks that need no ROS (runespoor launch / demo run them first)."""
    try:
        load_profile(resolve_profile(values['profile']))
    except ProfileError as exc:
        return [str(exc)]
    return []


class ControllerNode(Node):
    def __init__(self, **kwargs):
        super().__init__('cac_controller', **kwargs)
        self.p = declare(self, PARAMS, on_change=self.on_params, check_changes=check_changes)
        path = resolve_profile(self.p['profile'])
        self.profile = load_profile(path)  # ProfileError names the file and the problem
        for note in self.profile.notes:
            self.get_logger().warning(note)
        start_kbps = self.p['bandwidth_kbps'] or None
        self.cac = CacController(self.profile, self.p['return_after'], start_kbps)
        self.get_logger().info(f'profile {path}: levels ' + ', '.join(
            f'{lv.bandwidth_kbps:g} kbit/s (standard x{lv.standard.scale} q{lv.standard.jpeg_quality}, '
            f'tail x{lv.tail.scale} q{lv.tail.jpeg_quality})' for lv in self.profile.levels))
        self.stats = NodeStats()
        self.pub = self.create_publisher(KnobConfig, graph.KNOBS, LATCHED_QOS)
        self.create_subscription(TailReport, graph.TAIL_REPORT, self.on_tail, RELIABLE_QOS)
        self.create_subscription(LinkStats, graph.LINK_STATS, self.on_link, RELIABLE_QOS)
        self.create_subscription(KnobConfig, graph.KNOBS_APPLIED, self.on_applied, LATCHED_QOS)
        self.edge_config = ''
        attach(self, self.stats)
        self.publish(self.cac.start())

    def on_params(self, changed: dict) -> None:
        if 'return_after' in changed:
            self.cac.return_after = int(changed['return_after'])
        if 'bandwidth_kbps' in changed and self.p['bandwidth_source'] == 'parameter' \
                or changed.get('bandwidth_source') == 'parameter':
            kbps = changed.get('bandwidth_kbps', self.p['bandwidth_kbps'])
            self.publish(self.cac.on_bandwidth(kbps if kbps > 0 else math.inf))

    def publish(self, d: Decision | None) -> None:
        if d is None:
            return
        msg = KnobConfig(scale=d.config.scale, jpeg_quality=d.config.jpeg_quality,
                         frame_rate=float(d.config.frame_rate), tail_mode=d.tail_mode,
                         bandwidth_kbps=float(d.bandwidth_kbps), config_id=d.config_id, reason=d.reason)
        msg.stamp = self.get_clock().now().to_msg()
        self.pub.publish(msg)
        extra = f' (reaction {1000 * d.reaction_s:.0f} ms)' if d.reaction_s is not None else ''
        self.get_logger().info(f'knobs -> {d.config_id}: x{d.config.scale} q{d.config.jpeg_quality} '
                               f'{d.config.frame_rate:g} fps; {d.reason}{extra}')
        self.stats.values['config'] = d.config_id
        if self.cac.reaction_times:
            self.stats.values['reaction_ms_median'] = f'{1000 * np.median(self.cac.reaction_times):.0f}'

    def on_tail(self, msg: TailReport) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.stats.frame(latency_ms=(now - stamp) * 1000)
        self.publish(self.cac.on_tail_report(msg.is_tail, msg.small_region_ratio, stamp, now,
                                             sent_with=msg.knobs.config_id, threshold=msg.tail_threshold))

    def on_applied(self, msg: KnobConfig) -> None:
        """The knobs the edge applies now (whoever set them)."""
        ours = self.cac.current()[1]
        self.edge_config = msg.config_id
        self.stats.values['edge_config'] = msg.config_id
        in_sync = msg.config_id == ours
        self.stats.values['edge_in_sync'] = str(in_sync).lower()
        ours_ever = {lv.config_id(t) for lv in self.profile.levels for t in (False, True)}
        if not in_sync and msg.config_id not in ours_ever:   # not one of ours (an older one is in flight)
            self.get_logger().warning(
                f'the edge applies {msg.config_id!r} (x{msg.scale} q{msg.jpeg_quality} {msg.frame_rate:g} fps; '
                f'{msg.reason or "no reason given"}), not {ours!r}; the next decision is sent even if unchanged')
            self.cac.last_id = None   # re-send our config on the next decision

    def on_link(self, msg: LinkStats) -> None:
        if self.p['bandwidth_source'] != 'link_stats' or msg.role != 'edge':
            return
        kbps = float(msg.bandwidth_kbps)
        if not math.isfinite(kbps) or kbps < 0:
            self.stats.error('link_stats')
            return
        self.publish(self.cac.on_bandwidth(kbps if kbps > 0 else math.inf))


def main(args=None):
    return run_node(ControllerNode, args)


if __name__ == '__main__':
    sys.exit(main())
