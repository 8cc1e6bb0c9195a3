"""Training augmentation: what faces look like through real cameras and detectors.

NumPy and OpenCV on the host, one batch at a time, so every Keras backend trains on the same faces (TensorFlow
on this CPU, JAX on an accelerator) and the data side never needs the training framework. Every draw comes
from the `rng` passed in: a batch is a function of (its faces, its generator), whichever thread makes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ROTATION = 0.21  # radians, +-12 degrees: head tilt
SHIFT = 0.08  # of the side: detector boxes wobble by this much
ZOOM = (0.9, 1.1)  # output->input scale: >1 shows more of the frame (zoom out)
CONTRAST = (0.75, 1.25)
BRIGHTNESS = 0.15  # of 255


def warp(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One affine warp per face: mirror (p 0.5), rotation, translation and zoom about the centre, reflected at
    the border (a black border would teach the model a cue no detector crop has)."""
    n, h, w = (int(v) for v in x.shape[:3])
    out = np.empty_like(x)
    flip = np.where(rng.random(size=n) < 0.5, -1.0, 1.0)
    theta = rng.uniform(-ROTATION, ROTATION, size=n)
    scale = rng.uniform(ZOOM[0], ZOOM[1], size=n)
    tx, ty = rng.uniform(-SHIFT, SHIFT, size=n) * w, rng.uniform(-SHIFT, SHIFT, size=n) * h
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    for i in range(n):  # output pixel (u, v) reads input (a00 u + a01 v + b0, a10 u + a11 v + b1)
        a00, a01 = scale[i] * np.cos(theta[i]) * flip[i], -scale[i] * np.sin(theta[i])
        a10, a11 = scale[i] * np.sin(theta[i]) * flip[i], scale[i] * np.cos(theta[i])
        m = np.array(
            [[a00, a01, cx + tx[i] - a00 * cx - a01 * cy], [a10, a11, cy + ty[i] - a10 * cx - a11 * cy]], np.float64
        )
        out[i] = cv2.warpAffine(
            x[i], m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
        ).reshape(x.shape[1:])
    return out


