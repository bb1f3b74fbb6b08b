"""One node graph: launch files, runner, installed executables and CLI all derive from graph.py."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from runespoor_common import graph
from runespoor_common.runner import Runner, node_command

REPO = Path(__file__).resolve().parent.parent


def test_every_module_in_the_graph_exists_and_has_main():
    import importlib.util
    for spec in list(graph.NODES) + [graph.CLOUD_SINGLE_PROCESS]:
        if spec.external:
            continue
        path = REPO / (spec.module.replace('.', '/') + '.py')
        assert path.is_file(), f'{spec.name}: {path} missing'
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == 'main' for n in tree.body), spec.module


def test_launch_files_use_the_graph_and_list_no_nodes():
    for role in graph.ROLES:
        text = (REPO / 'launch' / f'{role}.launch.py').read_text()
        assert f"generate('{role}')" in text
        for spec in graph.NODES:
            assert spec.module not in text  # nodes come from graph.py only


def test_generated_executables_match_the_graph(tmp_path):
    subprocess.run([sys.executable, str(REPO / 'tools' / 'gen_scripts.py'), str(tmp_path)], check=True)
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted({s.executable for s in graph.NODES if not s.external}
                      | {graph.CLOUD_SINGLE_PROCESS.executable} | set(graph.EXECUTABLE_ALIASES))
    assert names == expected
    assert graph.EXECUTABLE_ALIASES['streamer_node'] == 'edge_streamer'  # named after the node


def test_runner_commands_carry_params_namespace_and_typed_overrides():
    r = Runner('demo', {'namespace': 'robot1', 'bandwidth': '5000', 'device': 'cpu', 'data_root': ''},
               param_sets={'edge_streamer': {'jpeg_quality': 70}}, domain_id=42)
    cmds = r.commands()
    assert list(cmds) == ['restorer', 'segmentation', 'tail_detector', 'cac_controller',
                          'edge_streamer', 'bag_player']
    edge = cmds['edge_streamer']
    assert edge[:3] == [sys.executable, '-m', 'runespoor_edge.streamer_node']
    assert '__node:=edge_streamer' in edge and '__ns:=/robot1' in edge
    assert 'bandwidth_kbps:=5000.0' in edge and 'jpeg_quality:=70' in edge
    assert str(REPO / 'config' / 'robot.yaml') in edge
    assert 'device:=cpu' in cmds['restorer'] and not any('data_root' in a for a in cmds['segmentation'])
    with_dirs = Runner('cloud', {'data_root': '/d', 'model_dir': '/m', 'device': 'cpu'})
    assert with_dirs.env['RUNESPOOR_DATA'] == '/d' and with_dirs.env['RUNESPOOR_MODELS'] == '/m'
    assert r.env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST' and r.env['ROS_DOMAIN_ID'] == '42'
    single = Runner('cloud', {'device': 'cuda'}, single_process_cloud=True).commands()
    assert list(single) == ['cloud']
    assert 'restorer:device:=cuda' in single['cloud'] and 'segmentation:device:=cuda' in single['cloud']


def test_runner_picks_its_own_domain_unless_told(monkeypatch):
    monkeypatch.delenv('ROS_DOMAIN_ID')
    ids = {Runner('robot').domain_id for _ in range(20)}
    assert len(ids) > 1 and all(20 <= i <= 99 for i in ids)
    monkeypatch.setenv('ROS_DOMAIN_ID', '33')
    assert Runner('robot').domain_id == 33
    assert Runner('robot', domain_id=55).domain_id == 55


def test_cli_help_for_every_subcommand():
    from runespoor_tools.cli import SUBCOMMANDS
    exe = [sys.executable, '-m', 'runespoor_tools.cli']
    out = subprocess.run(exe + ['--help'], capture_output=True, text=True, check=True).stdout
    for name in SUBCOMMANDS:
        assert name in out
        res = subprocess.run(exe + [name, '--help'], capture_output=True, text=True)
        assert res.returncode == 0, f'runespoor {name} --help: {res.stderr[-500:]}'


def test_launch_files_with_launch_ros():
    """Runs the real launch files' generate_launch_description() when launch/launch_ros exist."""
    pytest.importorskip('launch_ros', reason='launch/launch_ros are not installable from PyPI here; '
                        'the colcon route (README) exercises them')
    from launch import LaunchDescription
    from launch_ros.actions import Node
    import importlib.util
    for role in graph.ROLES:
        spec = importlib.util.spec_from_file_location(role, REPO / 'launch' / f'{role}.launch.py')
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        ld = mod.generate_launch_description()
        assert isinstance(ld, LaunchDescription)
        nodes = [a for a in ld.entities if isinstance(a, Node)]
        assert len(nodes) == len(graph.nodes_for(role))
