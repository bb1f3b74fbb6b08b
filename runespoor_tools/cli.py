"""The `runespoor` command: one entry point, one subcommand per job.

Each subcommand lives in its own module, imported lazily (so `runespoor --help` is fast and a missing
optional dependency only breaks its own subcommand). A subcommand module provides::

    def add_arguments(parser: argparse.ArgumentParser) -> None   # declare flags (and sub-subparsers)
    def run(args: argparse.Namespace) -> int                     # do the work, return an exit code
"""
from __future__ import annotations

import argparse
import importlib
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
    parser = build_parser()
    args = parser.parse_args()
    if not getattr(args, '_run', None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
