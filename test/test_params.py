"""Parameters load from YAML and from overrides; invalid values are rejected with a reason."""
import pytest
import yaml

from runespoor_common.params import Param, ParameterError, declare, in_range, one_of

pytestmark = pytest.mark.ros

SPECS = [
    Param('scale', 4, 'downsampling factor', one_of(1, 2, 4, 6, 8)),
    Param('jpeg_quality', 90, 'JPEG quality', in_range(40, 95)),
    Param('bandwidth_kbps', 10000.0, 'uplink budget [kbit/s]', in_range(0.0, 1e7)),
    Param('device', 'cpu', 'torch device', one_of('cpu', 'cuda')),
]


def make_node(ctx, args):
    import rclpy
    from rclpy.node import Node
    changes = []
    node = Node('param_test', context=ctx, cli_args=args)
    values = declare(node, SPECS, on_change=changes.append)
    return node, values, changes


def test_yaml_then_override_then_runtime_set(tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter
    f = tmp_path / 'p.yaml'
    f.write_text(yaml.safe_dump({'param_test': {'ros__parameters': {'scale': 2, 'jpeg_quality': 70}}}))
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        node, values, changes = make_node(ctx, ['--ros-args', '--params-file', str(f),
                                                '-p', 'jpeg_quality:=60'])
        assert values['scale'] == 2            # from the YAML file
        assert values['jpeg_quality'] == 60    # the override wins over the file
        assert values['device'] == 'cpu'       # default
        ok = node.set_parameters([Parameter('scale', value=8)])[0]
        assert ok.successful and values['scale'] == 8 and changes == [{'scale': 8}]
        bad = node.set_parameters([Parameter('scale', value=3)])[0]
        assert not bad.successful and 'scale' in bad.reason and 'one of' in bad.reason
        bad = node.set_parameters([Parameter('jpeg_quality', value=120)])[0]
        assert not bad.successful and '[40, 95]' in bad.reason
        bad = node.set_parameters([Parameter('bandwidth_kbps', value=float('nan'))])[0]
        assert not bad.successful and 'finite' in bad.reason
        assert values['scale'] == 8 and values['jpeg_quality'] == 60   # rejected values not applied
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_invalid_start_value_stops_with_reason(tmp_path):
    import rclpy
    from rclpy.context import Context
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        with pytest.raises(ParameterError, match="'device'.*one of"):
            make_node(ctx, ['--ros-args', '-p', 'device:=tpu'])
    finally:
        rclpy.try_shutdown(context=ctx)


def test_size_values_for_warmup():
    from runespoor_common.params import parse_size, size_check
    assert parse_size('480x360') == (480, 360) and parse_size(' 1024X512 ') == (1024, 512)
    assert parse_size('none') is None and parse_size('') is None
    for bad in ('480', '480x', 'x360', '0x10', '99999x10', 'axb'):
        with pytest.raises(ValueError):
            parse_size(bad)
        assert size_check(bad)
    assert size_check('native') is None and size_check('none') is None and size_check('32x24') is None


def test_warmup_size_native_is_the_data_sets_size():
    from runespoor_cloud.serving import warmup_size
    assert warmup_size('native', 'camvid') == (480, 360)
    assert warmup_size('native', 'cityscapes') == (1024, 512)
    assert warmup_size('none', 'camvid') is None and warmup_size('64x48', 'camvid') == (64, 48)
