"""Bag tools without ROS: conversion of the shared CamVid / Cityscapes / video data, metadata, MCAP
schemas of the project's own types, and the replay timing logic."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from runespoor_common.datasets import label_lut
from runespoor_edge import bagio

REPO = Path(__file__).resolve().parent.parent
REPO_CLI = [sys.executable, '-m', 'runespoor_tools.cli', 'bag']


def read_all(bag):
    """topic -> list of (log time ns, deserialized message)."""
    ts = bagio.typestore()
    out = {}
    reader = bagio.open_reader(bag)
    try:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, ts.deserialize_cdr(raw, conn.msgtype)))
    finally:
        reader.close()
    return out


def pixels(msg):
    ch = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}[msg.encoding]
    arr = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, ch)
    return arr[:, :, 0] if ch == 1 else arr


def stamp_ns(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.fixture(scope='module')
def camvid_val_bag(tmp_path_factory):
    """The 'done when' command itself: runespoor bag convert --format camvid ... --split val."""
    out = tmp_path_factory.mktemp('bags') / 'camvid_val'
    res = subprocess.run(REPO_CLI + ['convert', '--format', 'camvid', '--input', '../shared/data/camvid',
                                     '--split', 'val', '--out', str(out), '--quiet'],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert '/camera/image_raw | Type: sensor_msgs/msg/Image | Count: 101' in res.stdout
    return out


def test_camvid_val_conversion(camvid_val_bag, shared_dir):
    msgs = read_all(camvid_val_bag)
    assert len(msgs['/camera/image_raw']) == 101 and len(msgs['/camera/labels']) == 101
    names = sorted(p.name for p in (shared_dir / 'data/camvid/val').glob('*.png'))
    numbers = [int(n.split('_')[1][:-4]) for n in names]
    imgs, labs = msgs['/camera/image_raw'], msgs['/camera/labels']
    # stamps: from the 30 fps original numbering, image and label share them, log time = stamp
    st = [stamp_ns(m) for _, m in imgs]
    assert st[0] == 1_000_000_000
    assert st == [round(1e9 + (n - numbers[0]) * 1e9 / 30) for n in numbers]
    assert [stamp_ns(m) for _, m in labs] == st and [t for t, _ in imgs] == st
    for i in (0, 50, 100):
        m = imgs[i][1]
        assert (m.encoding, m.width, m.height, m.step) == ('rgb8', 480, 360, 1440)
        ref = cv2.cvtColor(cv2.imread(str(shared_dir / 'data/camvid/val' / names[i])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(pixels(m), ref)
        lab = labs[i][1]
        assert lab.encoding == 'mono8'
        ref_lab = cv2.imread(str(shared_dir / 'data/camvid/valannot' / names[i]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(pixels(lab), ref_lab)          # as given: CamVid ids, 11 = void
    info = bagio.bag_summary(camvid_val_bag)
    assert (info['frames'], info['label_frames'], info['width'], info['height']) == (101, 101, 480, 360)
    assert info['fps'] == pytest.approx(15.0) and info['labels'] == 'camvid_ids' and info['dataset'] == 'camvid'


def test_metadata_yaml_for_ros2_bag_info(camvid_val_bag):
    meta = yaml.safe_load((camvid_val_bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['version'] == 9 and meta['storage_identifier'] == 'mcap'
    assert meta['relative_file_paths'] == ['camvid_val.mcap'] and (camvid_val_bag / 'camvid_val.mcap').is_file()
    assert meta['message_count'] == 202
    assert meta['duration']['nanoseconds'] == round(100 * 2 * 1e9 / 30)
    assert meta['starting_time']['nanoseconds_since_epoch'] == 1_000_000_000
    topics = {t['topic_metadata']['name']: t for t in meta['topics_with_message_count']}
    assert topics['/camera/labels']['message_count'] == 101
    assert topics['/camera/image_raw']['topic_metadata']['type'] == 'sensor_msgs/msg/Image'
    assert topics['/camera/image_raw']['topic_metadata']['type_description_hash'].startswith('RIHS01_')
    assert meta['files'][0]['message_count'] == 202
    assert meta['custom_data']['runespoor.labels'] == 'camvid_ids'


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_cityscapes_sample_conversion(tmp_path, shared_dir, storage):
    root = shared_dir / 'data' / 'cityscapes'
    info = bagio.convert('cityscapes', root, tmp_path / 'cs', split='val', storage=storage, progress=False)
    assert (info['frames'], info['label_frames'], info['width'], info['height']) == (1, 1, 2048, 1024)
    assert info['labels'] == 'cityscapes_labelIds' and info['fps'] == pytest.approx(17.0)
    msgs = read_all(tmp_path / 'cs')
    img, lab = msgs['/camera/image_raw'][0][1], msgs['/camera/labels'][0][1]
    ref = cv2.cvtColor(cv2.imread(str(root / 'leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png')),
                       cv2.COLOR_BGR2RGB)
    assert np.array_equal(pixels(img), ref) and stamp_ns(img) == stamp_ns(lab)
    from PIL import Image
    with Image.open(root / 'gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png') as im:
        ref_lab = np.asarray(im)
    got = pixels(lab)
    assert np.array_equal(got, ref_lab) and got.max() <= 33 and 7 in got  # label ids, not train ids (road=7)
    assert label_lut('cityscapes_labelIds')[7] == 0 and label_lut('cityscapes_labelIds')[0] == 255


def test_cityscapes_sequence_layout(tmp_path):
    """leftImg8bit_sequence at 17 fps, grouped per city_sequence, labels only where gtFine has them."""
    root = tmp_path / 'cs'
    rng = np.random.default_rng(0)
    for seq, frames in (('000001', range(10, 14)), ('000000', range(0, 3))):
        d = root / 'leftImg8bit_sequence/val/aachen'
        d.mkdir(parents=True, exist_ok=True)
        for f in frames:
            cv2.imwrite(str(d / f'aachen_{seq}_{f:06d}_leftImg8bit.png'), rng.integers(0, 255, (16, 32, 3), np.uint8))
    g = root / 'gtFine/val/aachen'
    g.mkdir(parents=True)
    cv2.imwrite(str(g / 'aachen_000001_000012_gtFine_labelIds.png'), np.full((16, 32), 26, np.uint8))
    info = bagio.convert('cityscapes', root, tmp_path / 'bag', split='val', progress=False)
    assert (info['frames'], info['label_frames']) == (7, 1)
    msgs = read_all(tmp_path / 'bag')
    st = [stamp_ns(m) for _, m in msgs['/camera/image_raw']]
    # aachen_000000 frames 0-2, then aachen_000001 frames 10-13 one frame step later
    assert st[0] == 1_000_000_000 and np.allclose(np.diff(st), 1e9 / 17, atol=1)
    assert stamp_ns(msgs['/camera/labels'][0][1]) == st[5]  # frame 12 of sequence 000001
    with pytest.raises(bagio.BagError, match='no Cityscapes sequence or city'):
        bagio.convert('cityscapes', root, tmp_path / 'bag2', split='val', sequence='bremen', progress=False)


def test_camvid_groups_sequences_and_orders_frames(tmp_path):
    root = tmp_path / 'camvid'
    for d in ('test', 'testannot'):
        (root / d).mkdir(parents=True)
    names = ['Seq05VD_f00030.png', '0001TP_006690.png', 'Seq05VD_f00000.png', '0001TP_006720.png',
             '0001TP_006660.png']
    for n in names:
        cv2.imwrite(str(root / 'test' / n), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(root / 'testannot' / n), np.full((8, 8), 3, np.uint8))
    plan = bagio.make_plan('camvid', root, 'test')
    assert [f.name for f in plan.frames] == ['0001TP_006660', '0001TP_006690', '0001TP_006720',
                                             'Seq05VD_f00000', 'Seq05VD_f00030']
    assert np.diff([f.stamp_ns for f in plan.frames]).tolist() == [10 ** 9] * 4  # 30 frames at 30 fps = 1 s
    assert plan.sequences == ('0001TP', 'Seq05VD')
    with pytest.raises(bagio.BagError, match="sequence 'XYZ' not in"):
        bagio.make_plan('camvid', root, 'test', sequence='XYZ')
    with pytest.raises(bagio.BagError, match='CamVid split folder'):
        bagio.make_plan('camvid', root, 'val')
    (root / 'testannot' / names[0]).unlink()
    with pytest.raises(bagio.BagError, match='missing'):
        bagio.make_plan('camvid', root, 'test')


def test_video_conversion(tmp_path, shared_dir):
    info = bagio.convert('video', shared_dir / 'data/video/solidWhiteRight.mp4', tmp_path / 'v', limit=10,
                         encoding='bgr8', progress=False)
    assert (info['frames'], info['label_frames'], info['width'], info['height']) == (10, 0, 960, 540)
    assert info['fps'] == pytest.approx(25.0) and not info['has_labels']
    msgs = read_all(tmp_path / 'v')
    assert '/camera/labels' not in msgs
    st = [stamp_ns(m) for _, m in msgs['/camera/image_raw']]
    assert np.diff(st).tolist() == [40_000_000] * 9 and msgs['/camera/image_raw'][0][1].encoding == 'bgr8'
    cap = cv2.VideoCapture(str(shared_dir / 'data/video/solidWhiteRight.mp4'))
    ok, first = cap.read()
    cap.release()
    assert ok and np.array_equal(pixels(msgs['/camera/image_raw'][0][1]), first)


def test_convert_refuses_existing_output_and_bad_input(tmp_path, shared_dir):
    (tmp_path / 'x').mkdir()
    with pytest.raises(bagio.BagError, match='exists already'):
        bagio.convert('camvid', shared_dir / 'data/camvid', tmp_path / 'x', split='val', progress=False)
    with pytest.raises(bagio.BagError, match='cannot open video'):
        bagio.convert('video', tmp_path / 'nope.mp4', tmp_path / 'y', progress=False)
    assert not (tmp_path / 'y').exists() and not list(tmp_path.glob('.y.*'))
    res = subprocess.run(REPO_CLI + ['convert', '--format', 'camvid', '--input', str(shared_dir / 'data/camvid'),
                                     '--split', 'test', '--out', str(tmp_path / 'z')],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 2 and 'CamVid split folder' in res.stderr and 'Traceback' not in res.stderr


def test_project_types_have_schemas_in_mcap(tmp_path):
    """A bag with runespoor/msg/EncodedFrame carries its full definition (nested KnobConfig included)."""
    ts = bagio.typestore()
    EncodedFrame = ts.types['runespoor/msg/EncodedFrame']
    K = ts.types['runespoor/msg/KnobConfig']
    T = ts.types['builtin_interfaces/msg/Time']
    H = ts.types['std_msgs/msg/Header']
    C = ts.types['sensor_msgs/msg/CompressedImage']
    msg = EncodedFrame(header=H(stamp=T(sec=5, nanosec=7), frame_id='camera'), seq=3, session_id=9,
                       source_width=480, source_height=360,
                       knobs=K(scale=2, jpeg_quality=70, frame_rate=0.0, tail_mode=True, bandwidth_kbps=2000.0,
                               config_id='2000kbps/tail', reason='r', stamp=T(sec=0, nanosec=0)),
                       image=C(header=H(stamp=T(sec=5, nanosec=7), frame_id='camera'), format='jpeg',
                               data=np.frombuffer(b'\xff\xd8abc\xff\xd9', np.uint8)),
                       send_stamp=T(sec=6, nanosec=0), queue_delay_ms=1.5)
    w = bagio.open_writer(tmp_path / 'b')
    w.open()
    conn = w.add_connection('/runespoor/uplink', 'runespoor/msg/EncodedFrame', typestore=ts)
    w.write(conn, 5_000_000_007, ts.serialize_cdr(msg, 'runespoor/msg/EncodedFrame'))
    w.close()
    reader = bagio.open_reader(tmp_path / 'b')
    conn = reader.connections[0]
    assert 'KnobConfig knobs' in conn.msgdef.data and 'MSG: runespoor/KnobConfig' in conn.msgdef.data
    (c, t, raw), = list(reader.messages())
    back = ts.deserialize_cdr(raw, c.msgtype)
    reader.close()
    assert back.knobs.config_id == '2000kbps/tail' and bytes(back.image.data) == b'\xff\xd8abc\xff\xd9'
    assert bagio.has_header('runespoor/msg/EncodedFrame') and not bagio.has_header('runespoor/msg/KnobConfig')
    assert bagio.cdr_stamp_ns(bagio.restamp_cdr(raw, 42_000_000_123)) == 42_000_000_123


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += dt


def test_playback_timing_rate_offset_loop_restamp(camvid_val_bag):
    clock = FakeClock()
    pb = bagio.BagPlayback(camvid_val_bag, ['/camera/image_raw', '/camera/labels'], rate=2.0,
                           start_offset=1.0, loop=True, restamp=True, clock=clock, now_ns=lambda: 500 * 10 ** 9)
    got = []
    stop = lambda: len(got) >= 2 * 2 * 86  # noqa: E731  two passes of frames >= 1 s
    pb.play(lambda it: got.append((clock.t, it.topic, bagio.cdr_stamp_ns(it.data), it.bag_time_ns)), stop=stop,
            sleep=clock.sleep)
    imgs = [g for g in got if g[1] == '/camera/image_raw']
    labs = [g for g in got if g[1] == '/camera/labels']
    first_bag = 1_000_000_000 + 1_000_000_000
    # the offset skips the first second: first frame at >= 2.0 s in bag time (frame 15 of 0016E5)
    assert imgs[0][3] >= first_bag and imgs[0][3] - first_bag < 70_000_000
    # rate 2: bag gaps of 66.7 ms are published 33.3 ms apart (and restamped alike)
    # ... also across the loop boundary (the next pass starts one frame step after the last frame)
    assert len(imgs) > 86
    gaps = np.diff([g[0] for g in imgs])
    assert np.allclose(gaps, 1 / 30, atol=0.002)
    assert np.allclose(np.diff([g[2] for g in imgs]), 1e9 / 30, atol=2)
    # restamped onto now_ns, images and labels keep sharing stamps, stamps keep increasing across the loop
    assert imgs[0][2] == 500 * 10 ** 9 + (imgs[0][3] - first_bag) // 2
    assert [g[2] for g in imgs] == [g[2] for g in labs]
    assert all(b > a for a, b in zip([g[2] for g in imgs], [g[2] for g in imgs][1:]))
    assert pb.loops_done >= 1 and len(imgs) > 86


def test_playback_rejects_bad_settings(camvid_val_bag):
    with pytest.raises(bagio.BagError, match='rate'):
        bagio.BagPlayback(camvid_val_bag, rate=0)
    with pytest.raises(bagio.BagError, match='past the end'):
        bagio.BagPlayback(camvid_val_bag, start_offset=60)
    with pytest.raises(bagio.BagError, match='not in'):
        bagio.BagPlayback(camvid_val_bag, ['/nope'])
    with pytest.raises(bagio.BagError, match='not a rosbag2 folder'):
        bagio.BagPlayback(camvid_val_bag / 'camvid_val.mcap')


def test_cli_info_json(camvid_val_bag):
    import json
    res = subprocess.run(REPO_CLI + ['info', str(camvid_val_bag), '--json'], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info['topics']['/camera/labels']['count'] == 101 and info['fps'] == pytest.approx(15.0)


def test_one_frame_bag_loops_at_its_frame_rate(tmp_path, shared_dir):
    bag = tmp_path / 'cs'
    bagio.convert('cityscapes', shared_dir / 'data/cityscapes', bag, split='val', progress=False)
    clock = FakeClock()
    pb = bagio.BagPlayback(bag, ['/camera/image_raw'], loop=True, restamp=True, clock=clock, now_ns=lambda: 0)
    got = []
    pb.play(lambda it: got.append((clock.t, bagio.cdr_stamp_ns(it.data))), stop=lambda: len(got) >= 4,
            sleep=clock.sleep)
    assert np.allclose(np.diff([g[0] for g in got]), 1 / 17, atol=1e-6)   # not flat out
    assert np.diff([g[1] for g in got]).tolist() == [round(1e9 / 17)] * 3
