"""One request type per image route: the validated arguments, the computation on the worker (through the same
functions the CLI calls, encoded by stylegan.images' one PNG / animation encoder) and the CLI command that writes
the same bytes (`NETWORK` standing for the network file as given at start).

Each request is a frozen dataclass, so it is its own cache key.
"""
from __future__ import annotations

import shlex
from dataclasses import astuple, dataclass
from typing import List, Optional

import torch

from .. import generate as api
from ..cli.generate import ANIMATION_FORMATS, animation_duration_ms
from ..cli.generate import interpolate as interpolate_command
from ..cli.generate import generate as generate_command
from ..cli.generate import style_mixing as style_mixing_command
from ..cli.directions import directions as directions_command
from ..cli.edit import edit as edit_command
from ..images import animation_bytes, png_bytes, tile
from ..precision import Precision
from .params import MAX_FRAMES, MAX_GRID_SEEDS, MAX_INTERP_SEEDS, MAX_STRENGTH, ParamError, Query, cli_default
from .state import ServedNetwork

NETWORK = "NETWORK"
PNG, GIF = "image/png", "image/gif"
INTERP_FORMATS = {"gif": ".gif", "png": ".png", "strip": ".png"}  # format= -> the CLI's --out extension


def command_line(*words: object) -> str:
    """A shell command line of `words` (quoted where needed)."""
    return shlex.join(str(w) for w in words)


def _seeds_text(seeds: List[int]) -> str:
    return ",".join(str(s) for s in seeds)


def _common_options(psi: float, cutoff: Optional[int], noise: Optional[str], class_idx: Optional[int]
                    ) -> List[object]:
    """The sampling options of a CLI command (noise None: a command without --noise-mode, e.g. edit)."""
    options: List[object] = ["--trunc", repr(psi)]
    if cutoff is not None:
        options += ["--trunc-cutoff", cutoff]
    if noise is not None:
        options += ["--noise-mode", noise]
    if class_idx is not None:
        options += ["--class", class_idx]
    return options


def _device_options(device: torch.device, precision: Precision) -> List[object]:
    options: List[object] = ["--device", str(device)]
    if precision.name != "fp32":
        options += ["--precision", precision.name]
    return options


def _cutoff(cutoff: Optional[int]) -> int:
    return cli_default(generate_command, "cutoff") if cutoff is None else cutoff


@dataclass(frozen=True)
class Truncation:
    """psi, cutoff, noise and class: the options the sampling routes share."""

    psi: float
    cutoff: Optional[int]
    noise: str
    class_idx: Optional[int]

    @staticmethod
    def parse(query: Query, G: torch.nn.Module) -> "Truncation":
        return Truncation(query.psi(cli_default(generate_command, "psi")), query.cutoff(int(G.num_layers)),
                          query.noise(cli_default(generate_command, "noise_mode")), query.class_idx(G))

    def options(self) -> List[object]:
        return _common_options(self.psi, self.cutoff, self.noise, self.class_idx)

    @property
    def cacheable(self) -> bool:
        return self.noise != "random"


@dataclass(frozen=True)
class GenerateRequest:
    """/api/generate: one seed's image, as `stylegan generate --seeds S` writes OUT/seedSSSS.png."""

    net: int
    seed: int
    truncation: Truncation
    lod: Optional[float]

    PARAMS = ("net", "seed", "psi", "cutoff", "noise", "class", "lod", "slot")
    media_type = PNG

    @staticmethod
    def parse(query: Query, served: ServedNetwork) -> "GenerateRequest":
        return GenerateRequest(served.index, query.seed(), Truncation.parse(query, served.G), query.lod(served.G))

    def render(self, served: ServedNetwork, precision: Precision) -> bytes:
        t = self.truncation
        lod = served.default_lod if self.lod is None else self.lod
        images = api.generate_images(served.G, [self.seed], psi=t.psi, cutoff=_cutoff(t.cutoff), noise_mode=t.noise,
                                     class_idx=t.class_idx, lod=lod, progress=False, precision=precision)
        return png_bytes(images[0])

    def command(self, device: torch.device, precision: Precision) -> str:
        lod = [] if self.lod is None else ["--lod", repr(self.lod)]
        return command_line("stylegan", "generate", "--network", NETWORK, "--seeds", self.seed,
                            *self.truncation.options(), *lod, *_device_options(device, precision), "--outdir", "out")

    @property
    def cacheable(self) -> bool:
        return self.truncation.cacheable


