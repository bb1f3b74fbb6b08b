"""Pip-mode runner: `runespoor launch robot|cloud|demo` starts each node of the role as its own process.

`launch`/`launch_ros` cannot be installed from PyPI, so this runner reads the same node graph as the
launch files (runespoor_common/graph.py) and starts `python -m <module> --ros-args --params-file ... -r ...`
per node. It prefixes every output line with the node name, forwards SIGINT/SIGTERM, stops all nodes
cleanly and exits non-zero when a node dies on its own.

It stops the nodes with SIGTERM (then SIGKILL after 10 s).

Before it starts anything it validates the whole configuration (`check_config`): the parameter files
and every override against the parameters each node declares (unknown names warned with the nearest
known one, wrong types and bad values refused, one line each naming the file, node and parameter), then
each node module's own `check_config(values)` (a profile that does not load, a bag without the replayed
topics), so a bad input is named in a second, not after minutes of model loading.

Supervision (launch_ros semantics): a node with `respawn` is started again `respawn_delay` seconds after
it exits (on by default for the cloud in the demo role; `--respawn true|false`, `--respawn-delay S`).
A node that exits with code 2 (it could not start: bad parameters or files) is not restarted, it would
fail the same way. **The robot outlives the cloud**: when a cloud node dies for good in a role that also
runs the robot, the robot (and the replay) keep running -- the edge holds its last knobs, falls back to
its safe config after `knob_timeout_s` and follows a controller again once one is back; a robot or replay
node dying stops the role. The exit code is 1 when a node died for good, 0 otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
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


@contextlib.contextmanager
def deferred_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """Hold SIGINT/SIGTERM back while processes are spawned and recorded, then deliver the first one to
    the handler that was in place (Ctrl-C's KeyboardInterrupt, a command's own handler): an interrupt in
    the middle of Popen would otherwise leave a started node that nobody stops."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _f: got.append(signum)) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if got:
            handler = previous[got[0]]
            if callable(handler):
                handler(got[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), got[0])


