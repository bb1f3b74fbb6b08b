"""launch_ros LaunchDescriptions generated from the node graph (used by launch/*.launch.py)."""
from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from runespoor_common import graph

_TYPES = {'float': float, 'int': int, 'bool': bool, 'str': str}


def _share() -> str:
    return get_package_share_directory(graph.PACKAGE)


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
        if arg.env:  # data/model folders reach every node through the environment
            actions.append(SetEnvironmentVariable(arg.env, LaunchConfiguration(arg.name),
                                                  condition=IfCondition(PythonExpression(
                                                      ["'", LaunchConfiguration(arg.name), "' != ''"]))))
    for spec in graph.nodes_for(role):
        if spec.external:
            actions.append(Node(package=spec.package, executable=spec.executable, name=spec.name,
                                namespace=LaunchConfiguration('namespace'),
                                arguments=[a.format(share=share) for a in spec.arguments],
                                condition=IfCondition(LaunchConfiguration(spec.condition)),
                                output='screen'))
            continue
        overrides = {}
        for arg in graph.launch_args_for(role):
            for node, param, kind in arg.sets:
                if node == spec.name:
                    overrides[param] = ParameterValue(LaunchConfiguration(arg.name),
                                                      value_type=_TYPES[kind])
        params = [LaunchConfiguration(graph.params_file_arg(role, spec.group))]
        if overrides:
            params.append(overrides)
        actions.append(Node(package=spec.package, executable=spec.executable, name=spec.name,
                            namespace=LaunchConfiguration('namespace'), parameters=params,
                            remappings=list(spec.remappings), output='screen',
                            emulate_tty=True))
    return LaunchDescription(actions)
