"""Training curves from the JSONL log, drawn with Pillow only (no matplotlib dependency).

Why: the README and a quick look at a run need a picture of the losses and SWD over kimg; pulling in matplotlib for
that would add a heavy dependency to a package whose other needs are torch, numpy and Pillow.
The picture is one panel per key, stacked vertically, each with its own y axis, "nice" 1-2-5 ticks, a grid, the
key's name and last value as a legend. Size: width x (panel_height x number of panels) pixels, exactly.
Several runs (`plot_runs`, `stylegan plot A/log.jsonl B/log.jsonl ...`) share the panels: one colour per run, the
legend names each run and its last value.
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from PIL import Image, ImageDraw, ImageFont

from .atomic_write import atomic_write_bytes

DEFAULT_KEYS = ("loss_G", "loss_D", "penalty", "swd_avg", "augment_p", "ada_rt")
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207),
           (140, 86, 75), (227, 119, 194))
BACKGROUND = (255, 255, 255)
AXIS = (60, 60, 60)
GRID = (225, 225, 225)
TEXT = (20, 20, 20)


class MissingKeyError(ValueError):
    """A requested key with no finite value in the log; `axis` is 'x' (the x key) or 'y' (a panel's key)."""

    def __init__(self, axis: str, message: str) -> None:
        super().__init__(message)
        self.axis = axis


def read_jsonl(path: Union[str, os.PathLike]) -> List[Dict[str, object]]:
    """The records of a JSONL log, in order. A truncated LAST line (a run still writing) is skipped; any other line
    that is not a JSON object is a ValueError naming its line number."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines()
    records: List[Dict[str, object]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not text.endswith("\n"):
                break  # the writer is mid-line
            raise ValueError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: line {number} is {type(record).__name__}, expected a JSON object")
        records.append(record)
    return records


def _number(value: object) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def series(records: Sequence[Dict[str, object]], key: str, x_key: str = "kimg") -> List[Tuple[float, float]]:
    """(x, y) points of `key`: records lacking it (e.g. swd_avg between snapshots) or `x_key`, or with
    non-finite values, are skipped."""
    points = []
    for record in records:
        x, y = _number(record.get(x_key)), _number(record.get(key))
        if x is not None and y is not None:
            points.append((x, y))
    return points


def nice_ticks(lo: float, hi: float, target: int = 5) -> List[float]:
    """About `target` round tick values (steps 1, 2 or 5 x 10^k) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        span = abs(lo) * 0.1 or 1.0
        lo, hi = lo - span, hi + span
    raw = (hi - lo) / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def _fmt(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e5 or a < 1e-3:
        return f"{v:.1e}"
    return f"{v:.4g}"


def _tick_labels(ticks: Sequence[float]) -> List[str]:
    """Shortest labels (up to 6 significant digits) that tell all ticks apart, e.g. 1.05e-07 vs 1.1e-07."""
    if not ticks:
        return []
    labels = [_fmt(t) for t in ticks]
    for digits in range(2, 7):
        if len(set(labels)) == len(labels):
            break
        labels = ["0" if t == 0 else f"{t:.{digits}g}" for t in ticks]
    return labels


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont) -> Tuple[int, int]:
    box = draw.textbbox((0, 0), text, font=font)
    return box[2] - box[0], box[3] - box[1]


@dataclass(frozen=True)
class _Frame:
    left: int
    top: int
    right: int
    bottom: int
    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, x: float, y: float) -> Tuple[float, float]:
        fx = (x - self.x0) / (self.x1 - self.x0) if self.x1 > self.x0 else 0.5
        fy = (y - self.y0) / (self.y1 - self.y0) if self.y1 > self.y0 else 0.5
        return self.left + fx * (self.right - self.left), self.bottom - fy * (self.bottom - self.top)


def _y_axis(points: List[Tuple[float, float]]) -> Tuple[float, float, List[float]]:
    """(lo, hi, ticks) of a panel's y axis: the data range padded by 6% (or +-10% of a constant value)."""
    ys = [p[1] for p in points]
    y_lo, y_hi = min(ys), max(ys)
    pad = (y_hi - y_lo) * 0.06 if y_hi > y_lo else (abs(y_lo) * 0.1 or 1.0)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    return y_lo, y_hi, nice_ticks(y_lo, y_hi, 4)