class Runner:
    """Starts the processes of a role and supervises them (respawn, the robot outliving the cloud)."""

    def __init__(self, role: str, values: dict[str, str] | None = None, *,
                 params_files: dict[str, Path] | None = None, single_process_cloud: bool = False,
                 param_sets: dict[str, dict] | None = None, domain_id: int | None = None,
                 env: dict | None = None, output=None, prefix_output: bool = True,
                 respawn: dict[str, float] | None = None):
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
        #: node name -> respawn delay [s] (launch_ros respawn / respawn_delay); default from the graph
        self.respawn = dict(respawn if respawn is not None else _graph_respawn(role, self.values))
        self.procs: dict[str, subprocess.Popen] = {}
        self.groups: dict[str, str] = {}          # process name -> node group (robot, cloud, replay)
        self.restarts: dict[str, int] = {}        # process name -> times restarted
        self.died: dict[str, int] = {}            # process name -> exit code, dead for good
        self._cmds: dict[str, list[str]] = {}
        self._respawn_at: dict[str, float] = {}   # process name -> monotonic time of its restart
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = False

    def overrides(self) -> dict[str, dict]:
        """node name -> parameter overrides (launch arguments, then --set)."""
        overrides = graph.overrides_for(self.role, self.values)
        for node, sets in self.param_sets.items():
            overrides.setdefault(node, {}).update(sets)
        return overrides

    def commands(self) -> dict[str, list[str]]:
        overrides = self.overrides()
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
            self.groups[spec.name] = spec.group
            if spec is graph.CLOUD_SINGLE_PROCESS:
                out[spec.name] = node_command(spec, self.params_files['cloud'], ns, cloud_over)
            else:
                out[spec.name] = node_command(spec, self.params_files[spec.group], ns,
                                              overrides.get(spec.name))
        return out

    def respawn_delay(self, name: str) -> float | None:
        """Respawn delay of process `name` (None = not respawned); the cloud process respawns when any
        cloud node would."""
        if name in self.respawn:
            return float(self.respawn[name])
        if name == graph.CLOUD_SINGLE_PROCESS.name:
            delays = [d for n, d in self.respawn.items()
                      if any(s.name == n and s.group == 'cloud' for s in graph.NODES)]
            return float(max(delays)) if delays else None
        return None

    # -- configuration check -------------------------------------------------------------------
    def check(self) -> tuple[list[str], list[str]]:
        """Validate the parameter files and overrides of every node of the role (see check_config), in a
        short-lived process (checking imports the node modules, the cloud's import torch). Returns
        (errors, warnings)."""
        return check_runners([self])

    # -- process supervision -------------------------------------------------------------------
    def start(self) -> None:
        self._cmds = self.commands()
        with deferred_signals():
            for name, cmd in self._cmds.items():
                self._spawn(name, cmd)

    def _spawn(self, name: str, cmd: list[str]) -> None:
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        self._say(f'started {name} (pid {proc.pid})')
        t = threading.Thread(target=self._pump, args=(name, proc), daemon=True)
        t.start()
        self._threads.append(t)

    def _say(self, text: str) -> None:
        with self._lock:
            print(f'runespoor launch: {text}', file=self.output, flush=True)

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        width = max(len(n) for n in self.procs) if self.procs else len(name)
        for raw in iter(proc.stdout.readline, b''):
            line = raw.decode(errors='replace').rstrip('\n')
            with self._lock:
                text = f'[{name:<{width}}] {line}' if self.prefix_output else line
                print(text, file=self.output, flush=True)

    def poll(self) -> dict[str, int]:
        """Processes that have exited: name -> return code (a process waiting for its respawn included)."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def supervise(self) -> dict[str, int]:
        """One supervision step: restart the processes whose respawn is due, schedule the respawn of those
        that just exited, and return the processes that died for good in this step (name -> code)."""
        now = time.monotonic()
        for name, due in list(self._respawn_at.items()):
            if self._stopping:
                break
            if now >= due:
                del self._respawn_at[name]
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self._say(f'respawning {name} (restart {self.restarts[name]})')
                with deferred_signals():
                    self._spawn(name, self._cmds[name])
        new_dead: dict[str, int] = {}
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is None or name in self._respawn_at or name in self.died or self._stopping:
                continue
            delay = self.respawn_delay(name)
            if delay is not None and code != 2:
                self._respawn_at[name] = now + delay
                self._say(f'node {name} exited with code {code}; respawning in {delay:g} s')
            else:
                why = ' (it could not start; not respawned)' if delay is not None else ''
                self._say(f'node {name} exited with code {code}{why}')
                self.died[name] = code
                new_dead[name] = code
        return new_dead

    def must_stop(self, dead: dict[str, int]) -> bool:
        """Whether nodes dying stop the role: a robot or replay node does; a cloud node does not while
        the role runs the robot (the robot outlives the cloud); nothing left alive does."""
        alive = [n for n, p in self.procs.items() if p.poll() is None or n in self._respawn_at]
        if not alive:
            return True
        if 'robot' in self.groups.values():
            return any(self.groups.get(n) != 'cloud' for n in dead)
        return bool(dead)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> dict[str, int]:
        """SIGTERM every node, then SIGKILL what is left after `timeout`; returns exit codes.

        SIGTERM, not SIGINT: a node stops on either the same way (runespoor_common/node_main.py), but one
        still importing its modules (no handler yet) ends silently on SIGTERM, where SIGINT would print
        a KeyboardInterrupt traceback."""
        self._stopping = True
        self._respawn_at.clear()
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)):
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
        """Run until a signal, `duration` seconds, or a node dying that stops the role (see must_stop).
        0 = clean stop, 1 = a node died for good (or exited uncleanly on the stop)."""
        stop = threading.Event()
        handlers = {}

        def on_signal(signum, _frame):
            self._say(f'got {signal.Signals(signum).name}, stopping the nodes')
            stop.set()

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, on_signal)
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while not stop.is_set():
                dead = self.supervise()
                if dead:
                    if self.must_stop(dead):
                        self._say(f'stopping the others ({", ".join(dead)} exited)')
                        break
                    self._say(f'{", ".join(dead)} gone; the robot keeps running without the cloud (it holds '
                              'its last knobs, then falls back to its safe config after knob_timeout_s)')
                if deadline is not None and time.monotonic() >= deadline:
                    break
                stop.wait(0.2)
            codes = self.stop()
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
        bad = {n: c for n, c in codes.items() if n not in self.died and c not in (0, -2, -15)}
        if bad:
            self._say(f'unclean exit codes {bad}')
        return 1 if self.died or bad else 0


def check_runners(runners: list[Runner]) -> tuple[list[str], list[str]]:
    """Validate the configuration of several runners together (the demo's cloud, robot and replay) in one
    short-lived process: see check_config. Returns (errors, warnings)."""
    files: dict[str, str] = {}
    overrides: dict[str, dict] = {}
    groups: list[str] = []
    for r in runners:
        files.update({g: str(f) for g, f in r.params_files.items()})
        groups += [g for g in graph.ROLES[r.role] if g not in groups]
        for node, vals in r.overrides().items():
            overrides.setdefault(node, {}).update(vals)
    request = {'groups': groups, 'files': files, 'overrides': overrides}
    res = subprocess.run([sys.executable, '-m', 'runespoor_common.runner', '--check-config'],
                         input=json.dumps(request), capture_output=True, text=True, env=runners[0].env)
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
        return out['errors'], out['warnings']
    except (ValueError, IndexError, KeyError):
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ['no output']
        return [f'configuration check failed (exit {res.returncode}): {tail[0]}'], []


def _graph_respawn(role: str, values: dict) -> dict[str, float]:
    """node name -> respawn delay from the graph's respawn launch arguments (none when the graph has no
    respawn description)."""
    fn = getattr(graph, 'respawn_for', None)
    return fn(role, values) if fn is not None else {}


# -- configuration check ------------------------------------------------------------------------------
def _flatten(d: dict, prefix: str = '') -> dict:
    """Nested parameter mappings (`a: {b: 1}`) -> dotted names (`a.b: 1`), as rcl reads them."""
    out = {}
    for k, v in d.items():
        key = f'{prefix}{k}'
        if isinstance(v, dict):
            out.update(_flatten(v, key + '.'))
        else:
            out[key] = v
    return out


def read_params_file(path: str | os.PathLike, nodes: list[str]) -> tuple[dict[str, dict], list[str], list[str]]:
    """A ROS parameter file (`node: {ros__parameters: {...}}`, `/**` for every node) -> node name ->
    values, errors, warnings (one line each, naming the file and the key)."""
    from runespoor_common.params import unknown_key
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        return {}, [f'{path}: cannot read the parameter file ({exc.strerror or exc})'], []
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        mark, problem = getattr(exc, 'problem_mark', None), getattr(exc, 'problem', None)
        first = (f'{f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""}{problem}' if problem
                 else ' '.join(str(exc).split())[:200] or type(exc).__name__)
        return {}, [f'{path}: not valid YAML ({first})'], []
    if doc is None:
        return {}, [], [f'{path}: empty parameter file']
    if not isinstance(doc, dict):
        return {}, [f'{path}: expected a mapping of node names, got {type(doc).__name__}'], []
    values: dict[str, dict] = {n: {} for n in nodes}
    errors, warnings = [], []
    for key, section in doc.items():
        name = str(key).strip('/')
        targets = nodes if name in ('**', '*') else [name.rsplit('/', 1)[-1]]
        if targets != nodes and targets[0] not in nodes:
            warnings.append(f'{path}: {unknown_key(str(key), nodes, "node")}; its parameters are not used')
            continue
        if not isinstance(section, dict) or 'ros__parameters' not in section:
            errors.append(f'{path}: {key}: expected a mapping with ros__parameters')
            continue
        extra = [k for k in section if k != 'ros__parameters']
        if extra:
            warnings.append(f'{path}: {key}: {unknown_key(str(extra[0]), ["ros__parameters"], "key")}; ignored')
        params = section['ros__parameters']
        if params is None:
            continue
        if not isinstance(params, dict):
            errors.append(f'{path}: {key}.ros__parameters: expected a mapping, got {type(params).__name__}')
            continue
        for t in targets:
            values[t].update(_flatten(params))
    return values, errors, warnings


def check_config(groups: list[str] | str, files: dict[str, str], overrides: dict[str, dict]
                 ) -> tuple[list[str], list[str]]:
    """The whole configuration of the nodes of `groups` (or of a role): parameter files (per group) and
    overrides (node -> values) against every node's declared parameters, then each node module's
    `check_config(values)` (values with the defaults filled in). Returns (errors, warnings), one line
    each."""
    from runespoor_common.params import check_values, unknown_key
    if isinstance(groups, str):
        groups = list(graph.ROLES[groups])
    specs = [n for n in graph.NODES if n.group in groups and not n.external]
    errors, warnings = [], []
    merged: dict[str, dict] = {s.name: {} for s in specs}
    for group, path in files.items():
        names = [s.name for s in specs if s.group == group]
        vals, e, w = read_params_file(path, names)
        errors += e
        warnings += w
        for s in specs:
            if s.group == group:
                merged[s.name].update(vals.get(s.name, {}))
    for node in overrides:
        if node not in merged:
            errors.append(f'--set {node}: {unknown_key(node, merged, "node")}')
    for spec in specs:
        try:
            mod = importlib.import_module(spec.module)
        except Exception as exc:  # noqa: BLE001 - a module that cannot even be imported
            errors.append(f'{spec.name}: cannot import {spec.module} ({type(exc).__name__}: {exc})')
            continue
        params = getattr(mod, 'PARAMS', None)
        if params is None:
            continue
        path = files.get(spec.group, '')
        file_vals = {k: v for k, v in merged[spec.name].items()}
        e, w = check_values(params, file_vals, f'{path}: {spec.name}')
        errors += e
        warnings += w
        over = overrides.get(spec.name, {})
        e, w = check_values(params, over, f'--set {spec.name}')
        errors += e
        # an override of a parameter the node does not have is a mistake, not a hint
        errors += [x.replace('; it is ignored', '') for x in w]
        if e:
            continue
        values = {p.name: p.default for p in params}
        values.update({k: v for k, v in {**file_vals, **over}.items() if k in values})
        hook = getattr(mod, 'check_config', None)
        if hook is not None and not any(x.startswith(f'{path}: {spec.name}: parameter') for x in errors):
            try:
                errors += [f'{spec.name}: {m}' for m in hook(values)]
            except Exception as exc:  # noqa: BLE001
                errors.append(f'{spec.name}: {type(exc).__name__}: {exc}')
    return errors, warnings


# -- CLI ---------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('role', choices=sorted(graph.ROLES), help='which part of the node graph to run')
    seen = set()
    for role in graph.ROLES:
        for arg in graph.launch_args_for(role):
            if arg.name in seen or arg.name.startswith('params_file') or arg.name == 'rviz':
                continue
            seen.add(arg.name)
            text = f'{arg.description} (default: {arg.default or "auto"})'
            if arg.name == 'respawn':
                text = ('restart the nodes when they exit, launch_ros respawn: true or false (default: true for '
                        'the cloud nodes in the demo role, false otherwise; a node that exits with code 2 '
                        'could not start and is not restarted)')
            parser.add_argument(f'--{arg.name.replace("_", "-")}', dest=arg.name, default=None, help=text)
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
    try:
        respawn = _graph_respawn(args.role, values)
    except ValueError as exc:
        raise SystemExit(f'runespoor launch: {exc}')
    runner = Runner(args.role, values, params_files=files, single_process_cloud=args.single_process,
                    param_sets=parse_sets(args.set), domain_id=args.domain_id, respawn=respawn)
    errors, warnings = runner.check()
    for w in warnings:
        print(f'runespoor launch: warning: {w}', flush=True)
    if errors:
        for e in errors:
            print(f'runespoor launch: error: {e}', file=sys.stderr, flush=True)
        return 2
    print(f'runespoor launch {args.role}: ROS_DOMAIN_ID={runner.domain_id}, discovery LOCALHOST; '
          f'nodes: {", ".join(runner.commands())}'
          + (f'; respawn: {", ".join(f"{n} after {d:g} s" for n, d in runner.respawn.items())}'
             if runner.respawn else ''), flush=True)
    runner.start()
    return runner.wait(args.duration)


def _check_main() -> int:
    """`python -m runespoor_common.runner --check-config` < {"role", "files", "overrides"} (JSON) -> one
    line of JSON {"errors", "warnings"} (what Runner.check runs, in a process of its own)."""
    req = json.loads(sys.stdin.read())
    import logging
    logging.disable(logging.WARNING)
    errors, warnings = check_config(req.get('groups') or req['role'], req['files'], req['overrides'])
    sys.stdout.flush()
    print(json.dumps({'errors': errors, 'warnings': warnings}), flush=True)
    return 0


if __name__ == '__main__':
    if sys.argv[1:] == ['--check-config']:
        sys.exit(_check_main())
    sys.exit('usage: python -m runespoor_common.runner --check-config < request.json')
