"""Reading image collections: THE path from a file's bytes to R x R uint8 pixels.

Why one module: the dataset cache behind `--data` (dataset.py) and `stylegan dataset` (dataset_tool.py) must turn
the same file into the same pixels, so both go through `ImageSource` (a folder, a .zip or a glob of image files),
`probe` (the header: size and the channel class an image votes for), `load` (decode, EXIF orientation, the
decompression-bomb guard) and `to_pixels` (channel conversion, then the `Fit`: crop / letterbox / stretch and resize).

Guards: Pillow's MAX_IMAGE_PIXELS stays on and its warning is an error here (an image above it is skipped as 'too
large'); zip members are checked before anything is read: a name escaping the archive (absolute, `..`) refuses the
archive, and so does a member declaring more than MAX_MEMBER_BYTES uncompressed (zipfile never inflates a member
past its declared size, so this bounds the memory a zip bomb can take).
"""
from __future__ import annotations

import glob as globlib
import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageColor, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_MEMBER_BYTES = 1 << 30  # 1 GiB: a 16k x 16k RGBA BMP; more is a zip bomb, not a training image

TRANSFORMS = ("center-crop", "center-crop-wide", "letterbox", "stretch", "none")
RESIZE_FILTERS = {"box": Image.BOX, "lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC}
PAD_EDGE = "edge"
GLOB_CHARS = "*?["

# Why an image was skipped (the keys of every skip count, in the order summaries list them).
UNREADABLE, TOO_LARGE, TOO_SMALL, WRONG_MODE, WRONG_SIZE = ("unreadable", "too large", "too small", "wrong mode",
                                                            "wrong size")
SKIP_REASONS = (UNREADABLE, TOO_LARGE, TOO_SMALL, WRONG_MODE, WRONG_SIZE)


class SkippedImage(Exception):
    """An image that cannot become training pixels; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------------------------------------
# Sources: a uniform view of folder / zip / glob members.

def unsafe_member(name: str) -> bool:
    """True for a zip member name that would land outside the archive's root when extracted (absolute, `..`)."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")


class ImageSource:
    """The images of a folder (recursive), a .zip or a glob pattern, as sorted '/'-separated relative names.

    `read(name)` gives a file's bytes; `fingerprint_items` changes whenever a file changes (the cache key);
    `labels()` reads a `dataset.json` at the root (folder and zip), None when there is none; `files_seen` counts
    every file looked at (images or not), for error messages.
    """

    def __init__(self, spec: str, what: str = "dataset") -> None:
        self.spec = spec
        self.what = what
        self._zip: Optional[zipfile.ZipFile] = None
        self._json: Optional[Path] = None
        path = Path(spec).expanduser()
        self.is_zip = path.is_file()
        if not path.exists() and any(ch in spec for ch in GLOB_CHARS):
            self._open_glob(spec)
        elif not path.exists():
            raise ValueError(f"{what} {spec!r} does not exist (expected a folder, a .zip file or a glob pattern "
                             f"of image files)")
        elif self.is_zip:
            self._open_zip(path)
        else:
            self._open_folder(path)

    def _open_folder(self, path: Path) -> None:
        self.path = path
        every = [p for p in path.rglob("*") if p.is_file()]
        self.files_seen = len(every)
        files = sorted(p for p in every if p.suffix.lower() in IMAGE_EXTENSIONS)
        self.names = [p.relative_to(path).as_posix() for p in files]
        self.fingerprint_items: List[Any] = [str(path.resolve())]
        for p, name in zip(files, self.names):
            st = p.stat()
            self.fingerprint_items.append([name, st.st_size, st.st_mtime_ns])
        js = path / "dataset.json"
        if js.is_file():
            self._json = js
            st = js.stat()
            self.fingerprint_items.append(["dataset.json", st.st_size, st.st_mtime_ns])

    def _open_glob(self, pattern: str) -> None:
        """The files matching `pattern` (recursive with **); names are relative to the pattern's fixed prefix."""
        expanded = str(Path(pattern).expanduser())
        every = [Path(p) for p in globlib.glob(expanded, recursive=True) if Path(p).is_file()]
        self.files_seen = len(every)
        files = sorted(p for p in every if p.suffix.lower() in IMAGE_EXTENSIONS)
        first = min(i for i, ch in enumerate(expanded) if ch in GLOB_CHARS)
        prefix = expanded[:first]
        root = Path(prefix.rsplit("/", 1)[0] or "/") if "/" in prefix else Path(".")
        self.path = root
        self.names = [p.relative_to(root).as_posix() for p in files]
        self.fingerprint_items = [pattern] + [[n, p.stat().st_size, p.stat().st_mtime_ns]
                                              for n, p in zip(self.names, files)]

    def _open_zip(self, path: Path) -> None:
        self.path = path
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{self.what} {self.spec!r} is a file but not a .zip archive")
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
        escaping = [i.filename for i in infos if unsafe_member(i.filename)]
        if escaping:
            raise ValueError(f"{self.what} {self.spec!r}: refusing a zip whose member names escape the archive "
                             f"({len(escaping)}, e.g. {escaping[0]!r}: absolute or with '..')")
        huge = [i for i in infos if i.file_size > MAX_MEMBER_BYTES]
        if huge:
            raise ValueError(f"{self.what} {self.spec!r}: refusing a zip whose member {huge[0].filename!r} "
                             f"declares {huge[0].file_size} bytes uncompressed (from {huge[0].compress_size}), "
                             f"above the limit of {MAX_MEMBER_BYTES} bytes per image (a zip bomb?)")
        self._members = {i.filename: i for i in infos}
        self.files_seen = len(infos)
        self.names = sorted(n for n in self._members if n.lower().endswith(IMAGE_EXTENSIONS))
        st = path.stat()
        self.fingerprint_items = [str(path.resolve()), st.st_size, st.st_mtime_ns]

    def read(self, name: str) -> bytes:
        if self.is_zip:
            if self._zip is None:  # kept open: re-reading the central directory per member is O(N^2)
                self._zip = zipfile.ZipFile(self.path)
            return self._zip.read(self._members[name])
        return (self.path / name).read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def has_labels(self) -> bool:
        return self._json is not None or (self.is_zip and "dataset.json" in self._members)

    def read_json(self) -> Any:
        """The root dataset.json, parsed (ValueError naming the source when it is not JSON)."""
        try:
            return json.loads(self._json.read_bytes() if self._json is not None else self.read("dataset.json"))
        except ValueError as e:
            raise ValueError(f"{self.spec}: dataset.json is not JSON ({e})") from None

    def labels(self) -> Optional[Dict[str, int]]:
        """name -> class index from the root dataset.json {"labels": [["rel/path.png", k], ...]}, or None."""
        if not self.has_labels():
            return None
        meta = self.read_json()
        try:
            entries = meta["labels"]
            if entries is None:
                return None
            return {str(k): int(v) for k, v in entries}
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{self.spec}: dataset.json must look like "
                             f'{{"labels": [["file.png", 0], ...]}} ({e})') from None


