"""Spectral-residual saliency (Hou & Zhang, CVPR 2007) with numpy + OpenCV's DFT.

`cv2.saliency` exists only in opencv-contrib builds, which this project does not
install; the algorithm is a few lines: the log-amplitude spectrum minus its local
average is the "unexpected" part of the image, and transforming it back (with
the original phase) highlights the regions that stand out.
"""

from __future__ import annotations

import cv2
import numpy as np

SALIENCY_WIDTH = 64  # the method works on a coarse copy; 64 px is the paper's choice


def spectral_residual_saliency(gray: np.ndarray, width: int = SALIENCY_WIDTH) -> np.ndarray:
    """Saliency map of a grayscale image.

    gray: (H, W) uint8 or float image. Returns an (h, w) float32 map in [0, 1] at
    the coarse working width (`width` px on the long side, aspect kept); a flat
    image gives an all-zero map.
    """
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"spectral_residual_saliency expects a non-empty 2-D grayscale image, got shape {gray.shape}")
    height, full_width = gray.shape
    scale = width / max(height, full_width)
    size = (max(8, round(full_width * scale)), max(8, round(height * scale)))
    small = cv2.resize(gray.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    if float(small.max() - small.min()) < 1e-6:
        return np.zeros(small.shape, dtype=np.float32)
    spectrum = cv2.dft(small, flags=cv2.DFT_COMPLEX_OUTPUT)
    real, imag = spectrum[..., 0], spectrum[..., 1]
    amplitude = np.sqrt(real * real + imag * imag) + 1e-9
    phase_cos, phase_sin = real / amplitude, imag / amplitude
    log_amplitude = np.log(amplitude)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3), borderType=cv2.BORDER_REPLICATE)
    magnitude = np.exp(residual)
    back = np.stack([magnitude * phase_cos, magnitude * phase_sin], axis=-1).astype(np.float32)
    inverse = cv2.idft(back, flags=cv2.DFT_COMPLEX_OUTPUT | cv2.DFT_SCALE)
    saliency = inverse[..., 0] ** 2 + inverse[..., 1] ** 2
    # Gaussian smoothing as in the paper (sigma ~ 8 px at 64 px width, scaled to the map).
    sigma = max(1.0, 2.5 * min(saliency.shape) / 64.0)
    saliency = cv2.GaussianBlur(saliency, (0, 0), sigma)
    peak = float(saliency.max())
    if peak <= 0:
        return np.zeros(saliency.shape, dtype=np.float32)
    return (saliency / peak).astype(np.float32)


def saliency_summary(saliency: np.ndarray, threshold_factor: float = 3.0) -> tuple[float, float, float]:
    """(salient_area_ratio, centroid_x, centroid_y) of a saliency map from `spectral_residual_saliency`.

    Salient pixels are those above `threshold_factor` × the map's mean (Hou & Zhang's
    object-map rule). The centroid is the saliency-weighted centre of the salient
    pixels (of the whole map when none pass), in [0, 1] image coordinates (0, 0 =
    top-left); a flat map gives (0, 0.5, 0.5).
    """
    total = float(saliency.sum())
    if total <= 0:
        return 0.0, 0.5, 0.5
    mean = total / saliency.size
    salient = saliency > threshold_factor * mean
    area = float(salient.mean())
    weights = np.where(salient, saliency, 0.0) if salient.any() else saliency
    weight_total = float(weights.sum())
    height, width = saliency.shape
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    cx = float((weights.sum(axis=0) * xs).sum() / weight_total)
    cy = float((weights.sum(axis=1) * ys).sum() / weight_total)
    return area, cx, cy
