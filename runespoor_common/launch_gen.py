"""launch_ros LaunchDescriptions generated from the node graph (used by launch/*.launch.py).

The launch arguments are declared from runespoor_common/graph.py (so `ros2 launch ... -s` lists exactly
the graph's). The nodes are created when the launch runs, by one OpaqueFunction that first checks the
whole configuration (argument types, parameter files, the bag, the namespace, that every executable and
rviz2 exist) and raises a one-line reason before **any** node is started: an error while launch visits
its actions after some processes were scheduled would leave those processes running as orphans (launch
forgets their futures). Then it builds the same commands as the pip-mode runner: the parameter file of
each node's group, overrides only for the arguments given (graph.overrides_for), environment from
graph.env_for, respawn from graph.respawn_for.

Needs no AMENT_PREFIX_PATH: the share folder comes from runespoor_common.paths, and a node whose package
is not in the ament index is started as `python -m <module>`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from runespoor_common import graph, paths


class LaunchRefused(RuntimeError):
    """A launch configuration error found before any node started (launch prints the message)."""


def _share() -> str:
    """The package's share folder (config/, launch/, models/): the checkout in editable mode, the ament
    index where there is one, else the install prefix; never needs AMENT_PREFIX_PATH."""
    return str(paths.share_dir())


def _package_prefix(package: str) -> Path | None:
    """Install prefix of `package` from the ament index, None when it (or the index) is missing."""
    try:
        from ament_index_python.packages import get_package_prefix
        return Path(get_package_prefix(package))
    except Exception:  # PackageNotFoundError, or AMENT_PREFIX_PATH unset (a plain venv)
        return None


def generate(role: str) -> LaunchDescription:
    share = _share()
    actions = [
        # Network safety: DDS discovery stays on this host unless the user exported otherwise.
        SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE',
                               os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')),
    ]
    for arg in graph.launch_args_for(role):
        actions.append(DeclareLaunchArgument(arg.name, default_value=arg.default.format(share=share),
                                             description=arg.description))
    actions.append(OpaqueFunction(function=_nodes, args=[role]))
    return LaunchDescription(actions)


def _nodes(context: LaunchContext, role: str) -> list:
    """The role's Node actions for the launch arguments in `context`, after checking all of them."""
    values = {a.name: context.launch_configurations.get(a.name, a.default)
              for a in graph.launch_args_for(role)}
    return node_actions(role, values)


def node_actions(role: str, values: dict[str, str]) -> list:
    """Check `values` (launch argument -> string) and build the Node actions; LaunchRefused on an error."""
    def refuse(msg: str):
        raise LaunchRefused(f'runespoor {role}.launch.py: {msg}; no node was started')

    ns = values.get('namespace', '').strip()
    if ns:
        from rclpy.validate_namespace import validate_namespace
        try:
            validate_namespace('/' + ns.strip('/'))
        except Exception as exc:  # rclpy.exceptions.InvalidNamespaceException
            refuse(f'namespace:={ns!r} is not a valid ROS namespace ({exc})')
    try:
        overrides = graph.overrides_for(role, values)
        respawn = graph.respawn_for(role, values)
    except ValueError as exc:
        refuse(f'bad launch argument: {exc}')
    env = graph.env_for(role, values)
    params_files = {}
    for group in graph.ROLES[role]:
        arg = graph.params_file_arg(role, group)
        path = Path(values[arg])
        if not path.is_file():
            refuse(f'{arg}:={values[arg]}: no such file')
        params_files[group] = str(path)
    if 'replay' in graph.ROLES[role]:
        bag = values.get('bag', '')
        if not bag:
            refuse('bag:=<rosbag2 folder> is required')
        if not Path(bag).exists():
            refuse(f'bag:={bag}: no such file or folder')

    nodes = []
    for spec in graph.nodes_for(role):
        if spec.condition and not graph.coerce(values.get(spec.condition, 'false') or 'false', 'bool'):
            continue
        common = dict(name=spec.name, namespace=ns or None, output='screen', emulate_tty=True,
                      additional_env=env or None)
        if spec.external:
            prefix = _package_prefix(spec.package)
            if prefix is None or not os.access(prefix / 'lib' / spec.package / spec.executable, os.X_OK):
                refuse(f'{spec.condition}:=true but {spec.package} is not installed (no package '
                       f'{spec.package!r} with executable {spec.executable!r} on AMENT_PREFIX_PATH); '
                       f'install it (e.g. apt install ros-$ROS_DISTRO-{spec.package.replace("_", "-")}) '
                       f'or launch with {spec.condition}:=false')
            nodes.append(Node(package=spec.package, executable=spec.executable,
                              arguments=[a.format(share=_share()) for a in spec.arguments], **common))
            continue
        params = [params_files[spec.group]]
        if spec.name in overrides:  # typed (ParameterValue): launch_ros would YAML-parse plain strings
            params.append({k: ParameterValue(v, value_type=type(v)) for k, v in overrides[spec.name].items()})
        if spec.name in respawn:
            common.update(respawn=True, respawn_delay=respawn[spec.name])
        prefix = _package_prefix(spec.package)
        if prefix is not None and (prefix / 'lib' / spec.package / spec.executable).is_file():
            exe = dict(package=spec.package, executable=spec.executable)
        else:  # not in the ament index (no AMENT_PREFIX_PATH): the module itself, same node
            exe = dict(executable=sys.executable, arguments=['-m', spec.module], exec_name=spec.executable)
        nodes.append(Node(parameters=params, remappings=list(spec.remappings), **exe, **common))
    return nodes
