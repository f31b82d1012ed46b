"""`stylegan dataset`: any image collection -> a training dataset of R x R PNGs and a `dataset.json`.

The output is a folder or a .zip (ZIP_STORED, as NVlabs' dataset_tool writes it) holding `00000/img00000000.png`,
... in the source's sorted order and `dataset.json` = {"labels": [["00000/img00000000.png", k], ...] or null,
"classes": ["cat", ...]} (only "labels" is NVlabs' format; readers that know it ignore "classes"). `--data` reads it
like any folder or zip, and since its images are already R x R the cache's crop and resize change nothing.

Every file is read by image_reader.py, the path the dataset cache uses (one decoder, one conversion, one fit).
Two passes: headers first (channel votes, sizes: the skips that need no decoding), then decode -> convert -> fit ->
PNG. Deterministic: the same source and options give byte-identical output (sorted names, fixed zip timestamps and
attributes, no clock in any file). The destination appears whole or not at all (a temp file / folder renamed into
place); one that exists and is not empty is replaced only with `overwrite`.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from ..atomic_write import atomic_output, fsync_folder
from .dataset import MAX_CLASSES
from .image_reader import (IMAGE_EXTENSIONS, SKIP_REASONS, TOO_SMALL, WRONG_SIZE, Fit, ImageSource, SkippedImage,
                           probe, read_pixels)

LABEL_MODES = ("auto", "none", "subfolders")  # or a .json / .csv file
CHANNEL_CHOICES: Tuple[Union[str, int], ...] = ("auto", 1, 3, 4)
CHANNEL_NAMES = {1: "grayscale", 3: "RGB", 4: "RGBA"}
PNG_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
MAX_RESOLUTION = 1 << 14
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can store: no clock in the output
CSV_HEADER_NAMES = ("file", "filename", "path", "image", "name")
SHOWN = 3  # names listed per kind of problem
FIT_FLAGS = {"transform": "--transform", "resize_filter": "--resize-filter", "pad_color": "--pad-color",
             "wide_height": "--wide-height"}


class DatasetToolError(ValueError):
    """A bad option or source: `option` is the flag to blame (the CLI turns it into a click error)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@dataclass(frozen=True)
class ToolOptions:
    """One `stylegan dataset` run (fields = the command-line options)."""

    source: str
    dest: str
    resolution: int
    fit: Fit = field(default_factory=Fit)
    labels: str = "auto"                   # auto | none | subfolders | FILE.json | FILE.csv
    channels: Union[str, int] = "auto"     # auto | 1 | 3 | 4
    max_images: Optional[int] = None
    seed: Optional[int] = None             # with max_images: a random subset instead of the first N
    min_size: int = 0                      # skip images whose fitted side is below this (0: upscale them all)
    overwrite: bool = False


@dataclass
class Summary:
    """What a run did; `lines()` is what the CLI prints."""

    dest: str
    resolution: int
    written: int
    files_seen: int
    image_files: int
    skipped: Dict[str, List[str]]          # reason -> names, reasons in SKIP_REASONS order
    channels: int
    channel_note: str
    upscaled: int
    label_mode: str
    classes: Optional[List[str]]
    class_counts: Optional[List[int]]
    seconds: float
    warnings: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        out = [f"Wrote {self.written} image(s) of {self.resolution}x{self.resolution} px to {self.dest} in "
               f"{self.seconds:.1f} s",
               f"Channels: {self.channels} ({CHANNEL_NAMES[self.channels]}; {self.channel_note})"]
        skipped = sum(len(v) for v in self.skipped.values())
        if skipped:
            out.append(f"Skipped {skipped} of {self.image_files} image file(s): {_skip_text(self.skipped)}")
        if self.files_seen > self.image_files:
            out.append(f"Ignored {self.files_seen - self.image_files} file(s) without an image extension "
                       f"({', '.join(IMAGE_EXTENSIONS)})")
        if self.upscaled:
            out.append(f"Upscaled {self.upscaled} image(s) smaller than {self.resolution} px (--min-size skips them)")
        if self.classes is None:
            out.append("Labels: none")
        else:
            counts = ", ".join(f"{c} {n}" for c, n in zip(self.classes, self.class_counts or []))
            out.append(f"Labels ({self.label_mode}): {len(self.classes)} class(es): {counts}")
        out.extend(f"warning: {w}" for w in self.warnings)
        return out


