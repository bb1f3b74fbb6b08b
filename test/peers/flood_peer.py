"""A peer that publishes as fast as it can, from a 1 ms timer and from a thread of its own, for the
shutdown tests: a SIGINT/SIGTERM must stop it without a traceback, an RCLError or "exception was never
retrieved" (runespoor_common/node_main.py). `multi` as first argument: two such nodes in a
MultiThreadedExecutor (the cloud_process way). Not a product node."""
import sys
import threading

from rclpy.node import Node
from std_msgs.msg import String

from runespoor_common.node_main import is_shutdown_error, run_node


class FloodPeer(Node):
    def __init__(self, name='flood_peer'):
        super().__init__(name)
        self.pub = self.create_publisher(String, 'flood', 10)
        self.n = 0
        self.create_timer(0.001, self.tick)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.get_logger().info('flooding')

    def tick(self):
        self.n += 1
        self.pub.publish(String(data=f'timer {self.n}'))

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                self.pub.publish(String(data=f'thread {i}'))
            except Exception as exc:  # the context went away under the thread: the run is over
                if is_shutdown_error(exc, self.context):
                    return
                raise

    def close(self):
        self._stop.set()
        self.thread.join(timeout=5)


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == 'multi':
        sys.exit(run_node([lambda: FloodPeer('flood_a'), lambda: FloodPeer('flood_b')], sys.argv[2:]))
    sys.exit(run_node(FloodPeer))
