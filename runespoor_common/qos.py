"""Named QoS profiles (one place, so every node agrees)."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

#: Camera frames and uplink frames: best effort, keep last 5 (rclpy's sensor-data profile).
SENSOR_QOS = qos_profile_sensor_data

#: Knobs, class map, controller state: reliable + transient local, depth 1 (a late joiner gets the last).
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

#: Reports and statistics that must not be lost but need no history: reliable, volatile, depth 10.
RELIABLE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)

#: Full-resolution images between cloud nodes (restored frames, labels, overlays): reliable, depth 2,
#: because best-effort multi-MB images can be lost entirely between processes (DESIGN §3).
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
