"""Bad files at start-up: missing / truncated / mismatched weight files, malformed profile YAML, corrupt or
truncated bags. The loaders raise a specific error naming the file; the nodes exit with code 2 and log
'cannot start: <file>: ...' instead of a traceback (one node process per kind of file)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runespoor_cloud.controller import ProfileError, load_profile
from runespoor_cloud.models import ModelFileError, build, save_checkpoint
from runespoor_cloud.restore import Restorer, weight_path
from runespoor_edge import bagio

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent


def run_node(module: str, *params: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, '-m', module, '--ros-args'] + [a for p in params for a in ('-p', p)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def tiny_carn(path: Path, scale: int, channels: int = 8) -> Path:
    model = build('carn', scale=scale, channels=channels)
    return save_checkpoint(path, model, 'carn', {'scale': scale, 'channels': channels})


# ------------------------------------------------------------------ weight files
@pytest.fixture
def weights(tmp_path) -> Path:
    return tmp_path / 'weights'


def test_weight_file_missing_truncated_mismatched(weights):
    path = weight_path(weights, 'camvid', 'asr', 4)
    with pytest.raises(ModelFileError, match=f'{path}: model file is missing'):
        Restorer({4: 'asr'}, weights_dir=weights)
    tiny_carn(path, 4)
    Restorer({4: 'asr'}, weights_dir=weights)  # the intact file loads
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=f'{path}: truncated or unreadable model file'):
        Restorer({4: 'asr'}, weights_dir=weights)
    path.write_bytes(b'not a checkpoint at all')
    with pytest.raises(ModelFileError, match=f'{path}: truncated or unreadable'):
        Restorer({4: 'asr'}, weights_dir=weights)
    tiny_carn(path, 2)  # an x2 model saved as the x4 file
    with pytest.raises(ModelFileError, match=f'{path}: model upsamples x2, expected x4'):
        Restorer({4: 'asr'}, weights_dir=weights)
    # weights of another width under the right model_args
    ckpt = torch.load(tiny_carn(path, 4, channels=8), weights_only=True)
    ckpt['model_args']['channels'] = 16
    torch.save(ckpt, path)
    with pytest.raises(ModelFileError, match=f'{path}: weights do not fit CARN: .*wrong shapes'):
        Restorer({4: 'asr'}, weights_dir=weights)
    torch.save({'state_dict': {}}, path)
    with pytest.raises(ModelFileError, match=f'{path}: not a Runespoor checkpoint'):
        Restorer({4: 'asr'}, weights_dir=weights)


@pytest.mark.ros
def test_restorer_node_exits_2_naming_truncated_weight_file(weights):
    path = tiny_carn(weight_path(weights, 'camvid', 'asr', 4), 4)
    path.write_bytes(path.read_bytes()[:1000])
    res = run_node('runespoor_cloud.restorer_node', f'weights_dir:={weights}', "methods:='4:asr,8:bilinear'")
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert f'cannot start: {path}: truncated or unreadable model file' in out
    assert 'Traceback' not in out


# ------------------------------------------------------------------ profiles
GOOD_PROFILE = """dataset: camvid
frame_rate: 10.0
levels:
  - bandwidth_kbps: 2000.0
    standard: {scale: 4, jpeg_quality: 90}
    tail: {scale: 2, jpeg_quality: 50}
"""


@pytest.mark.parametrize('text, problem', [
    ('levels: [\n  - {bandwidth_kbps: 1\n', 'not valid YAML'),
    ('just a string', 'top level must be a mapping'),
    ('dataset: camvid\nlevels: []\n', 'non-empty list "levels"'),
    (GOOD_PROFILE.replace('scale: 4', 'scale: 3'), r'levels\[0\].standard: scale 3 is not one of'),
    (GOOD_PROFILE.replace('jpeg_quality: 90', 'jpeg_quality: 900'), 'jpeg_quality 900 outside'),
    (GOOD_PROFILE.replace('2000.0', '.nan'), r'levels\[0\].bandwidth_kbps must be a positive number'),
    (GOOD_PROFILE.replace('frame_rate: 10.0', 'frame_rate: .inf'), 'frame_rate inf must be finite'),
    (GOOD_PROFILE.replace('tail: {scale: 2, jpeg_quality: 50}', 'tail: 7'), r'levels\[0\].tail: expected'),
    (GOOD_PROFILE[:60], 'levels'),  # truncated file
    (b'\xff\xfe\x00garbage', 'not valid YAML'),
])
def test_malformed_profile_names_the_file(tmp_path, text, problem):
    path = tmp_path / 'bad.yaml'
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ProfileError, match=f'profile {path}: .*{problem}'):
        load_profile(path)


def test_missing_profile_names_the_file(tmp_path):
    with pytest.raises(ProfileError, match=f'profile {tmp_path}/nope.yaml: file not found'):
        load_profile(tmp_path / 'nope.yaml')
    (tmp_path / 'ok.yaml').write_text(GOOD_PROFILE)
    assert load_profile(tmp_path / 'ok.yaml').levels[0].tail.scale == 2


@pytest.mark.ros
def test_controller_node_exits_2_naming_malformed_profile(tmp_path):
    path = tmp_path / 'broken.yaml'
    path.write_text('levels: [\n  - {bandwidth_kbps: 1\n')
    res = run_node('runespoor_cloud.controller_node', f'profile:={path}')
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert f'cannot start: profile {path}: not valid YAML' in out and 'Traceback' not in out


# ------------------------------------------------------------------ bags
@pytest.fixture(scope='module')
def good_bags(tmp_path_factory, ):
    shared = REPO.parent / 'shared' / 'data' / 'camvid'
    assert shared.is_dir(), f'{shared} is missing'
    root = tmp_path_factory.mktemp('bags')
    return {s: bagio.convert('camvid', shared, root / s, split='val', storage=s, limit=2, progress=False)
            for s in ('mcap', 'sqlite3')}


def _storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.name != 'metadata.yaml')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'no_metadata', 'bad_metadata'])
def test_corrupt_bag_names_the_bag(good_bags, tmp_path, storage, damage):
    import shutil
    bag = tmp_path / 'bag'
    shutil.copytree(good_bags[storage]['path'], bag)
    f = _storage_file(bag)
    if damage == 'truncated':
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == 'garbage':
        f.write_bytes(b'garbage' * 100)
    elif damage == 'no_metadata':
        (bag / 'metadata.yaml').unlink()
    else:
        (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: [unclosed\n')
    with pytest.raises(bagio.BagError, match=str(bag)):
        bagio.BagPlayback(bag, ['/camera/image_raw'])
    with pytest.raises(bagio.BagError, match=str(bag)):
        bagio.bag_summary(bag)


@pytest.mark.ros
def test_bag_player_exits_2_naming_truncated_bag(good_bags, tmp_path):
    import shutil
    bag = tmp_path / 'bag'
    shutil.copytree(good_bags['mcap']['path'], bag)
    f = _storage_file(bag)
    f.write_bytes(f.read_bytes()[:5000])
    res = run_node('runespoor_edge.bag_player_node', f'bag:={bag}')
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert f'cannot start: {bag}: corrupt or truncated bag' in out and 'Traceback' not in out
