"""Pip-mode runner: `runespoor launch robot|cloud|demo` starts each node of the role as its own process.

`launch`/`launch_ros` cannot be installed from PyPI, so this runner reads the same node graph as the
launch files (runespoor_common/graph.py) and starts `python -m <module> --ros-args --params-file ... -r ...`
per node. It prefixes every output line with the node name, forwards SIGINT/SIGTERM, stops all nodes
cleanly and exits non-zero when a node dies on its own.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from runespoor_common import graph, paths, rosenv

STOP_TIMEOUT_S = 10.0


def node_command(spec: graph.NodeSpec, params_file: Path | None, namespace: str = '',
                 overrides: dict | None = None, extra_ros_args: list[str] | None = None) -> list[str]:
    """The command line that starts one node of the graph as a process."""
    cmd = [sys.executable, '-m', spec.module, '--ros-args', '-r', f'__node:={spec.name}']
    if spec is graph.CLOUD_SINGLE_PROCESS:
        cmd = [sys.executable, '-m', spec.module, '--ros-args']  # several nodes: keep their own names
    if namespace:
        cmd += ['-r', f'__ns:=/{namespace.strip("/")}']
    if params_file is not None:
        cmd += ['--params-file', str(params_file)]
    for name, value in (overrides or {}).items():
        cmd += ['-p', f'{name}:={_ros_arg_value(value)}']
    for src, dst in spec.remappings:
        cmd += ['-r', f'{src}:={dst}']
    return cmd + list(extra_ros_args or [])


def _ros_arg_value(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return repr(value)  # always with a '.', so it parses as a double
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


class Runner:
    """Starts the processes of a role and supervises them."""

    def __init__(self, role: str, values: dict[str, str] | None = None, *,
                 params_files: dict[str, Path] | None = None, single_process_cloud: bool = False,
                 param_sets: dict[str, dict] | None = None, domain_id: int | None = None,
                 env: dict | None = None, output=None, prefix_output: bool = True):
        self.role = role
        self.values = dict(values or {})
        cfg = paths.config_dir()
        self.params_files = {g: (params_files or {}).get(g, cfg / graph.PARAMS_FILES[g])
                             for g in graph.ROLES[role]}
        self.single_process_cloud = single_process_cloud
        self.param_sets = param_sets or {}
        self.env = rosenv.safe_env(env, domain_id)
        self.env.update(graph.env_for(role, self.values))
        self.domain_id = int(self.env['ROS_DOMAIN_ID'])
        self.output = output or sys.stdout
        self.prefix_output = prefix_output
        self.procs: dict[str, subprocess.Popen] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = False

    def commands(self) -> dict[str, list[str]]:
        overrides = graph.overrides_for(self.role, self.values)
        for node, sets in self.param_sets.items():
            overrides.setdefault(node, {}).update(sets)
        ns = self.values.get('namespace', '')
        out: dict[str, list[str]] = {}
        specs = graph.nodes_for(self.role, include_external=False)
        if self.single_process_cloud and any(s.group == 'cloud' for s in specs):
            cloud_over = {}
            for s in specs:
                if s.group == 'cloud':
                    # one process, several nodes: per-node overrides go as node:param (rclpy syntax)
                    cloud_over.update({f'{s.name}:{k}': v for k, v in overrides.get(s.name, {}).items()})
            first_cloud = next(i for i, s in enumerate(specs) if s.group == 'cloud')
            specs = [s for s in specs if s.group != 'cloud']
            specs.insert(first_cloud, graph.CLOUD_SINGLE_PROCESS)
        else:
            cloud_over = {}
        for spec in specs:
            if spec is graph.CLOUD_SINGLE_PROCESS:
                out[spec.name] = node_command(spec, self.params_files['cloud'], ns, cloud_over)
            else:
                out[spec.name] = node_command(spec, self.params_files[spec.group], ns,
                                              overrides.get(spec.name))
        return out

    # -- process supervision -------------------------------------------------------------------
    def start(self) -> None:
        for name, cmd in self.commands().items():
            proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            self.procs[name] = proc
            t = threading.Thread(target=self._pump, args=(name, proc), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        width = max(len(n) for n in self.procs) if self.procs else len(name)
        for raw in iter(proc.stdout.readline, b''):
            line = raw.decode(errors='replace').rstrip('\n')
            with self._lock:
                text = f'[{name:<{width}}] {line}' if self.prefix_output else line
                print(text, file=self.output, flush=True)

    def poll(self) -> dict[str, int]:
        """Processes that have exited: name -> return code."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> dict[str, int]:
        """SIGINT every node, then SIGTERM/SIGKILL what is left after `timeout`; returns exit codes."""
        self._stopping = True
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            alive = [p for p in self.procs.values() if p.poll() is None]
            if not alive:
                break
            for p in alive:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(p.poll() is None for p in alive):
                time.sleep(0.05)
        for t in self._threads:
            t.join(timeout=2.0)
        return {n: p.returncode for n, p in self.procs.items()}

    def wait(self, duration: float | None = None) -> int:
        """Run until a signal, `duration` seconds, or a node dying. 0 = clean stop, 1 = a node died."""
        stop = threading.Event()
        handlers = {}

        def on_signal(signum, _frame):
            print(f'runespoor launch: got {signal.Signals(signum).name}, stopping the nodes',
                  file=self.output, flush=True)
            stop.set()

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, on_signal)
        deadline = None if duration is None else time.monotonic() + duration
        died: dict[str, int] = {}
        try:
            while not stop.is_set():
                died = self.poll()
                if died or (deadline is not None and time.monotonic() >= deadline):
                    break
                stop.wait(0.2)
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
        if died:
            for name, code in died.items():
                print(f'runespoor launch: node {name} exited with code {code}; stopping the others',
                      file=self.output, flush=True)
        codes = self.stop()
        bad = {n: c for n, c in codes.items() if n not in died and c not in (0, -2, -15)}
        if bad:
            print(f'runespoor launch: unclean exit codes {bad}', file=self.output, flush=True)
        return 1 if died or bad else 0


