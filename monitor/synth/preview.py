"""Quick-look PNGs of synthetic scenes (for docs and eyeballing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_rgb8(scene, window=None) -> np.ndarray:
    """An 8-bit (h, w, 3) picture: true colour for optical, dB-stretched gray for SAR.

    ``window``: (row0, col0, height, width) to crop, in pixels.
    """
    b = scene.bands
    if window is not None:
        r0, c0, hh, ww = window
        b = b[:, r0:r0 + hh, c0:c0 + ww]
    if scene.sensor == "sar":
        db = 10 * np.log10(np.clip(b[0].astype(np.float32), 1e-5, None))
        g = np.clip((db + 25) / 30, 0, 1)
        return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)
    idx = [scene.roles.index(r) for r in ("red", "green", "blue")]
    x = b[idx].astype(np.float32)
    if b.dtype == np.uint16:
        x = x / 10000.0
    elif b.dtype == np.uint8:
        return np.moveaxis(b[idx], 0, -1).copy()
    lo = np.percentile(x, 0.5, axis=(1, 2), keepdims=True)
    hi = np.percentile(x, 99.7, axis=(1, 2), keepdims=True)
    x = np.clip((x - lo.min()) / (hi.max() - lo.min()), 0, 1) ** (1 / 1.3)
    return (np.moveaxis(x, 0, -1) * 255).astype(np.uint8)


def save_preview(scene, path, window=None, max_size: int | None = None) -> Path:
    """Write a PNG quick-look of ``scene`` (optionally cropped / reduced)."""
    import matplotlib.image as mpimg

    rgb = to_rgb8(scene, window)
    if max_size and max(rgb.shape[:2]) > max_size:
        f = int(np.ceil(max(rgb.shape[:2]) / max_size))
        rgb = rgb[::f, ::f]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mpimg.imsave(path, rgb)
    return path