# ---------------------------------------------------------------------------------------------------------------
# Decoding.

def channels_of(img: Image.Image) -> int:
    """1 (gray), 3 (colour) or 4 (with alpha): the class an image votes for."""
    if img.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        return 1
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        return 4
    return 3


def _open(data: bytes) -> Image.Image:
    """Image.open with the decompression-bomb guard as an error (Pillow only warns between 1x and 2x its limit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise SkippedImage(TOO_LARGE, f"{e}") from None
        except Exception as e:  # noqa: BLE001 - any decoder error means "unreadable"
            raise SkippedImage(UNREADABLE, f"{type(e).__name__}: {e}") from None


def probe(data: bytes) -> Tuple[int, int, int]:
    """(width, height, channels) from the header, with EXIF orientation applied to the size; cheap."""
    img = _open(data)
    with img:
        w, h = img.size
        try:
            orientation = img.getexif().get(0x0112, 1)
        except Exception:  # noqa: BLE001 - broken EXIF: the orientation is unknown, the pixels may be fine
            orientation = 1
        if orientation in (5, 6, 7, 8):  # the transposing orientations
            w, h = h, w
        return w, h, channels_of(img)


def load(data: bytes) -> Image.Image:
    """The decoded image, EXIF orientation applied (a camera's portrait JPEG stands upright)."""
    img = _open(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img.load()
            return ImageOps.exif_transpose(img)
        except Exception as e:  # noqa: BLE001 - truncated/corrupt data only shows up on full decode
            raise SkippedImage(UNREADABLE, f"{type(e).__name__}: {e}") from None


def _over_white(img: Image.Image) -> Image.Image:
    """An image with alpha composited over white (how a transparent PNG looks on a page), as RGB."""
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def convert(img: Image.Image, channels: int) -> Image.Image:
    """The image as L (1), RGB (3) or RGBA (4); alpha dropped by compositing over white; 16-bit / float gray
    scaled to 8 bits. SkippedImage('wrong mode') when Pillow cannot convert the mode."""
    try:
        if img.mode.startswith("I") or img.mode == "F":
            arr = np.asarray(img, dtype=np.float64)
            if not np.isfinite(arr).all():
                raise SkippedImage(WRONG_MODE, f"mode {img.mode} with NaN or infinite pixels")
            hi = 65535.0 if arr.size and arr.max() > 255 else 255.0
            img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        has_alpha = channels_of(img) == 4
        if channels == 4:
            return img.convert("RGBA")
        if has_alpha:
            img = _over_white(img)
        return img.convert("L" if channels == 1 else "RGB")
    except (ValueError, OSError) as e:
        raise SkippedImage(WRONG_MODE, f"mode {img.mode}: {e}") from None


# ---------------------------------------------------------------------------------------------------------------
# Geometry.

@dataclass(frozen=True)
class Fit:
    """How an image becomes resolution x resolution.

    transform: 'center-crop' (largest centred square; NVlabs dataset_tool), 'center-crop-wide' (a centred band of
    aspect resolution:wide_height, resized to resolution x wide_height on a square canvas with bars of pad_color;
    NVlabs' wide crop), 'letterbox' (whole image, longer side = resolution, padded to a square with pad_color or the
    replicated edge), 'stretch' (resized ignoring the aspect), 'none' (must already be resolution x resolution).
    resize_filter: box (the official FID protocol at reduced resolution), lanczos (default) or bicubic.
    pad_color: a Pillow colour ('black', '#808080', '#ff000080' with alpha) or 'edge'.
    """

    transform: str = "center-crop"
    resize_filter: str = "lanczos"
    pad_color: str = "black"
    wide_height: Optional[int] = None  # center-crop-wide: the band's height in px (default 3/4 of the resolution)

    def problem(self, resolution: int) -> Optional[Tuple[str, str]]:
        """(field name, what is wrong and what was expected) for the first bad field, or None."""
        if self.transform not in TRANSFORMS:
            return "transform", f"{self.transform!r} is not one of {', '.join(TRANSFORMS)}"
        if self.resize_filter not in RESIZE_FILTERS:
            return "resize_filter", f"{self.resize_filter!r} is not one of {', '.join(RESIZE_FILTERS)}"
        if self.pad_color != PAD_EDGE:
            try:
                ImageColor.getrgb(self.pad_color)
            except ValueError:
                return "pad_color", (f"{self.pad_color!r} is not a colour: expected a name (black, white, ...), "
                                     f"#rrggbb, #rrggbbaa or {PAD_EDGE!r}")
        if self.wide_height is not None and not (isinstance(self.wide_height, int)
                                                 and 1 <= self.wide_height <= resolution):
            return "wide_height", f"{self.wide_height!r}: expected an integer from 1 to the resolution {resolution}"
        return None

    def check(self, resolution: int) -> None:
        """ValueError naming the first bad field and what was expected."""
        problem = self.problem(resolution)
        if problem is not None:
            raise ValueError(f"Fit.{problem[0]} = {problem[1]}")

    def band_height(self, resolution: int) -> int:
        return self.wide_height if self.wide_height is not None else max(1, round(resolution * 3 / 4))

    def source_side(self, width: int, height: int, resolution: int) -> int:
        """The source pixels that become `resolution` output pixels (below it, the image is upscaled)."""
        if self.transform == "letterbox":
            return max(width, height)
        if self.transform == "center-crop-wide":
            return min(width, round(height * resolution / self.band_height(resolution)))
        return min(width, height)

    def apply(self, img: Image.Image, resolution: int) -> Image.Image:
        """img (mode L / RGB / RGBA) -> resolution x resolution, same mode."""
        w, h = img.size
        R = resolution
        resample = RESIZE_FILTERS[self.resize_filter]
        if self.transform == "none":
            if (w, h) != (R, R):
                raise SkippedImage(WRONG_SIZE, f"{w}x{h}, not {R}x{R} (--transform none)")
            return img
        if self.transform == "stretch":
            return _resize(img, (R, R), resample)
        if self.transform == "center-crop":
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            return _resize(img.crop((left, top, left + s, top + s)), (R, R), resample)
        if self.transform == "center-crop-wide":
            band = self.band_height(R)
            crop_w, crop_h = w, max(1, round(w * band / R))
            if crop_h > h:  # wider than the band's aspect: crop the sides instead
                crop_w, crop_h = max(1, round(h * R / band)), h
            left, top = (w - crop_w) // 2, (h - crop_h) // 2
            picture = _resize(img.crop((left, top, left + crop_w, top + crop_h)), (R, band), resample)
            return self._pad(picture, R)
        # letterbox
        scale = R / max(w, h)
        size = (max(1, min(R, round(w * scale))), max(1, min(R, round(h * scale))))
        return self._pad(_resize(img, size, resample), R)

    def _pad(self, img: Image.Image, R: int) -> Image.Image:
        """img centred on an R x R canvas of pad_color (or its edge pixels replicated)."""
        w, h = img.size
        left, top = (R - w) // 2, (R - h) // 2
        if self.pad_color == PAD_EDGE:
            arr = np.asarray(img)
            widths = [(top, R - h - top), (left, R - w - left)] + [(0, 0)] * (arr.ndim - 2)
            return Image.fromarray(np.pad(arr, widths, mode="edge"), img.mode)
        canvas = Image.new(img.mode, (R, R), ImageColor.getcolor(self.pad_color, img.mode))
        canvas.paste(img, (left, top))
        return canvas


def _resize(img: Image.Image, size: Tuple[int, int], resample: int) -> Image.Image:
    return img if img.size == size else img.resize(size, resample)


def to_pixels(img: Image.Image, channels: int, resolution: int, fit: Fit) -> np.ndarray:
    """A decoded image -> uint8 [resolution, resolution, channels]: channels converted first, then the fit."""
    out = fit.apply(convert(img, channels), resolution)
    return np.asarray(out, dtype=np.uint8).reshape(resolution, resolution, channels)


def read_pixels(data: bytes, channels: int, resolution: int, fit: Fit) -> np.ndarray:
    """A file's bytes -> uint8 [resolution, resolution, channels] (load + to_pixels); SkippedImage says why not."""
    img = load(data)
    with img:
        return to_pixels(img, channels, resolution, fit)