def exposure(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast about each face's mean and a brightness shift: exposure and lighting."""
    n = int(x.shape[0])
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(CONTRAST[0], CONTRAST[1], size=(n, 1, 1, 1)).astype(np.float32)
    brightness = (rng.uniform(-BRIGHTNESS, BRIGHTNESS, size=(n, 1, 1, 1)) * 255.0).astype(np.float32)
    out = x - mean  # the same arithmetic as clip((x - mean) * contrast + mean + brightness), one temporary
    out *= contrast
    out += mean
    out += brightness
    return np.clip(out, 0.0, 255.0, out=out)


def gaussian_blur(img: np.ndarray, sigma: float, taps: int = 0) -> np.ndarray:
    """One image blurred with a Gaussian of `sigma` px, mirrored at the border so its edges do not darken; `taps`
    the kernel side (0: as wide as sigma needs)."""
    return cv2.GaussianBlur(img, (taps, taps), float(sigma), borderType=cv2.BORDER_REFLECT_101).reshape(img.shape)


def jpeg_recompress(img: np.ndarray, quality: int) -> np.ndarray:
    """One uint8 image through a JPEG encoder at `quality` and back (unchanged if the encoder refuses it)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    redone = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
    return img if redone is None else redone.reshape(img.shape)


@dataclass(frozen=True)
class CameraRange:
    """How far each camera effect goes: blur sigma and sensor-noise sigma ranges, JPEG quality range, and the side a
    face is shrunk to (None: not shrunk); `blur_taps` the blur kernel's side (0: as wide as sigma needs)."""

    blur: tuple[float, float]
    noise: tuple[float, float]
    jpeg: tuple[int, int]
    small: tuple[int, int] | None = None
    blur_taps: int = 0


# "mild" (every run before 2026-11-27): about the first severity of `emotion-trainer robustness`; "wide": up to its
# third, and small faces too (a face of 16-48 px upscaled to the input, as the preprocessing upscales a small crop).
CAMERA_RANGES = {
    "mild": CameraRange(blur=(0.5, 1.5), noise=(2.0, 10.0), jpeg=(30, 90), blur_taps=5),
    "wide": CameraRange(blur=(0.5, 3.0), noise=(2.0, 32.0), jpeg=(10, 90), small=(16, 48)),
}


def camera_effects(x: np.ndarray, rng: np.random.Generator, p: float, camera_range: str = "mild") -> np.ndarray:
    """What cheap cameras do to a face, each with probability `p` per face: Gaussian blur (sigma in px of the
    100-px input: focus, motion), sensor noise (sigma in grey levels, one field for all channels so grey stays
    grey) and JPEG re-compression (as streams and snapshots arrive), over CAMERA_RANGES[camera_range]; "wide" also
    shrinks a face to 16-48 px and back first (a face far from the camera). FER2013 faces are clean web crops;
    device crops are not. "mild" draws exactly what it always drew, so runs made with it resume unchanged."""
    if p <= 0.0:
        return x
    r = CAMERA_RANGES[camera_range]
    n, side = int(x.shape[0]), int(x.shape[1])
    x = x.copy()
    blur, sigma = rng.random(size=n) < p, rng.uniform(r.blur[0], r.blur[1], size=n)
    noise, level = rng.random(size=n) < p, rng.uniform(r.noise[0], r.noise[1], size=n)
    jpeg, quality = rng.random(size=n) < p, rng.integers(r.jpeg[0], r.jpeg[1] + 1, size=n)
    if r.small is not None:
        small, to = rng.random(size=n) < p, rng.integers(r.small[0], r.small[1] + 1, size=n)
        for i in np.flatnonzero(small & (to < side)):
            shrunk = cv2.resize(x[i], (int(to[i]), int(to[i])), interpolation=cv2.INTER_AREA)
            x[i] = cv2.resize(shrunk, (side, side), interpolation=cv2.INTER_LINEAR).reshape(x.shape[1:])
    for i in np.flatnonzero(blur):
        x[i] = gaussian_blur(x[i], sigma[i], taps=r.blur_taps)
    if noise.any():
        field = rng.standard_normal((int(noise.sum()), *x.shape[1:3], 1), dtype=np.float32)
        x[noise] = np.clip(x[noise] + level[noise, None, None, None].astype(np.float32) * field, 0.0, 255.0)
    for i in np.flatnonzero(jpeg):
        x[i] = jpeg_recompress(np.round(x[i]).astype(np.uint8), int(quality[i]))
    return x


def random_erase(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Blank one rectangle (2-25% of the face, aspect 0.3-3.3) per face with probability `p`, in one random grey.

    Random erasing (Zhong et al. 2017) makes a classifier use the whole face instead of one cue, the way hands,
    glasses and hair occlude faces in real cameras.
    """
    if p <= 0.0:
        return x
    n, h, w = (int(v) for v in x.shape[:3])
    on = rng.random(size=n) < p
    area = rng.uniform(0.02, 0.25, size=n) * h * w
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3), size=n))
    eh, ew = np.minimum(np.sqrt(area * aspect), h), np.minimum(np.sqrt(area / aspect), w)
    y0, x0 = rng.random(size=n) * (h - eh), rng.random(size=n) * (w - ew)
    fill = rng.uniform(0.0, 255.0, size=n).astype(np.float32)
    x = x.copy()
    rows, cols = np.arange(h), np.arange(w)
    for i in np.flatnonzero(on):
        r = (rows >= y0[i]) & (rows < y0[i] + eh[i])
        c = (cols >= x0[i]) & (cols < x0[i] + ew[i])
        x[i][np.ix_(r, c)] = fill[i]
    return x


def augment_batch(
    x: np.ndarray, rng: np.random.Generator, erase: float = 0.0, effects: float = 0.0, camera_range: str = "mild"
) -> np.ndarray:
    """Training augmentation of a float32 batch (0-255, NHWC): warp, exposure, camera effects, occlusion.

    Any channel count: every step treats the channels alike, so a grey face can be augmented as one channel and
    replicated afterwards (`FaceBatches` does that)."""
    return random_erase(camera_effects(exposure(warp(x, rng), rng), rng, effects, camera_range), rng, erase)