Curve = Tuple[str, List[Tuple[float, float]], Tuple[int, int, int]]  # (run label, points, colour)


def _draw_panel(draw: ImageDraw.ImageDraw, box: Tuple[int, int, int, int], key: str, curves: List[Curve],
                x_range: Tuple[float, float], font: ImageFont.ImageFont, x_label: str, label_w: int,
                text_h: int) -> None:
    x, y, w, h = box
    y_lo, y_hi, y_ticks = _y_axis([p for _, points, _ in curves for p in points])
    x_ticks = nice_ticks(x_range[0], x_range[1], 6)
    frame = _Frame(left=x + label_w + 14, top=y + text_h + 12, right=x + w - 16,
                   bottom=y + h - (2 * text_h + 16), x0=x_range[0], x1=x_range[1], y0=y_lo, y1=y_hi)
    # Grid and ticks.
    for t, label in zip(y_ticks, _tick_labels(y_ticks)):
        _, py = frame.px(frame.x0, t)
        if frame.top - 0.5 <= py <= frame.bottom + 0.5:
            draw.line([(frame.left, py), (frame.right, py)], fill=GRID)
            draw.line([(frame.left - 4, py), (frame.left, py)], fill=AXIS)
            tw, _ = _text_size(draw, label, font)
            draw.text((frame.left - 7 - tw, py - text_h / 2 - 1), label, fill=TEXT, font=font)
    for t, label in zip(x_ticks, _tick_labels(x_ticks)):
        px, _ = frame.px(t, frame.y0)
        if frame.left - 0.5 <= px <= frame.right + 0.5:
            draw.line([(px, frame.top), (px, frame.bottom)], fill=GRID)
            draw.line([(px, frame.bottom), (px, frame.bottom + 4)], fill=AXIS)
            tw, _ = _text_size(draw, label, font)
            draw.text((px - tw / 2, frame.bottom + 5), label, fill=TEXT, font=font)
    draw.rectangle([frame.left, frame.top, frame.right, frame.bottom], outline=AXIS)
    tw, _ = _text_size(draw, x_label, font)
    draw.text(((frame.left + frame.right) / 2 - tw / 2, frame.bottom + text_h + 9), x_label, fill=TEXT, font=font)
    # The curves (a marker per point when there are few, e.g. SWD at snapshots).
    for _, points, colour in curves:
        xy = [frame.px(px, py) for px, py in points]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2, joint="curve")
        if len(xy) <= 40:
            for cx, cy in xy:
                draw.ellipse([cx - 2.5, cy - 2.5, cx + 2.5, cy + 2.5], fill=colour)
    # Legend, top-left above the frame: a line sample, the key (or each run) and its last value.
    lx, ly = frame.left, y + 5
    if len(curves) == 1 and not curves[0][0]:  # one unnamed run: the key is the legend
        points = curves[0][1]
        entries = [(f"{key}  (last {_fmt(points[-1][1])}, {len(points)} point{'s' if len(points) != 1 else ''})",
                    curves[0][2])]
    else:
        draw.text((lx, ly - 1), key, fill=TEXT, font=font)
        lx += _text_size(draw, key, font)[0] + 14
        entries = [(f"{label} ({_fmt(points[-1][1])})", colour) for label, points, colour in curves]
    for text, colour in entries:
        draw.line([(lx, ly + text_h / 2 + 1), (lx + 18, ly + text_h / 2 + 1)], fill=colour, width=3)
        draw.text((lx + 24, ly - 1), text, fill=TEXT, font=font)
        lx += 24 + _text_size(draw, text, font)[0] + 14


def plot_curves(records: Sequence[Dict[str, object]], keys: Iterable[str] = DEFAULT_KEYS,
                width: int = 800, panel_height: int = 200, x_key: str = "kimg",
                require_all: bool = False) -> Image.Image:
    """RGB image of one panel per key (keys with no finite value are left out, unless `require_all`).

    Size: width x (panel_height x panels). ValueError when no requested key has data (naming the keys the log has)
    or, with require_all, naming the keys that are missing.
    """
    return plot_runs([("", records)], keys, width, panel_height, x_key, require_all)


