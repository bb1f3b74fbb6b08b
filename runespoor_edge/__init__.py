"""Runespoor edge side: knob application (downsample + JPEG), the emulated uplink, bag I/O, edge nodes."""
