"""The node graph: the one description of its topic names and of which nodes each role runs.

`launch/*.launch.py` (launch_ros, for `ros2 launch`), the pip-mode runner (`runespoor launch`), the node
executables installed by CMake (tools/gen_scripts.py) and the tests all read this module; no node list is
written anywhere else. Pure data, no ROS imports.
"""
from __future__ import annotations

from dataclasses import dataclass

PACKAGE = 'runespoor'

# ---------------------------------------------------------------------------------------------- topics
# Every topic name of the graph, once. Names are relative: a node resolves them in its namespace, so
# `namespace:=` and `--remap` apply; bags store them absolute ('/' + name). QoS: runespoor_common/qos.py.
CAMERA_IMAGE = 'camera/image_raw'                 # sensor_msgs/Image: camera (or bag player) -> edge streamer
CAMERA_LABELS = 'camera/labels'                   # sensor_msgs/Image mono8: a data set's ground truth (bags)
UPLINK = 'runespoor/uplink'                       # EncodedFrame: edge streamer -> restorer, over the link
LINK_STATS = 'runespoor/link_stats'               # LinkStats: edge streamer -> controller
KNOBS = 'runespoor/knobs'                         # KnobConfig: controller -> edge streamer (latched)
KNOBS_APPLIED = 'runespoor/knobs_applied'         # KnobConfig: the knobs the edge applies, whoever set them (latched)
RESTORED = 'runespoor/restored'                   # Image rgb8: restorer -> segmentation
FRAME_INFO = 'runespoor/frame_info'               # EncodedFrame without JPEG: restorer -> tail detector
SEG_LABELS = 'runespoor/segmentation/labels'      # Image mono8 class ids: segmentation -> tail detector
SEG_OVERLAY = 'runespoor/segmentation/overlay'    # Image rgb8 palette blend, for rviz
CLASS_MAP = 'runespoor/class_map'                 # ClassMap: segmentation (latched)
TAIL_REPORT = 'runespoor/tail_report'             # TailReport: tail detector -> controller
DIAGNOSTICS = '/diagnostics'                      # DiagnosticArray from every node (absolute, ROS convention)

#: Every topic of the graph, in data-flow order.
TOPICS = (CAMERA_IMAGE, CAMERA_LABELS, UPLINK, LINK_STATS, KNOBS, KNOBS_APPLIED, RESTORED, FRAME_INFO, SEG_LABELS,
          SEG_OVERLAY, CLASS_MAP, TAIL_REPORT, DIAGNOSTICS)


def absolute(topic: str) -> str:
    """The name a topic has in the root namespace and in bags ('/camera/image_raw')."""
    return topic if topic.startswith('/') else '/' + topic


@dataclass(frozen=True)
class LaunchArg:
    """A launch argument (`ros2 launch ... name:=value`, runner `--name value`)."""
    name: str
    default: str
    description: str
    #: (node name, parameter name, type) the argument sets; type is 'str', 'float', 'int' or 'bool'.
    sets: tuple[tuple[str, str, str], ...] = ()
    #: environment variable the argument sets for every node of the role when not empty
    env: str = ''


@dataclass(frozen=True)
class NodeSpec:
    name: str              # node name (also the key in the role's parameter file)
    module: str            # Python module with main()
    group: str            # 'replay', 'robot' or 'cloud'
    description: str
    package: str = PACKAGE  # an external package (e.g. rviz2) is only started by ros2 launch
    arguments: tuple[str, ...] = ()
    condition: str = ''    # launch argument that must be true to start the node
    remappings: tuple[tuple[str, str], ...] = ()
    external: bool = False
    exe: str = ''          # executable name when it is not the node's name (a process of several nodes)

    @property
    def executable(self) -> str:
        """`ros2 run runespoor <executable>`: named after the node (an external package's: `module`)."""
        if self.external:
            return self.module
        return self.exe or self.name

    @property
    def old_executable(self) -> str:
        """The name the executable had before it was named after its node (its module's), installed as
        an alias for one release (README, "Executables")."""
        return self.module.rsplit('.', 1)[-1]