def _first(names: List[str]) -> str:
    return ", ".join(repr(n) for n in names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")


def _skip_text(skipped: Dict[str, List[str]]) -> str:
    return "; ".join(f"{len(v)} {reason} ({_first(v)})" for reason, v in skipped.items() if v)


# ---------------------------------------------------------------------------------------------------------------
# Options and the destination.

def _check_options(opts: ToolOptions) -> None:
    R = opts.resolution
    if isinstance(R, bool) or not isinstance(R, int) or R < 4 or R > MAX_RESOLUTION or R & (R - 1):
        raise DatasetToolError("--resolution", f"{R!r} is not a power of two from 4 to {MAX_RESOLUTION}")
    problem = opts.fit.problem(R)
    if problem is not None:
        raise DatasetToolError(FIT_FLAGS[problem[0]], problem[1])
    if opts.channels not in CHANNEL_CHOICES:
        raise DatasetToolError("--channels", f"{opts.channels!r}: expected auto, 1, 3 or 4")
    if opts.max_images is not None and (isinstance(opts.max_images, bool) or not isinstance(opts.max_images, int)
                                        or opts.max_images < 1):
        raise DatasetToolError("--max-images", f"{opts.max_images!r}: expected an integer >= 1")
    if opts.seed is not None and (not isinstance(opts.seed, int) or not 0 <= opts.seed < 2 ** 32):
        raise DatasetToolError("--seed", f"{opts.seed!r}: expected an integer in [0, 2**32)")
    if opts.seed is not None and opts.max_images is None:
        raise DatasetToolError("--seed", "it picks the random subset of --max-images; give --max-images too "
                                         "(without it every image is written, in name order)")
    if isinstance(opts.min_size, bool) or not isinstance(opts.min_size, int) or opts.min_size < 0:
        raise DatasetToolError("--min-size", f"{opts.min_size!r}: expected an integer >= 0")


def _is_zip_dest(dest: Path) -> bool:
    return dest.suffix.lower() == ".zip"


def _check_dest(opts: ToolOptions) -> Path:
    dest = Path(opts.dest).expanduser()
    source = Path(opts.source).expanduser()
    if source.exists():
        s, d = source.resolve(), dest.resolve()
        if d == s or s.is_relative_to(d) or (source.is_dir() and d.is_relative_to(s)):
            raise DatasetToolError("--dest", f"{opts.dest!r} is, contains or lies inside --source {opts.source!r}; "
                                             f"write the dataset elsewhere")
    if _is_zip_dest(dest):
        if dest.is_dir():
            raise DatasetToolError("--dest", f"{opts.dest!r} is a folder, not a .zip file")
        if dest.exists() and not opts.overwrite:
            raise DatasetToolError("--dest", f"{opts.dest!r} exists; pass --overwrite to replace it")
    else:
        if dest.exists() and not dest.is_dir():
            raise DatasetToolError("--dest", f"{opts.dest!r} is a file; pass a folder or a path ending in .zip")
        if dest.is_dir() and any(dest.iterdir()) and not opts.overwrite:
            raise DatasetToolError("--dest", f"folder {opts.dest!r} exists and is not empty; pass --overwrite to "
                                             f"replace its contents")
    return dest


@contextmanager
def _zip_writer(dest: Path) -> Iterator[Callable[[str, bytes], None]]:
    """write(name, bytes) into a zip that replaces `dest` atomically when the block succeeds."""
    with atomic_output(dest) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        def write(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the machine: byte-identical zips everywhere
            zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)
        yield write


@contextmanager
def _folder_writer(dest: Path) -> Iterator[Callable[[str, bytes], None]]:
    """write(name, bytes) into a temp folder renamed to `dest` when the block succeeds (an existing `dest` is
    moved aside first and deleted after the rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        def write(name: str, data: bytes) -> None:
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        yield write
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(tmp, dest)
        fsync_folder(dest.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------------------------
# Labels.

def _normalise(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _index_labels(raw: Dict[str, Any], classes: Optional[List[str]], where: str
                  ) -> Tuple[Dict[str, int], List[str]]:
    """name -> class index and the class names, from raw values that are all indices or all class names."""
    def as_int(v: Any) -> Optional[int]:
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return v
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            return int(v)
        return None

    ints = {k: as_int(v) for k, v in raw.items()}
    if all(v is not None for v in ints.values()):
        values = [v for v in ints.values() if v is not None]
        low, high = (min(values), max(values)) if values else (0, -1)
        if low < 0 or high >= MAX_CLASSES:
            bad = next(k for k, v in ints.items() if v is not None and (v < 0 or v >= MAX_CLASSES))
            raise DatasetToolError("--labels", f"{where} gives {bad!r} the label {ints[bad]}: expected class "
                                               f"indices from 0 to {MAX_CLASSES - 1}")
        names = list(classes) if classes else []
        names += [str(i) for i in range(len(names), high + 1)]
        return {k: int(v) for k, v in ints.items() if v is not None}, names
    names = sorted({str(v).strip() for v in raw.values()})
    index = {c: i for i, c in enumerate(names)}
    return {k: index[str(v).strip()] for k, v in raw.items()}, names


def _json_labels(meta: Any, where: str) -> Tuple[Optional[Dict[str, int]], Optional[List[str]]]:
    try:
        entries = meta["labels"]
        classes = meta.get("classes")
        if entries is None:
            return None, None
        pairs = entries.items() if isinstance(entries, dict) else [(e[0], e[1]) for e in entries]
        raw = {_normalise(str(k)): v for k, v in pairs}
        if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            raise TypeError("'classes' must be a list of names")
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise DatasetToolError("--labels", f"{where} must look like {{\"labels\": [[\"rel/path.png\", 0], ...], "
                                           f"\"classes\": [\"cat\", ...]}} ({type(e).__name__}: {e})") from None
    return _index_labels(raw, classes, where)


def _csv_labels(path: Path) -> Tuple[Dict[str, int], List[str]]:
    raw: Dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line, row in enumerate(csv.reader(f), 1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if line == 1 and row[0].strip().lower() in CSV_HEADER_NAMES:
                continue
            if len(row) < 2:
                raise DatasetToolError("--labels", f"{path}: line {line} has {len(row)} column(s): expected "
                                                   f"'relative/path.png,label'")
            raw[_normalise(row[0])] = row[1]
    return _index_labels(raw, None, str(path))


def resolve_labels(source: ImageSource, spec: str) -> Tuple[Optional[Dict[str, int]], Optional[List[str]], str]:
    """(name -> class index, class names, how) for `--labels`; every image must have a label and every label
    must name an image (the first few offenders are listed)."""
    where = spec
    if spec == "none" or (spec == "auto" and not source.has_labels()):
        return None, None, "none"
    if spec == "auto":
        where = f"{source.spec}/dataset.json"
        labels, classes = _json_labels(source.read_json(), where)
        if labels is None:
            return None, None, "none"
        how = "the source's dataset.json"
    elif spec == "subfolders":
        loose = [n for n in source.names if "/" not in n]
        if loose:
            raise DatasetToolError("--labels", f"subfolders: {len(loose)} image(s) are not inside a class folder, "
                                               f"e.g. {_first(loose)}")
        raw = {n: n.split("/", 1)[0] for n in source.names}
        classes = sorted(set(raw.values()))
        labels = {n: classes.index(c) for n, c in raw.items()}
        how = "subfolders"
    else:
        path = Path(spec).expanduser()
        if path.suffix.lower() not in (".json", ".csv"):
            raise DatasetToolError("--labels", f"{spec!r}: expected auto, none, subfolders, or a .json or .csv file")
        if not path.is_file():
            raise DatasetToolError("--labels", f"label file {spec!r} does not exist")
        if path.suffix.lower() == ".csv":
            labels, classes = _csv_labels(path)
        else:
            try:
                meta = json.loads(path.read_bytes())
            except ValueError as e:
                raise DatasetToolError("--labels", f"{spec} is not JSON ({e})") from None
            labels, classes = _json_labels(meta, spec)
            if labels is None:
                return None, None, "none"
        how = path.name
    names = set(source.names)
    absent = sorted(k for k in labels if k not in names)
    if absent:
        raise DatasetToolError("--labels", f"{where} names {len(absent)} image(s) that are not in the source, "
                                           f"e.g. {_first(absent)}")
    unlabelled = [n for n in source.names if n not in labels]
    if unlabelled:
        raise DatasetToolError("--labels", f"{where} has no label for {len(unlabelled)} image(s), "
                                           f"e.g. {_first(unlabelled)}")
    return labels, classes, how


# ---------------------------------------------------------------------------------------------------------------
# The run.

def _select(names: List[str], opts: ToolOptions) -> List[str]:
    """The order images are considered in: sorted, or (with a seed and --max-images) a seeded random order, so the
    first max_images usable ones are a random subset."""
    if opts.seed is None or opts.max_images is None:
        return names
    order = np.random.default_rng(opts.seed).permutation(len(names))
    return [names[i] for i in order]


def _png(pixels: np.ndarray) -> bytes:
    channels = pixels.shape[2]
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels, PNG_MODES[channels]).save(buffer, format="PNG")
    return buffer.getvalue()


def output_name(index: int) -> str:
    """NVlabs dataset_tool's layout: 1000 images per folder."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def build_dataset(opts: ToolOptions, progress: Optional[Callable[[int], ContextManager[Any]]] = None) -> Summary:
    """Writes the dataset and returns what it did. DatasetToolError (a ValueError) names the option to blame;
    nothing is written then. `progress(n)`: a context manager with `.update(k)` for the n images of pass 2."""
    start = time.monotonic()
    _check_options(opts)
    dest = _check_dest(opts)
    with ExitStack() as stack:
        try:
            source = ImageSource(opts.source, what="--source")
        except ValueError as e:
            raise DatasetToolError("--source", str(e)) from None
        stack.callback(source.close)
        if not source.names:
            raise DatasetToolError("--source", f"{opts.source!r} holds no image files: saw {source.files_seen} "
                                               f"file(s), none ending in {', '.join(IMAGE_EXTENSIONS)}")
        labels, classes, label_mode = resolve_labels(source, opts.labels)
        R, fit = opts.resolution, opts.fit
        skipped: Dict[str, List[str]] = {reason: [] for reason in SKIP_REASONS}

        # Pass 1: headers only.
        candidates: List[Tuple[str, int, int]] = []  # name, fitted side, channel vote
        for name in _select(source.names, opts):
            if opts.max_images is not None and len(candidates) >= opts.max_images:
                break
            try:
                width, height, votes = probe(source.read(name))
            except SkippedImage as e:
                skipped[e.reason].append(name)
                continue
            side = fit.source_side(width, height, R)
            if fit.transform == "none" and (width, height) != (R, R):
                skipped[WRONG_SIZE].append(name)
            elif side < opts.min_size:
                skipped[TOO_SMALL].append(name)
            else:
                candidates.append((name, side, votes))
        candidates.sort()
        channels, note = _channels(opts.channels, [v for _, _, v in candidates])

        # Pass 2: decode, convert, fit, encode; the destination appears only if all of it worked.
        written: List[Tuple[str, str]] = []  # (output name, source name)
        upscaled = 0
        writer = _zip_writer(dest) if _is_zip_dest(dest) else _folder_writer(dest)
        with writer as write, (progress(len(candidates)) if progress else _NoProgress()) as bar:
            for name, side, _ in candidates:
                try:
                    pixels = read_pixels(source.read(name), channels, R, fit)
                except SkippedImage as e:
                    skipped[e.reason].append(name)
                else:
                    out = output_name(len(written))
                    write(out, _png(pixels))
                    written.append((out, name))
                    upscaled += side < R
                bar.update(1)
            if not written:
                raise DatasetToolError("--source", f"none of the {len(source.names)} image file(s) of "
                                                   f"{opts.source!r} could be used: {_skip_text(skipped)}")
            meta: Dict[str, Any] = {"labels": None}
            if labels is not None:
                meta = {"labels": [[out, labels[name]] for out, name in written], "classes": classes}
            write("dataset.json", json.dumps(meta).encode("utf-8"))

    counts = None
    warnings: List[str] = []
    if labels is not None and classes is not None:
        tally = Counter(labels[name] for _, name in written)
        counts = [tally.get(i, 0) for i in range(len(classes))]
        for kind, want in (("1 image", 1), ("no images", 0)):
            few = [c for c, n in zip(classes, counts) if n == want]
            if few:
                warnings.append(f"{len(few)} class(es) with {kind}: {_first(few)} (too few to learn from)")
    for reason in SKIP_REASONS:
        skipped[reason].sort()
    return Summary(dest=str(dest), resolution=R, written=len(written), files_seen=source.files_seen,
                   image_files=len(source.names), skipped=skipped, channels=channels, channel_note=note,
                   upscaled=upscaled, label_mode=label_mode, classes=classes, class_counts=counts,
                   seconds=time.monotonic() - start, warnings=warnings)


def _channels(choice: Union[str, int], votes: List[int]) -> Tuple[int, str]:
    """The output channels and a note saying why and what was converted."""
    tally = Counter(votes)
    if choice == "auto":
        channels = tally.most_common(1)[0][0] if tally else 3
        how = f"auto: the majority of {len(votes)} image(s)"
    else:
        channels = int(choice)
        how = f"--channels {channels}"
    others = ", ".join(f"{n} {CHANNEL_NAMES[c]}" for c, n in sorted(tally.items()) if c != channels)
    alpha = " (alpha composited over white)" if channels != 4 and tally.get(4) else ""
    return channels, how + (f"; converted {others}{alpha}" if others else "")


class _NoProgress:
    def __enter__(self) -> "_NoProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, n: int) -> None:
        pass
