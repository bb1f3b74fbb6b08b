"""The `runespoor` command: one entry point, one subcommand per job.

Each subcommand lives in its own module, imported lazily (so `runespoor --help` is fast and a missing
optional dependency only breaks its own subcommand). A subcommand module provides::

    def add_arguments(parser: argparse.ArgumentParser) -> None   # declare flags (and sub-subparsers)
    def run(args: argparse.Namespace) -> int                     # do the work, return an exit code

Errors are one line: a bad input (a ValueError such as ProfileError, BagError, ModelFileError,
ParameterError, or a missing file) is printed as `runespoor <command>: error: <what and where>` with exit
code 2, anything else as `runespoor <command>: unexpected <type>: ...` with exit code 1; `--debug`
(anywhere on the line, or RUNESPOOR_DEBUG=1) shows the traceback instead. Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

#: subcommand -> (module, one-line help). The only list of subcommands.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'launch': ('runespoor_common.runner', 'run the robot, cloud or demo node graph as processes (pip mode)'),
    'bag': ('runespoor_tools.bag', 'convert data sets / video to rosbag2, play and record bags'),
    'train': ('runespoor_tools.train', 'train the SR, ASR and CloudSeg restoration models'),
    'eval': ('runespoor_tools.evaluate', 'evaluate restoration methods x scales on a data set split'),
    'report': ('runespoor_tools.report', 'Markdown tables and figures from metrics.json files'),
    'profile': ('runespoor_tools.profile', 'tail-aware offline profiling: write the CAC profile'),
    'bench': ('runespoor_tools.bench', 'benchmark edge, cloud, transport and control latencies'),
    'demo': ('runespoor_tools.demo', 'the main job end to end on a replayed sequence'),
    'ros': ('runespoor_tools.ros', 'the ros2 verbs on rclpy for the pip-only route: node list, topic list/echo/hz, '
                                   'param get/set/dump'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='runespoor',
        description='Runespoor: edge-cloud video analytics for robots that keeps the tail.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    argv = sys.argv[1:]
    wanted = next((a for a in argv if not a.startswith('-')), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the module that will run
            mod = _load(name, module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def _load(name: str, module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            sys.exit(f'runespoor {name}: not available in this build ({module} is missing)')
        raise


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv[1:] = argv
    debug = '--debug' in sys.argv[1:] or os.environ.get('RUNESPOOR_DEBUG', '') not in ('', '0')
    sys.argv[1:] = [a for a in sys.argv[1:] if a != '--debug']
    parser = build_parser()
    args = parser.parse_args()
    if not getattr(args, '_run', None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f'runespoor {args.command}: interrupted', file=sys.stderr)
        return 130
    except BrokenPipeError:   # `runespoor ros topic echo ... | head`: the reader left, nothing failed
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug for the traceback
        if debug:
            raise
        text = ' '.join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)):
            print(f'runespoor {args.command}: error: {text}', file=sys.stderr)
            return 2
        print(f'runespoor {args.command}: unexpected {type(exc).__name__}: {text} (--debug shows the traceback)',
              file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