# -- CLI ---------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('role', choices=sorted(graph.ROLES), help='which part of the node graph to run')
    seen = set()
    for role in graph.ROLES:
        for arg in graph.launch_args_for(role):
            if arg.name in seen or arg.name.startswith('params_file') or arg.name == 'rviz':
                continue
            seen.add(arg.name)
            parser.add_argument(f'--{arg.name.replace("_", "-")}', dest=arg.name, default=None,
                                help=f'{arg.description} (default: {arg.default or "auto"})')
    for group, fname in graph.PARAMS_FILES.items():
        parser.add_argument(f'--params-file-{group}', type=Path, default=None,
                            help=f'parameter file of the {group} nodes (default: config/{fname})')
    parser.add_argument('--params-file', type=Path, default=None,
                        help='parameter file when the role has one node group (robot or cloud)')
    parser.add_argument('--single-process', action='store_true',
                        help='run the cloud nodes in one process (no full-resolution images over DDS)')
    parser.add_argument('--set', action='append', default=[], metavar='NODE:PARAM=VALUE',
                        help='override one parameter (YAML value), e.g. --set edge_streamer:jpeg_quality=70')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID, else a random one that is printed)')
    parser.add_argument('--duration', type=float, default=None, help='stop after this many seconds')


def parse_sets(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items:
        try:
            target, value = item.split('=', 1)
            node, param = target.split(':', 1)
        except ValueError:
            raise SystemExit(f'--set {item!r}: expected NODE:PARAM=VALUE')
        out.setdefault(node, {})[param] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    values = {a.name: getattr(args, a.name) for a in graph.launch_args_for(args.role)
              if getattr(args, a.name, None) is not None}
    files = {g: getattr(args, f'params_file_{g}') for g in graph.PARAMS_FILES
             if getattr(args, f'params_file_{g}', None) is not None}
    if args.params_file is not None:
        groups = graph.ROLES[args.role]
        if len(groups) != 1:
            raise SystemExit('--params-file needs a one-group role; use --params-file-<group> for demo')
        files[groups[0]] = args.params_file
    for g, f in files.items():
        if not Path(f).is_file():
            raise SystemExit(f'parameter file for {g} not found: {f}')
    runner = Runner(args.role, values, params_files=files, single_process_cloud=args.single_process,
                    param_sets=parse_sets(args.set), domain_id=args.domain_id)
    print(f'runespoor launch {args.role}: ROS_DOMAIN_ID={runner.domain_id}, discovery LOCALHOST; '
          f'nodes: {", ".join(runner.commands())}', flush=True)
    runner.start()
    return runner.wait(args.duration)
