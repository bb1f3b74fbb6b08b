"""Every QoS profile of the project, named, in one place (like image_tools' policy_maps.hpp), so every node,
tool and test agrees: the fixed profiles of the graph's topics, the subscriber-side profiles of the cloud
nodes and the observer, and the rules the bag player and recorder use to pick a profile per topic."""
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
#: because best-effort multi-MB images can be lost entirely between processes (docs/cloud.md).
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)

# ---------------------------------------------------------------------------- subscriber side
#: The restorer's uplink input: best effort, keep last 1 (only the newest frame matters; matches the edge's
#: sensor-data QoS). The subscriber-side profiles are tabled in docs/cloud.md.
UPLINK_IN_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)

#: The segmentation node's restored-frame input: reliable (to match IMAGE_QOS), keep last 1.
RESTORED_IN_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)

#: The tail detector's label-map input: reliable, keep last 5.
LABELS_IN_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)

#: A passive observer (the demo monitor, tests): best effort + a deep queue, compatible with reliable and
#: best-effort publishers, never back-pressures them.
OBSERVE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)

#: The observer's profile for the small reliable topics (tail reports, link statistics): reliable + a deep
#: queue, so a busy observer still gets every one of them (a demo's reaction times need every tail report;
#: best effort lost the one that switched the knobs on a loaded machine).
OBSERVE_RELIABLE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                                  reliability=ReliabilityPolicy.RELIABLE)

# ---------------------------------------------------------------------------- bags
#: Message types the bag player publishes as images (SENSOR_QOS, or IMAGE_QOS when asked for reliable).
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage', 'runespoor/msg/EncodedFrame')
#: Message types the bag player publishes latched (their publishers in the graph are latched too).
LATCHED_TYPES = ('runespoor/msg/KnobConfig', 'runespoor/msg/ClassMap')
#: Queue depth of the recorder's subscriptions (a burst of messages waits while the bag is written).
RECORD_DEPTH = 100


def replay_qos(msgtype: str, reliable_images: bool = False) -> QoSProfile:
    """The profile the bag player publishes a message type with: images sensor-data (or IMAGE_QOS),
    KnobConfig/ClassMap latched, anything else reliable."""
    if msgtype in IMAGE_TYPES:
        return IMAGE_QOS if reliable_images else SENSOR_QOS
    if msgtype in LATCHED_TYPES:
        return LATCHED_QOS
    return RELIABLE_QOS


def record_qos(infos) -> QoSProfile:
    """A profile that matches every publisher in `infos` (rclpy TopicEndpointInfo list): reliable only when
    they all are, transient local when they all are (rosbag2's adaptive rule)."""
    reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=RECORD_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
