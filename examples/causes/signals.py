"""NumPy: a small summary of each large frame, kept per call."""

import numpy as np

_rng = np.random.default_rng(7)

# Both versions keep one 16-sample summary per frame on purpose (a few hundred bytes a call).
_summaries = []


def summarize_leaky():
    """Leaky: the summary is a view, so it keeps its 64 KiB frame alive."""
    frame = _rng.random(8192)
    _summaries.append(frame[:16])
    return frame.mean()


def summarize_fixed():
    """Fixed: a copy of the 16 samples; the frame is freed when the call returns."""
    frame = _rng.random(8192)
    _summaries.append(frame[:16].copy())
    return frame.mean()