def plot_runs(runs: Sequence[Tuple[str, Sequence[Dict[str, object]]]], keys: Iterable[str] = DEFAULT_KEYS,
              width: int = 800, panel_height: int = 200, x_key: str = "kimg",
              require_all: bool = False) -> Image.Image:
    """plot_curves of several runs ((label, records) each) in the same panels, one colour per run; a key is drawn
    when any run has it."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise ValueError("no keys to plot")
    if width < 200 or panel_height < 80:
        raise ValueError(f"width={width}, panel_height={panel_height}: expected width >= 200 and "
                         f"panel_height >= 80 pixels")
    available = sorted({k for _, records in runs for r in records for k, v in r.items() if _number(v) is not None})
    if x_key not in available:  # else every panel would be empty, or silently drawn against something else
        raise MissingKeyError("x", f"x key {x_key!r} has no values in the log; keys with values: "
                                   f"{', '.join(available) or 'none'}")
    available.remove(x_key)
    data = {k: [series(records, k, x_key) for _, records in runs] for k in keys}
    missing = [k for k in keys if not any(data[k])]
    if missing and require_all:
        raise MissingKeyError("y", f"no values for {', '.join(missing)} in the log; keys with values: "
                                   f"{', '.join(available) or 'none'}")
    keys = [k for k in keys if any(data[k])]
    if not keys:
        raise MissingKeyError("y", f"none of the requested keys has values in the log; keys with values: "
                                   f"{', '.join(available) or 'none'}")
    xs = [p[0] for k in keys for points in data[k] for p in points]
    x_range = (min(xs), max(xs))
    if x_range[0] == x_range[1]:
        x_range = (x_range[0] - 0.5, x_range[1] + 0.5)
    image = Image.new("RGB", (width, panel_height * len(keys)), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = _font(12)
    # One left margin for all panels, so their x axes line up.
    labels = [label for k in keys for label in _tick_labels(_y_axis([p for ps in data[k] for p in ps])[2])] or ["0"]
    label_w = max(_text_size(draw, label, font)[0] for label in labels)
    box = font.getbbox("Ag0")
    text_h = int(box[3] - box[1])
    for i, key in enumerate(keys):
        curves = [(label, points, COLOURS[(i if len(runs) == 1 else j) % len(COLOURS)])
                  for j, ((label, _), points) in enumerate(zip(runs, data[key])) if points]
        _draw_panel(draw, (0, i * panel_height, width, panel_height), key, curves, x_range, font, x_key,
                    max(label_w, 10), text_h)
    return image


def default_keys(records: Sequence[Dict[str, object]]) -> List[str]:
    """DEFAULT_KEYS, then every metric result the log holds (fid50k_full, glyph_acc, ...), in order of appearance."""
    from .metrics.protocols import is_metric_key

    found = dict.fromkeys(k for r in records for k in r if is_metric_key(k))
    return list(DEFAULT_KEYS) + [k for k in found if k not in DEFAULT_KEYS]


def run_label(log: Union[str, os.PathLike]) -> str:
    """A run's name in a legend: its folder's name (runs/glyphs/log.jsonl -> glyphs)."""
    path = Path(log)
    return path.parent.name or path.stem


def plot_log(log: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], out: Union[str, os.PathLike],
             keys: Optional[Iterable[str]] = None, width: int = 800, panel_height: int = 200, x_key: str = "kimg",
             require_all: bool = False) -> Path:
    """Reads a JSONL training log (or several: one curve per run) and writes its curves to a PNG (atomically);
    returns the output path. keys=None: `default_keys` of the logs."""
    logs = [log] if isinstance(log, (str, os.PathLike)) else list(log)
    runs = []
    for one in logs:
        records = read_jsonl(one)
        if not records:
            raise ValueError(f"{one}: the log holds no records")
        runs.append((run_label(one), records))
    keys = default_keys([r for _, records in runs for r in records]) if keys is None else keys
    image = plot_runs(runs, keys, width, panel_height, x_key, require_all)
    out = Path(out)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(out, buffer.getvalue())
    return out


__all__ = ["DEFAULT_KEYS", "MissingKeyError", "nice_ticks", "plot_curves", "plot_log", "plot_runs", "read_jsonl",
           "run_label", "series"]
