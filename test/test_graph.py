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


def test_launch_files_with_launch_ros(monkeypatch, tmp_path):
    """The real launch files' generate_launch_description() and the nodes they create, with no
    AMENT_PREFIX_PATH (the project never needs it). The launch system comes from ../shared/ros2-kit
    (`make setup`); the launches themselves run in test_launch_roles.py."""
    if (REPO.parent / 'shared' / 'ros2-kit').is_dir():
        import launch_ros  # noqa: F401  (make setup installs the kit when it is beside the checkout)
    else:
        pytest.importorskip('launch_ros', reason='no launch_ros: ../shared/ros2-kit is not beside the checkout')
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node
    from runespoor_common import launch_gen
    import importlib.util
    monkeypatch.delenv('AMENT_PREFIX_PATH', raising=False)
    bag = tmp_path / 'bag'
    bag.mkdir()
    for role in graph.ROLES:
        spec = importlib.util.spec_from_file_location(role, REPO / 'launch' / f'{role}.launch.py')
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        ld = mod.generate_launch_description()
        assert isinstance(ld, LaunchDescription)
        declared = {a.name: a.default_value for a in ld.entities if isinstance(a, DeclareLaunchArgument)}
        assert list(declared) == [a.name for a in graph.launch_args_for(role)]
        values = {a.name: a.default.format(share=REPO) for a in graph.launch_args_for(role)}
        values.update(bag=str(bag))
        nodes = launch_gen.node_actions(role, values)
        assert all(isinstance(n, Node) for n in nodes)
        assert len(nodes) == len(graph.nodes_for(role, include_external=False))  # rviz off by default
        assert str(REPO / 'config') in declared[graph.params_file_arg(role, graph.ROLES[role][0])][0].text


def test_respawn_defaults():
    """Respawn (launch_ros semantics): on by default for the cloud nodes in the demo, off elsewhere."""
    assert graph.respawn_for('demo', {}) == {n: graph.RESPAWN_DELAY_S for n in
                                             ('restorer', 'segmentation', 'tail_detector', 'cac_controller')}
    assert graph.respawn_for('demo', {'respawn': 'false'}) == {}
    assert graph.respawn_for('cloud', {}) == {} and graph.respawn_for('robot', {}) == {}
    assert graph.respawn_for('robot', {'respawn': 'true', 'respawn_delay': '0.5'}) == {'edge_streamer': 0.5}
    with pytest.raises(ValueError):
        graph.respawn_for('robot', {'respawn': 'maybe'})
    with pytest.raises(ValueError):
        graph.respawn_for('robot', {'respawn': 'true', 'respawn_delay': '-1'})


def test_parameter_arguments_default_to_the_parameter_file():
    """An argument that sets a parameter defaults to '' (the file decides) in both front ends, so a custom
    params_file is never overridden by a launch default."""
    for role in graph.ROLES:
        for a in graph.launch_args_for(role):
            if a.sets:
                assert a.default == '', a
        assert graph.overrides_for(role, {a.name: a.default for a in graph.launch_args_for(role)}) == {}
