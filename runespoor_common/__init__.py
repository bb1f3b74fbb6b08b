"""Runespoor shared pieces: the node graph, the pip-mode runner, the `runespoor` command, QoS and
parameter helpers. Logic modules here never import rclpy at import time."""
