"""Runespoor edge side: knob application (downsample + JPEG), the emulated uplink, bag tools, edge nodes."""
