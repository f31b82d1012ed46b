"""`TrainConfig`: every knob of a training run in one frozen, JSON-serialisable dataclass.

Field names follow the official NVlabs StyleGAN hyperparameters where one exists (`train.py` "Default options" and
the 1-GPU branch, `training/training_loop.py` `training_schedule()` / `training_loop()` arguments), so a reader can
compare a run with the paper's setup. The config is saved next to every checkpoint (`config.json` in the run folder
and inside the checkpoint), which is what makes `--resume` reproduce the same schedule.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

# Official 1-GPU minibatch sizes (NVlabs stylegan train.py: `desc += '-1gpu'; sched.minibatch_base = 4;
# sched.minibatch_dict = {...}`) and learning rates (`sched.G_lrate_dict`, base 0.001 from training_schedule()).
OFFICIAL_MINIBATCH_DICT: Dict[int, int] = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}
OFFICIAL_LRATE_DICT: Dict[int, float] = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}

LOSS_NAMES = ("wgan-gp", "logistic", "hinge")


def _int_keys(d: Dict[Any, Any], name: str) -> Dict[int, Any]:
    """JSON turns int dict keys into strings; turn them back (and reject non-integers clearly)."""
    out: Dict[int, Any] = {}
    for k, v in d.items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            raise ValueError(f"TrainConfig.{name}: key {k!r} is not an integer resolution") from None
    return out


def _is_pow2(x: int) -> bool:
    return isinstance(x, int) and x >= 1 and (x & (x - 1)) == 0


@dataclass(frozen=True)
class TrainConfig:
    """All settings of one `stylegan train` run; immutable so the schedule cannot drift mid-run."""

    # --- run options -------------------------------------------------------------------------------------------
    outdir: str = "runs/train"
    data: str = "builtin:glyphs"
    resolution: int = 32                      # final (target) resolution; power of two
    cache_dir: Optional[str] = None           # dataset cache; None -> $STYLEGAN_CACHE or ~/.cache/stylegan/datasets
    glyphs_count: int = 10000                 # size of builtin:glyphs
    strict_data: bool = False                 # unreadable images: fail (True) or skip + count (False)
    loss: str = "wgan-gp"
    wgan_lambda: float = 10.0                 # official D_wgan_gp gradient-penalty weight
    r1_gamma: float = 10.0                    # official D_logistic_simplegp R1 weight (tuned for FFHQ at 1024 px)
    seed: int = 0
    device: str = "auto"                      # cpu | cuda | cuda:N | auto (CUDA when available)
    cond: bool = False                        # condition G and D on the dataset's class labels
    workers: int = 2                          # DataLoader worker processes
    tick_kimg: float = 4.0                    # kimg between status lines / log records
    snapshot_ticks: int = 5                   # ticks between checkpoints + fake grids (official network_snapshot_ticks)
    keep_checkpoints: int = 3                 # keep the last K periodic checkpoints (level-change ones count too)
    deterministic: bool = True                # torch.use_deterministic_algorithms(True, warn_only=True)
    swd_num: int = 1024                       # images per set for the SWD logged at each snapshot (0: none)

    # --- network size (GeneratorConfig/DiscriminatorConfig fields; official defaults) --------------------------
    fmap_base: int = 8192
    fmap_max: int = 512
    latent_size: int = 512
    dlatent_size: int = 512
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    # G's 2x up-convs and D's 2x down-convs as ONE stride-2 (transposed) convolution with the 4x4 summed kernel:
    # True at every resolution, 'auto' = official (from 128 px), False never. D computes the same function either
    # way; G's fused up-conv is the unfused one with its 3x3 kernel flipped (official semantics), the same function
    # family under the same init and Adam. ~2.25x fewer FLOPs for those convs: measured ~0.8x the CPU time of
    # a 32 px WGAN-GP step, hence the default. Configs saved before this field existed meant 'auto' (from_dict).
    fused_scale: Union[bool, str] = True

    # --- official training_loop() arguments --------------------------------------------------------------------
    total_kimg: float = 100.0
    G_smoothing_kimg: float = 10.0            # half-life of the G_ema running average (official 10.0)
    D_repeats: int = 1                        # official 1
    minibatch_repeats: int = 1                # official 4; 1 here: lod/lr are re-evaluated every minibatch
    reset_opt_for_new_lod: bool = True        # official True: reset Adam moments when the level changes
    mirror_augment: bool = False
    dlatent_avg_beta: float = 0.995           # official G_style default
    style_mixing_prob: float = 0.9            # official G_style default
    G_beta1: float = 0.0                      # official G_opt/D_opt: beta1=0.0, beta2=0.99, epsilon=1e-8
    G_beta2: float = 0.99
    D_beta1: float = 0.0
    D_beta2: float = 0.99
    adam_epsilon: float = 1e-8

    # --- official training_schedule() arguments (1-GPU values from train.py) -----------------------------------
    lod_initial_resolution: int = 8
    lod_training_kimg: float = 600.0
    lod_transition_kimg: float = 600.0
    minibatch_base: int = 4
    minibatch_dict: Dict[int, int] = field(default_factory=lambda: dict(OFFICIAL_MINIBATCH_DICT))
    batch: Optional[int] = None               # --batch: one minibatch size at every resolution (overrides the dict)
    G_lrate_base: float = 0.001
    G_lrate_dict: Dict[int, float] = field(default_factory=lambda: dict(OFFICIAL_LRATE_DICT))
    D_lrate_base: float = 0.001
    D_lrate_dict: Dict[int, float] = field(default_factory=lambda: dict(OFFICIAL_LRATE_DICT))
    lrate_rampup_kimg: float = 0.0

    def __post_init__(self) -> None:
        # Accept dicts that came through JSON (string keys) and normalise them to int keys.
        for name in ("minibatch_dict", "G_lrate_dict", "D_lrate_dict"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ValueError(f"TrainConfig.{name}: expected a dict resolution -> value, got {value!r}")
            object.__setattr__(self, name, _int_keys(value, name))
        self.validate()

    # ------------------------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the first bad field; called on construction so a bad config never trains."""

        def bad(name: str, expected: str) -> None:
            raise ValueError(f"TrainConfig.{name} = {getattr(self, name)!r}: expected {expected}")

        if not _is_pow2(self.resolution) or self.resolution < 4:
            bad("resolution", "a power of two >= 4")
        if not _is_pow2(self.lod_initial_resolution) or self.lod_initial_resolution < 4:
            bad("lod_initial_resolution", "a power of two >= 4")
        if self.lod_initial_resolution > self.resolution:
            bad("lod_initial_resolution", f"<= resolution ({self.resolution})")
        if self.loss not in LOSS_NAMES:
            bad("loss", f"one of {', '.join(LOSS_NAMES)}")
        for name in ("total_kimg",):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                bad(name, "a finite number > 0")
        for name in ("lod_training_kimg", "lod_transition_kimg", "G_smoothing_kimg", "lrate_rampup_kimg",
                     "wgan_lambda", "r1_gamma"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                bad(name, "a finite number >= 0")
        if not (self.tick_kimg > 0):
            bad("tick_kimg", "a number > 0")
        for name in ("snapshot_ticks", "keep_checkpoints", "D_repeats", "minibatch_repeats", "minibatch_base",
                     "fmap_base", "fmap_max", "latent_size", "dlatent_size", "mapping_fmaps", "glyphs_count"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                bad(name, "an integer >= 1")
        if not (isinstance(self.mapping_layers, int) and self.mapping_layers >= 1):
            bad("mapping_layers", "an integer >= 1")
        for name in ("workers", "swd_num"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                bad(name, "an integer >= 0")
        if self.batch is not None and not (isinstance(self.batch, int) and self.batch >= 1):
            bad("batch", "None or an integer >= 1")
        for res, mb in self.minibatch_dict.items():
            if not (isinstance(mb, int) and mb >= 1):
                raise ValueError(f"TrainConfig.minibatch_dict[{res}] = {mb!r}: expected an integer >= 1")
        for name in ("G_lrate_dict", "D_lrate_dict"):
            for res, lr in getattr(self, name).items():
                if not (isinstance(lr, (int, float)) and lr > 0):
                    raise ValueError(f"TrainConfig.{name}[{res}] = {lr!r}: expected a learning rate > 0")
        for name in ("G_lrate_base", "D_lrate_base", "adam_epsilon"):
            if not (getattr(self, name) > 0):
                bad(name, "a number > 0")
        for name in ("G_beta1", "G_beta2", "D_beta1", "D_beta2", "dlatent_avg_beta", "style_mixing_prob"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                bad(name, "a number in [0, 1]")
        if not self.data:
            bad("data", "a folder, a .zip file or builtin:glyphs")
        if not (isinstance(self.fused_scale, bool) or self.fused_scale == "auto"):
            bad("fused_scale", "True, False or 'auto'")

    # ------------------------------------------------------------------------------------------------------------
    @property
    def resolution_log2(self) -> int:
        return int(round(math.log2(self.resolution)))

    def replace(self, **changes: Any) -> "TrainConfig":
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict with JSON-safe values (dict keys become strings in JSON; from_dict turns them back)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        """Build from a dict; unknown keys are an error (a typo should not silently fall back to a default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {', '.join(unknown)}")
        if "fused_scale" not in d:  # saved before the field existed: those runs built their networks with 'auto'
            d = {**d, "fused_scale": "auto"}
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))