@dataclass(frozen=True)
class MixRequest:
    """/api/mix: the style-mixing grid, as `stylegan style-mixing` writes OUT/grid.png."""

    net: int
    rows: tuple
    cols: tuple
    styles: str
    layers: tuple
    truncation: Truncation

    PARAMS = ("net", "rows", "cols", "styles", "psi", "cutoff", "noise", "class", "slot")
    media_type = PNG

    @staticmethod
    def parse(query: Query, served: ServedNetwork) -> "MixRequest":
        G = served.G
        rows = query.seeds("rows", 1, MAX_GRID_SEEDS, cli_default(style_mixing_command, "row_seeds"))
        cols = query.seeds("cols", 1, MAX_GRID_SEEDS, cli_default(style_mixing_command, "col_seeds"))
        styles, layers = query.layers("styles", int(G.num_layers), cli_default(style_mixing_command, "styles"))
        try:
            api.check_grid_size(G, len(cols) + 1, len(rows) + 1)
        except ValueError as exc:
            raise ParamError("rows", str(exc)) from None
        return MixRequest(served.index, tuple(rows), tuple(cols), styles, tuple(layers), Truncation.parse(query, G))

    def render(self, served: ServedNetwork, precision: Precision) -> bytes:
        t = self.truncation
        grid, _ = api.style_mixing_grid(served.G, list(self.rows), list(self.cols), list(self.layers), psi=t.psi,
                                        cutoff=_cutoff(t.cutoff), noise_mode=t.noise, class_idx=t.class_idx,
                                        progress=False, precision=precision)
        return png_bytes(grid)

    def command(self, device: torch.device, precision: Precision) -> str:
        return command_line("stylegan", "style-mixing", "--network", NETWORK, "--rows", _seeds_text(list(self.rows)),
                            "--cols", _seeds_text(list(self.cols)), "--styles", self.styles,
                            *self.truncation.options(), *_device_options(device, precision), "--outdir", "out")

    @property
    def cacheable(self) -> bool:
        return self.truncation.cacheable


@dataclass(frozen=True)
class InterpolateRequest:
    """/api/interpolate: the looping walk as `stylegan interpolate --out x.gif` (format=gif), an animated PNG
    (format=png, `--out x.png`) or every frame side by side in one PNG (format=strip, `--strip --out x.png`)."""

    net: int
    seeds: tuple
    space: str
    frames: int
    format: str
    truncation: Truncation

    PARAMS = ("net", "seeds", "space", "frames", "format", "psi", "cutoff", "noise", "class", "slot")

    @staticmethod
    def parse(query: Query, served: ServedNetwork) -> "InterpolateRequest":
        G = served.G
        seeds = query.seeds("seeds", 2, MAX_INTERP_SEEDS)
        space = query.choice("space", api.INTERPOLATION_SPACES, cli_default(interpolate_command, "space"))
        frames = query.integer("frames", cli_default(interpolate_command, "frames"), 1, MAX_FRAMES)
        fmt = query.choice("format", tuple(INTERP_FORMATS), "gif")
        try:
            api.check_result_size(G, frames, "frames")
            if fmt == "strip":
                api.check_grid_size(G, frames, 1)
        except ValueError as exc:
            raise ParamError("frames", str(exc)) from None
        return InterpolateRequest(served.index, tuple(seeds), space, frames, fmt, Truncation.parse(query, G))

    @property
    def media_type(self) -> str:
        return GIF if self.format == "gif" else PNG

    def render(self, served: ServedNetwork, precision: Precision) -> bytes:
        t = self.truncation
        video = api.interpolate(served.G, list(self.seeds), self.frames, space=self.space, psi=t.psi,
                                cutoff=_cutoff(t.cutoff), noise_mode=t.noise, class_idx=t.class_idx, progress=False,
                                precision=precision)
        if self.format == "strip":
            return png_bytes(tile([list(video)]))
        fps = cli_default(interpolate_command, "fps")
        return animation_bytes(video, ANIMATION_FORMATS[INTERP_FORMATS[self.format]], animation_duration_ms(fps))

    def command(self, device: torch.device, precision: Precision) -> str:
        strip = ["--strip"] if self.format == "strip" else []
        return command_line("stylegan", "interpolate", "--network", NETWORK, "--seeds", _seeds_text(list(self.seeds)),
                            "--frames", self.frames, "--space", self.space, *self.truncation.options(),
                            *_device_options(device, precision), *strip, "--out",
                            "interpolation" + INTERP_FORMATS[self.format])

    @property
    def cacheable(self) -> bool:
        return self.truncation.cacheable


