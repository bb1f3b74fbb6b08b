"""`runespoor demo` end to end, short: a 30-frame CamVid bag replayed in a loop through the robot and
cloud processes. Frames flow through every node, a tail frame switches the knobs, the link budget holds
and the run's files are written."""
import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_short_run(tmp_path, shared_dir):
    from runespoor_edge import bagio
    bag = tmp_path / 'bag'
    bagio.convert('camvid', shared_dir / 'data' / 'camvid', bag, split='val', sequence='0016E5', limit=30,
                  progress=False)
    cmd = [sys.executable, '-m', 'runespoor_tools.cli', 'demo', '--bag', str(bag), '--out', str(tmp_path),
           '--schedule', '0:700,4:300,8:700', '--duration', '12', '--no-baselines',
           '--set', 'restorer:methods=2:bilinear,4:bilinear,6:bilinear,8:bilinear',
           # every frame is a tail frame for this threshold: the first report must switch the knobs
           '--set', "tail_detector:profile=''", '--set', 'tail_detector:tail_threshold=1.0']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-3000:]
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir() and p.name[:2] == '20')
    s = json.loads((run_dir / 'summary.json').read_text())
    f = s['frames']
    # counts seen by the demo's monitor, which drops best-effort frames when the machine is slow: they
    # show the chain ran, not how fast (speed figures are `runespoor bench`'s and the demo summary's)
    assert f['captured'] > 0 and f['sent'] > 0 and f['processed'] >= 2, f
    assert s['tail_frames_flagged'] > 0 and s['sent_frames_tail_mode'] > 0
    assert any(k['tail_mode'] and 'tail frame' in k['reason'] for k in s['knob_changes'])
    assert s['cac_reaction_ms']['n'] > 0 and s['cac_reaction_ms']['median'] > 0
    for phase in s['kbps_per_phase']:  # the emulated link never carries more than its budget
        # (+ at most the one frame already on the wire at a phase boundary)
        assert phase['sent_kbps'] <= 1.25 * phase['budget_kbps'], phase
    for name in ('summary.md', 'timeline.png', 'overlay.mp4'):
        assert (run_dir / name).stat().st_size > 1000, name
    mcaps = list((run_dir / 'recording').glob('*.mcap'))
    assert mcaps, 'no MCAP recording'
    # an independent reader (the MCAP project's own, with its ros2msg schema parser, as Foxglove reads
    # them) decodes every message of the recording
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    counts = {}
    with open(mcaps[0], 'rb') as fh:
        for _, channel, _, decoded in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == '/runespoor/knobs':
                assert decoded.config_id and decoded.scale in (1, 2, 4, 6, 8)
    for topic in ('/camera/image_raw', '/runespoor/uplink', '/runespoor/segmentation/labels',
                  '/runespoor/tail_report', '/runespoor/knobs', '/runespoor/link_stats'):
        assert counts.get(topic, 0) > 0, (topic, counts)
    assert 'CAC reaction' in (run_dir / 'summary.md').read_text()
