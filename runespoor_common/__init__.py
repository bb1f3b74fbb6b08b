"""Runespoor base layer: the node graph and topic names, the pip-mode runner, QoS and parameter helpers,
image conversion, data-set descriptions, statistics and file helpers. It imports nothing from the edge,
cloud or tools packages. Logic modules here never import rclpy at import time."""
