"""The interfaces build, import and serialize; every field is documented with its unit."""
from pathlib import Path

import pytest

MSG_DIR = Path(__file__).resolve().parent.parent / 'runespoor_msgs' / 'msg'


def test_interfaces_import_and_roundtrip():
    from rclpy.serialization import deserialize_message, serialize_message
    from runespoor.msg import ClassMap, EncodedFrame, KnobConfig, LinkStats, TailReport

    frame = EncodedFrame()
    frame.seq = 7
    frame.source_width, frame.source_height = 2048, 1024
    frame.knobs = KnobConfig(scale=6, jpeg_quality=70, frame_rate=17.0, tail_mode=True,
                             config_id='2000kbps/tail', reason='tail frame 6')
    frame.image.format = 'jpeg'
    frame.image.data = b'\xff\xd8abc\xff\xd9'
    back = deserialize_message(serialize_message(frame), EncodedFrame)
    assert back.knobs.scale == 6 and back.knobs.tail_mode and back.knobs.config_id == '2000kbps/tail'
    assert bytes(back.image.data) == b'\xff\xd8abc\xff\xd9' and back.source_width == 2048
    for cls in (TailReport, LinkStats, ClassMap):
        assert deserialize_message(serialize_message(cls()), cls) == cls()


@pytest.mark.parametrize('path', sorted(MSG_DIR.glob('*.msg')), ids=lambda p: p.stem)
def test_every_field_is_commented(path):
    """Each field sits in a block (no blank line between) that starts with a comment."""
    commented = False
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text:
            commented = False
        elif text.startswith('#'):
            commented = True
        else:
            assert commented or '#' in text, f'{path.name}: field without a comment: {text}'