NODES: tuple[NodeSpec, ...] = (
    NodeSpec('bag_player', 'runespoor_edge.bag_player_node', 'replay',
             'replays a rosbag2 (MCAP) on camera/image_raw (+ camera/labels) at its recorded rate'),
    NodeSpec('edge_streamer', 'runespoor_edge.streamer_node', 'robot',
             'downsample + JPEG with the current knobs, emulated uplink, runespoor/uplink'),
    NodeSpec('restorer', 'runespoor_cloud.restorer_node', 'cloud',
             'decodes the uplink and restores the source resolution (bilinear/sr/asr/cloudseg)'),
    NodeSpec('segmentation', 'runespoor_cloud.segmentation_node', 'cloud',
             'frozen segmentation model: labels (mono8) and overlay (rgb8) for rviz'),
    NodeSpec('tail_detector', 'runespoor_cloud.tail_detector_node', 'cloud',
             'small-region ratio of each label map -> TailReport'),
    NodeSpec('cac_controller', 'runespoor_cloud.controller_node', 'cloud',
             'content-aware adaptive controller: standard/tail config per bandwidth level -> knobs'),
    NodeSpec('rviz', 'rviz2', 'cloud', 'rviz2 with config/runespoor.rviz', package='rviz2',
             arguments=('-d', '{share}/config/runespoor.rviz'), condition='rviz', external=True),
)

#: One process running every cloud node with a multi-threaded executor (no full-res images over DDS).
CLOUD_SINGLE_PROCESS = NodeSpec('cloud', 'runespoor_cloud.cloud_process', 'cloud',
                                'all cloud nodes in one process (multi-threaded executor)', exe='cloud_process')

#: old executable name -> its node's executable; the old names stay installed for one release.
EXECUTABLE_ALIASES: dict[str, str] = {s.old_executable: s.executable for s in NODES
                                      if not s.external and s.old_executable != s.executable}

#: role -> node groups it runs, in start order.
ROLES: dict[str, tuple[str, ...]] = {
    'robot': ('robot',),
    'cloud': ('cloud',),
    'demo': ('cloud', 'robot', 'replay'),
    'replay': ('replay',),
}

#: group -> parameter file under config/.
PARAMS_FILES: dict[str, str] = {'replay': 'replay.yaml', 'robot': 'robot.yaml', 'cloud': 'cloud.yaml'}

#: Launch arguments per group (a role gets the union of its groups'; namespace, params_file(s) and respawn for
#: every role). An argument that sets a parameter defaults to '' = "the parameter file decides" (both front
#: ends pass only the values given), so a custom params_file is not overridden by launch defaults.
LAUNCH_ARGS: dict[str, tuple[LaunchArg, ...]] = {
    'robot': (
        LaunchArg('bandwidth', '', 'emulated uplink bandwidth [kbit/s] (0 = unlimited; empty: the parameter '
                  "file's bandwidth_kbps, 10000.0)",
                  (('edge_streamer', 'bandwidth_kbps', 'float'),)),
        LaunchArg('schedule', '', 'bandwidth schedule "t_s:kbps,..." e.g. "0:10000,5:5000,12:2000,19:10000" '
                  "(empty: the parameter file's, none)",
                  (('edge_streamer', 'schedule', 'str'),)),
    ),
    'cloud': (
        LaunchArg('device', '', "torch device for restoration and segmentation: cpu or cuda (empty: the "
                  "parameter file's, cpu)",
                  (('restorer', 'device', 'str'), ('segmentation', 'device', 'str'))),
        LaunchArg('data_root', '', 'data sets folder (sets RUNESPOOR_DATA; empty: inherited or ../shared/data)',
                  env='RUNESPOOR_DATA'),
        LaunchArg('model_dir', '', 'third-party weights folder, e.g. ESPNet (sets RUNESPOOR_MODELS; empty: '
                  'inherited or ../shared/models)', env='RUNESPOOR_MODELS'),
        LaunchArg('weights_dir', '', "the project's trained SR/ASR weights (empty: the installed models/)",
                  (('restorer', 'weights_dir', 'str'),)),
        LaunchArg('rviz', 'false', 'start rviz2 with config/runespoor.rviz (refused before any node starts '
                  'when rviz2 is not installed)'),
    ),
    'replay': (
        LaunchArg('bag', '', 'rosbag2 folder to replay (required)', (('bag_player', 'bag', 'str'),)),
        LaunchArg('rate', '', "replay rate factor (empty: the parameter file's, 1.0)",
                  (('bag_player', 'rate', 'float'),)),
        LaunchArg('loop', '', "replay the bag in a loop (empty: the parameter file's, false)",
                  (('bag_player', 'loop', 'bool'),)),
        LaunchArg('restamp', '', "header stamps = replay time, monotonic across loops, like a live camera "
                  "(false: keep the bag's stamps; empty: the parameter file's, true)",
                  (('bag_player', 'restamp', 'bool'),)),
    ),
}
COMMON_ARGS = (
    LaunchArg('namespace', '', 'ROS namespace of every node of the role'),
)

