"""Network safety for every process that starts DDS (DEVELOPERS.md rule 1).

DDS discovery stays on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; ROS_LOCALHOST_ONLY is not
enough on Kilted) and each run gets a ROS domain of its own unless the caller chose one.
"""
from __future__ import annotations

import os
import random

DOMAIN_RANGE = (20, 99)  # valid with default Fast DDS ports on Linux, clear of the default 0


def pick_domain_id(seed: int | None = None) -> int:
    rng = random.Random(seed if seed is not None else (os.getpid() ^ int.from_bytes(os.urandom(4), 'little')))
    return rng.randint(*DOMAIN_RANGE)


def safe_env(base: dict | None = None, domain_id: int | None = None) -> dict:
    """A copy of `base` (default os.environ) with loopback-only discovery and a domain id."""
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('ROS_STATIC_PEERS', None)
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    elif not env.get('ROS_DOMAIN_ID'):
        env['ROS_DOMAIN_ID'] = str(pick_domain_id())
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


def apply_to_this_process(domain_id: int | None = None) -> int:
    """Make the current process safe before rclpy.init(); returns the domain id in use."""
    env = safe_env(domain_id=domain_id)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = env['ROS_AUTOMATIC_DISCOVERY_RANGE']
    os.environ['ROS_DOMAIN_ID'] = env['ROS_DOMAIN_ID']
    os.environ.pop('ROS_STATIC_PEERS', None)
    return int(env['ROS_DOMAIN_ID'])
