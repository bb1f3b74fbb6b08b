"""bag_recorder: records chosen topics to a rosbag2 (MCAP by default), where `ros2 bag record` is absent.

Subscribes to each topic as soon as a publisher makes its type known, with the QoS of its publishers
(reliable only when they all are, transient local when they all are -- rosbag2's adaptive rule), and
writes the serialized bytes as received (no deserialization), stamped with the receive time. Every
connection carries its full message definition (the project's own runespoor/msg types included), so
Foxglove and `ros2 bag` can open the result. The bag is finalized (metadata.yaml) when the node closes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import rclpy
from rclpy.node import Node

from runespoor_common.node_main import run_node
from runespoor_common.params import Param, declare, non_negative
from runespoor_common.qos import record_qos
from runespoor_edge import bagio


PARAMS = [
    Param('out', '', 'bag folder to create (must not exist)', lambda v: None if v else 'must name a folder',
          read_only=True),
    Param('topics', ['*'], 'topics to record; ["*"] = every topic that appears', read_only=True),
    Param('storage', 'mcap', 'mcap or sqlite3', lambda v: None if v in bagio.STORAGES else
          f'must be one of {list(bagio.STORAGES)}', read_only=True),
    Param('duration_s', 0.0, 'stop after this long; 0 = until interrupted [s]', non_negative, read_only=True),
    Param('discovery_period_s', 0.5, 'how often new topics / publishers are looked for [s]', non_negative,
          read_only=True),
]


class BagRecorder(Node):
    def __init__(self, **kwargs):
        super().__init__('bag_recorder', **kwargs)
        p = self.p = declare(self, PARAMS)
        self.out = Path(p['out'])
        if self.out.exists():
            raise ValueError(f'{self.out} exists already; choose a new folder')
        self.all_topics = list(p['topics']) == ['*']
        self.wanted = set() if self.all_topics else {self._abs(t) for t in p['topics']}
        self.writer = bagio.open_writer(self.out, p['storage'])
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.writer.open()
        self.writer.set_custom_data(bagio.CUSTOM_PREFIX + 'recorded_by', 'runespoor bag record')
        self.conns = {}
        self.subs = {}
        self.counts: dict[str, int] = {}
        self._closed = False
        self._discover()
        self.create_timer(max(0.05, float(p['discovery_period_s'])), self._discover)
        if p['duration_s'] > 0:
            self.create_timer(float(p['duration_s']), self._time_up)
        self.get_logger().info(f'recording {"every topic" if self.all_topics else sorted(self.wanted)} '
                               f'to {self.out} ({p["storage"]})')

    def _abs(self, topic: str) -> str:
        return topic if topic.startswith('/') else self.resolve_topic_name(topic)

    def _discover(self) -> None:
        if self._closed:
            return
        for topic, types in self.get_topic_names_and_types():
            if topic in self.subs or (not self.all_topics and topic not in self.wanted):
                continue
            if self.all_topics and topic in ('/rosout', '/parameter_events'):
                continue
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            msgtype = types[0]
            if len(types) > 1:
                self.get_logger().warning(f'{topic} has several types {types}; recording {msgtype}')
            if not bagio.ensure_type(msgtype):
                self.get_logger().error(f'{topic}: no message definition for {msgtype}; not recorded',
                                        throttle_duration_sec=30.0)
                continue
            try:
                cls = bagio.message_class(msgtype)
            except (ImportError, AttributeError, ValueError):
                self.get_logger().error(f'{topic}: {msgtype} is not installed; not recorded',
                                        throttle_duration_sec=30.0)
                continue
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=bagio.typestore())
            self.counts[topic] = 0
            self.subs[topic] = self.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), record_qos(infos), raw=True)
            self.get_logger().info(f'recording {topic} [{msgtype}]')

    def _on_message(self, topic: str, data: bytes) -> None:
        if self._closed:
            return
        self.writer.write(self.conns[topic], self.get_clock().now().nanoseconds, data)
        self.counts[topic] += 1

    def _time_up(self) -> None:
        self.get_logger().info(f'{self.p["duration_s"]:g} s recorded; stopping')
        rclpy.try_shutdown(context=self.context)

    def close(self) -> None:
        """Finalize the bag (index + metadata.yaml). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sub in self.subs.values():
            self.destroy_subscription(sub)
        self.writer.close()
        total = sum(self.counts.values())
        print(f'bag_recorder: wrote {total} messages to {self.out}: '
              + ', '.join(f'{t} {n}' for t, n in sorted(self.counts.items())), flush=True)


def main(args=None):
    return run_node(lambda: BagRecorder(), args)


if __name__ == '__main__':
    sys.exit(main())
