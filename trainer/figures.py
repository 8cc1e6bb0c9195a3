"""The report page's figures: confusion matrix, training curves and the architecture as inline SVG (the
architecture as a block diagram from the manifest's layer list), and the production model's frame strip.

Every layer that shapes the data is a block in reading order — convolutions (batch norm and ReLU folded into
them), pooling, residual additions, dropout and dense layers — labelled with its size and output shape, in
rows, with a legend. It is built from `architecture.layers` as `emotion-trainer export` records it.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# kind -> (fill, legend text, Spanish legend text)
KINDS = {
    "input": ("#e9ecef", "input + rescaling", "entrada + reescalado"),
    "conv": ("#a5d8ff", "convolution (+ batch norm + ReLU)", "convolución (+ normalización + ReLU)"),
    "shortcut": ("#d0ebff", "1x1 projection shortcut", "atajo de proyección 1x1"),
    "pool": ("#ffd8a8", "pooling", "agrupación (pooling)"),
    "add": ("#b2f2bb", "residual addition", "suma residual"),
    "dropout": ("#f1f3f5", "dropout", "dropout"),
    "dense": ("#d0bfff", "dense + ReLU", "densa + ReLU"),
    "softmax": ("#fcc2d7", "dense + softmax (output)", "densa + softmax (salida)"),
}
SKIP = {"BatchNormalization", "ReLU", "Activation"}
BOX_W, BOX_H, GAP, ROW_H, PER_ROW, PAD = 104, 58, 14, 84, 8, 10


def _shape(s: list | None) -> str:
    return "×".join(str(d) for d in s) if s else ""


def blocks(layers: list[dict]) -> list[tuple[str, str, str]]:
    """(kind, title, detail) per drawn block, in order."""
    out: list[tuple[str, str, str]] = []
    last_dense = max((i for i, layer in enumerate(layers) if layer["type"] == "Dense"), default=-1)
    for i, layer in enumerate(layers):
        kind_t, shape = layer["type"], _shape(layer.get("output_shape"))
        if kind_t in SKIP:
            continue
        if kind_t in ("InputLayer", "Rescaling"):
            if out and out[-1][0] == "input":
                continue
            out.append(("input", "input", shape))
        elif kind_t == "Conv2D":
            k = layer.get("kernel_size") or [3, 3]
            shortcut = list(k) == [1, 1]
            out.append(("shortcut" if shortcut else "conv", f"conv {k[0]}x{k[1]}, {layer.get('filters')}", shape))
        elif "Pooling" in kind_t:
            name = {"AveragePooling2D": "avg pool", "MaxPooling2D": "max pool"}.get(kind_t, "global avg pool")
            out.append(("pool", name, shape))
        elif kind_t == "Add":
            out.append(("add", "+ residual", shape))
        elif kind_t == "Dropout":
            out.append(("dropout", f"dropout {layer.get('rate', '')}", shape))
        elif kind_t == "Dense":
            out.append(("softmax" if i == last_dense else "dense", f"dense {layer.get('units')}", shape))
        else:
            out.append(("dropout", kind_t, shape))
    return out


def architecture_svg(arch: dict) -> str:
    """The block diagram, or "" when the manifest holds no layer list."""
    items = blocks(arch.get("layers") or [])
    if not items:
        return ""
    rows = (len(items) + PER_ROW - 1) // PER_ROW
    used = sorted({k for k, _, _ in items}, key=list(KINDS).index)
    legend_h = 22 * ((len(used) + 2) // 3) + 10
    width = PAD * 2 + PER_ROW * BOX_W + (PER_ROW - 1) * GAP
    height = PAD * 2 + rows * ROW_H + legend_h
    parts = [
        f'<svg class="arch" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="architecture diagram">'
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>'
    ]
    for n, (kind, title, detail) in enumerate(items):
        r, c = divmod(n, PER_ROW)
        x, y = PAD + c * (BOX_W + GAP), PAD + r * ROW_H
        fill = KINDS[kind][0]
        dash = ' stroke-dasharray="4 3"' if kind == "dropout" else ""
        parts.append(
            f'<g class="block" data-kind="{kind}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="{fill}" stroke="#495057"{dash}/>'
            f'<text x="{x + BOX_W / 2}" y="{y + 24}" text-anchor="middle" font-size="12" font-weight="600">'
            f"{html.escape(title)}</text>"
            f'<text x="{x + BOX_W / 2}" y="{y + 42}" text-anchor="middle" font-size="11" fill="#333">'
            f"{html.escape(detail)}</text></g>"
        )
        if n + 1 < len(items):
            if c + 1 < PER_ROW:
                parts.append(
                    f'<line x1="{x + BOX_W}" y1="{y + BOX_H / 2}" x2="{x + BOX_W + GAP - 2}" y2="{y + BOX_H / 2}" '
                    'stroke="#555" marker-end="url(#arrow)"/>'
                )
            else:  # wrap: down to the start of the next row
                parts.append(
                    f'<path d="M{x + BOX_W / 2},{y + BOX_H} V{y + ROW_H - 12} H{PAD + BOX_W / 2} V{y + ROW_H - 2}" '
                    'fill="none" stroke="#555" marker-end="url(#arrow)"/>'
                )
    ly = PAD + rows * ROW_H + 4
    for n, kind in enumerate(used):
        r, c = divmod(n, 3)
        x, y = PAD + c * 300, ly + r * 22
        fill, en, es = KINDS[kind]
        parts.append(
            f'<g class="legend"><rect x="{x}" y="{y}" width="16" height="14" fill="{fill}" stroke="#495057"/>'
            f'<text x="{x + 22}" y="{y + 12}" font-size="12" data-en="{html.escape(en)}" data-es="{html.escape(es)}">'
            f"{html.escape(en)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def confusion_svg(cm: list[list[int]], labels: list[str]) -> str:
    n, cell, pad = len(labels), 64, 70
    size = pad + n * cell
    rows_total = [max(1, sum(r)) for r in cm]
    parts = [
        f'<svg class="cm" width="{size + 10}" height="{size + 10}" viewBox="0 0 {size + 10} {size + 10}" role="img">'
    ]
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            frac = v / rows_total[i]
            shade = int(255 - 190 * frac)
            color = f"rgb({shade},{shade},255)" if i != j else f"rgb({shade},255,{shade})"
            x, y = pad + j * cell, pad + i * cell
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{color}"><title>{labels[i]} → '
                f"{labels[j]}: {v}</title></rect>"
            )
            parts.append(
                f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" text-anchor="middle" font-size="13">{v}</text>'
            )
        parts.append(
            f'<text x="{pad - 6}" y="{pad + i * cell + cell / 2 + 4}" text-anchor="end" '
            f'font-size="12">{html.escape(labels[i])}</text>'
        )
    for j, label in enumerate(labels):
        xc = pad + j * cell + cell / 2
        parts.append(f'<text x="{xc}" y="{pad - 8}" text-anchor="middle" font-size="12">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def curve_svg(history: list[dict], keys: tuple[str, str], names: tuple[str, str], title: str = "") -> str:
    pts = [[(h["epoch"], h[k]) for h in history if k in h] for k in keys]
    if not any(pts):
        return ""
    w, h, pad = 520, 280, 44
    xs = [p[0] for s in pts for p in s] or [0]
    ys = [p[1] for s in pts for p in s] or [0]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(max(ys), min(ys) + 1e-6)

    def sx(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (w - 2 * pad)

    def sy(y: float) -> float:
        return h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)

    out = [
        f'<svg class="curve" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">',
        f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" stroke="#ccc"/>',
        f'<text x="{pad}" y="{h - 10}" font-size="13">{html.escape(title)} · epoch {x0}–{x1}</text>',
        f'<text x="2" y="{pad - 8}" font-size="13">{y1:.3f}</text><text x="2" y="{h - pad + 16}" '
        f'font-size="13">{y0:.3f}</text>',
    ]
    for series, color in zip(pts, ("#1f77b4", "#d62728"), strict=False):
        if series:
            line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in series)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{line}"/>')
    out.append(
        f'<text x="{w - pad}" y="{pad - 8}" text-anchor="end" font-size="13"><tspan fill="#1f77b4">{names[0]}</tspan> '
        "· "
        f'<tspan fill="#d62728">{names[1]}</tspan></text></svg>'
    )
    return "".join(out)


def production_strip(models_dir: Path, default_model: str | None, frames: int = 4) -> str:
    """The production model at work: frames of the built-in demo clip (public domain: the astronaut, never a
    dataset image) through the device's detector and the default model, drawn by edge.draw exactly as
    `emotion-edge analyze --annotate` and the live view draw them. "" when the demo assets are not fetched."""
    import base64

    import cv2

    from edge.analyze import analyze_frames
    from edge.camera.demo import demo_clip_path
    from edge.classify.tflite import TFLiteClassifier
    from edge.core.errors import UserError
    from edge.detect import make_detector
    from edge.draw import FaceMark, annotate

    if not default_model:
        return ""
    try:
        clip = demo_clip_path()
        clf = TFLiteClassifier.from_manifest(default_model, "int8", 1, models_dir)
        det = make_detector("blazeface-short")
    except UserError as exc:
        log.warning("report: no production section (%s)", exc)
        return ""
    imgs = []
    for _, idx, frame, faces in analyze_frames(clip, clf, det, every=90):
        marks = [FaceMark(b, r["emotion"], r["confidence"], r["probabilities"]) for b, r in faces]
        small = cv2.resize(annotate(frame, marks), (320, 240), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            imgs.append(
                f"<figure><img src='data:image/jpeg;base64,{base64.b64encode(buf.tobytes()).decode()}' "
                f"width='320' height='240' alt='demo frame {idx}'><figcaption>frame {idx}: "
                f"{', '.join(r['emotion'] + ' ' + format(r['confidence'], '.2f') for _, r in faces) or '–'}"
                "</figcaption></figure>"
            )
        if len(imgs) == frames:
            break
    return f"<div class='strip'>{''.join(imgs)}</div>" if imgs else ""