@dataclass(frozen=True)
class EditRequest:
    """/api/edit: a seed's (or a finished projection job's) image moved along one direction on chosen layers, as
    `stylegan edit --strengths X` writes it (one source, one strength: the strip is that image)."""

    net: int
    job: Optional[str]
    seed: Optional[int]
    truncation: Optional[Truncation]
    directions: str
    index: int
    strength: float
    layers_text: Optional[str]
    layers: tuple

    PARAMS = ("net", "job", "seed", "psi", "cutoff", "class", "directions", "index", "strength", "layers", "slot")
    media_type = PNG
    cacheable = True

    @staticmethod
    def parse(query: Query, served: ServedNetwork, job_of) -> "EditRequest":
        """job_of(id) -> the finished job's id (ParamError / NotFound otherwise), from the app's job store."""
        G = served.G
        job_id, seed = query.text("job"), None
        if (job_id is None) == (query.text("seed") is None):
            raise ParamError("job", "pass either job=ID (a finished projection) or "
                                                                  "seed=S, not both")
        truncation = None
        if job_id is None:
            seed = query.seed()
            truncation = Truncation(query.psi(cli_default(edit_command, "psi")), query.cutoff(int(G.num_layers)), "const",
                                    query.class_idx(G))
        else:
            for name in ("psi", "cutoff", "class"):
                if query.text(name) is not None:
                    raise ParamError(name, f"{name} goes with seed=: a projection's latents are edited as they are")
            job_id = job_of(job_id)
        name = query.required("directions", f"one of {', '.join(served.direction_sets)}")
        chosen = served.direction_sets.get(name)
        if chosen is None:
            raise ParamError("directions", f"directions={name!r} is unknown: expected one of "
                                           f"{', '.join(served.direction_sets)}")
        index = query.integer("index", cli_default(edit_command, "index"), 0, chosen.count - 1)
        strength = query.number("strength", 0.0, MAX_STRENGTH)
        default_layers = None if chosen.directions is None else chosen.directions.layers
        text, layers = query.layers("layers", int(G.num_layers), None)
        if text is None:
            layers = list(default_layers) if default_layers is not None else list(range(int(G.num_layers)))
        return EditRequest(served.index, job_id, seed, truncation, name, index, strength, text, tuple(layers))

    def render(self, served: ServedNetwork, job) -> bytes:
        from ..edit import direction_vector, edit_images, edit_strip
        from .state import derived_directions

        G = served.G
        device = api.model_device(G)
        num = cli_default(directions_command, "num")
        num_samples = cli_default(directions_command, "num_samples")
        dirs = served.directions(self.directions,
                                 lambda method: derived_directions(G, method, num, num_samples, served.digest))
        if job is None:
            t = self.truncation
            ws, noise = api.ws_from_seeds(G, [self.seed], t.psi, _cutoff(t.cutoff), t.class_idx), None
        else:
            ws, noise = job.ws, job.noise
        images = edit_images(G, ws.to(device), direction_vector(dirs, self.index).to(device), [self.strength],
                             list(self.layers), noise)
        return png_bytes(edit_strip(images))

    def command(self, served: ServedNetwork, device: torch.device) -> str:
        chosen = served.direction_sets[self.directions]
        prefix = ""
        if chosen.path is None:
            path = f"{chosen.method}.npz"
            prefix = command_line("stylegan", "directions", "--network", NETWORK, "--method", chosen.method,
                                  "--device", device, "--out", path) + " && "
        else:
            path = str(chosen.path)
        if self.job is None:
            t = self.truncation
            source: List[object] = ["--seeds", self.seed, *_common_options(t.psi, t.cutoff, None, t.class_idx)]
        else:
            source = ["--ws", "projected.npz"]
        layers = [] if self.layers_text is None else ["--layers", self.layers_text]
        return prefix + command_line("stylegan", "edit", "--network", NETWORK, *source, "--directions", path,
                                     "--index", self.index, f"--strengths={self.strength!r}", *layers,
                                     "--device", device, "--out", "edit.png")


def cache_key(request: object) -> tuple:
    return (type(request).__name__,) + astuple(request)


__all__ = ["GenerateRequest", "MixRequest", "InterpolateRequest", "EditRequest", "Truncation", "command_line", "cache_key",
           "NETWORK", "PNG", "GIF"]
