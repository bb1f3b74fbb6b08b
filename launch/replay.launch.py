"""`ros2 launch runespoor replay.launch.py`: the replay role of the Runespoor node graph.

The nodes, parameter files and launch arguments come from runespoor_common/graph.py (the same
description the pip-mode runner `runespoor launch replay` uses). `ros2 launch runespoor replay.launch.py -s`
lists the arguments.
"""
from runespoor_common.launch_gen import generate


def generate_launch_description():
    return generate('replay')