#: role -> node groups restarted by default when one of their nodes exits (launch_ros `respawn`): in the
#: demo the cloud, so that a crashed cloud node comes back while the robot keeps streaming.
RESPAWN_GROUPS: dict[str, tuple[str, ...]] = {'demo': ('cloud',)}
RESPAWN_DELAY_S = 2.0


def respawn_args(role: str) -> tuple[LaunchArg, ...]:
    """`respawn` / `respawn_delay` (launch_ros semantics) of a role; see respawn_for()."""
    groups = RESPAWN_GROUPS.get(role)
    which = f'a {"/".join(groups)} node' if groups else 'a node of the role'
    return (
        LaunchArg('respawn', 'true' if groups else 'false',
                  f'restart {which} when one exits (launch_ros respawn)'),
        LaunchArg('respawn_delay', str(RESPAWN_DELAY_S), 'seconds to wait before a restart [s]'),
    )


def nodes_for(role: str, include_external: bool = True) -> list[NodeSpec]:
    if role not in ROLES:
        raise ValueError(f'unknown role {role!r}; roles: {sorted(ROLES)}')
    groups = ROLES[role]
    return [n for g in groups for n in NODES
            if n.group == g and (include_external or not n.external)]


def launch_args_for(role: str) -> list[LaunchArg]:
    args = list(COMMON_ARGS)
    for g in ROLES[role]:
        args.append(LaunchArg(f'params_file_{g}' if len(ROLES[role]) > 1 else 'params_file',
                              f'{{share}}/config/{PARAMS_FILES[g]}',
                              f'parameter file of the {g} nodes (YAML keyed by node name)'))
        args.extend(LAUNCH_ARGS[g])
    return args + list(respawn_args(role))


def respawn_for(role: str, values: dict[str, str]) -> dict[str, float]:
    """node name -> respawn delay [s] for the nodes of `role` that are restarted when they exit, given the
    launch-argument `values` (missing ones take their defaults). Nodes not listed are not restarted."""
    defaults = {a.name: a.default for a in respawn_args(role)}
    on = values.get('respawn') if values.get('respawn') not in ('', None) else defaults['respawn']
    if not coerce(on, 'bool'):
        return {}
    delay = values.get('respawn_delay')
    delay = coerce(delay if delay not in ('', None) else defaults['respawn_delay'], 'float')
    if not delay >= 0.0:
        raise ValueError(f'respawn_delay must be >= 0 s, got {delay}')
    groups = RESPAWN_GROUPS.get(role, ROLES[role])
    return {n.name: delay for n in nodes_for(role, include_external=False) if n.group in groups}


def params_file_arg(role: str, group: str) -> str:
    return f'params_file_{group}' if len(ROLES[role]) > 1 else 'params_file'


def coerce(value: str, kind: str):
    """Convert a launch-argument string to the parameter's type (`-p x:=1` would parse as int)."""
    if kind == 'float':
        return float(value)
    if kind == 'int':
        return int(value)
    if kind == 'bool':
        low = str(value).strip().lower()
        if low in ('true', '1', 'yes', 'on'):
            return True
        if low in ('false', '0', 'no', 'off'):
            return False
        raise ValueError(f'not a boolean: {value!r}')
    return str(value)


def env_for(role: str, values: dict[str, str]) -> dict[str, str]:
    """Environment variables set by the launch arguments given (non-empty) in `values`."""
    return {a.env: str(values[a.name]) for a in launch_args_for(role)
            if a.env and values.get(a.name) not in ('', None)}


def overrides_for(role: str, values: dict[str, str]) -> dict[str, dict[str, object]]:
    """node name -> {parameter: typed value} for the launch arguments given in `values`.

    Arguments left at '' (meaning "automatic") are not passed, so the parameter file decides.
    """
    out: dict[str, dict[str, object]] = {}
    for arg in launch_args_for(role):
        if arg.name not in values or values[arg.name] in ('', None):
            continue
        for node, param, kind in arg.sets:
            out.setdefault(node, {})[param] = coerce(values[arg.name], kind)
    return out
