"""`TrainConfig`: every knob of a training run in one frozen, JSON-serialisable dataclass.

Field names follow the official NVlabs StyleGAN hyperparameters where one exists (`train.py` "Default options" and
the 1-GPU branch, `training/training_loop.py` `training_schedule()` / `training_loop()` arguments), so a reader can
compare a run with the paper's setup. The config is saved next to every checkpoint (`config.json` in the run folder
and inside the checkpoint), which is what makes `--resume` reproduce the same schedule.

This dataclass is the single source of truth of `stylegan train`: a field's `metadata["cli"]` (a `CliOption`) makes
it a command-line option (`stylegan/cli/train.py` generates the click options from these fields), and `validate()`
is the only place where values are checked. Network-size and loss defaults are read from `GeneratorConfig` and
`training.losses`, so each default is written once.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from ..config import GeneratorConfig, JsonConfig
from ..devices import DEVICE_NAME
from ..generate import MAX_SEED
from ..metrics.protocols import PROTOCOLS, parse_metric_names, protocol_for
from ..fp16_recipe import DEFAULT_NUM_FP16_RES
from ..precision import PRECISIONS
from .ada import ADA_INTERVAL, ADA_KIMG, ADA_KIMG_RESUME, ADA_TARGET
from .augment import AUGPIPES
from .glyphs import GLYPH_STYLES
from .losses import LOSS_PRESETS, LOSSES, R1_GAMMA, WGAN_CLIP, WGAN_LAMBDA

# Official 1-GPU minibatch sizes (NVlabs stylegan train.py: `desc += '-1gpu'; sched.minibatch_base = 4;
# sched.minibatch_dict = {...}`) and learning rates (`sched.G_lrate_dict`, base 0.001 from training_schedule()).
OFFICIAL_MINIBATCH_DICT: Dict[int, int] = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}
OFFICIAL_LRATE_DICT: Dict[int, float] = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}

LOSS_NAMES = tuple(LOSSES)
OPTIMIZERS = ("adam", "rmsprop")
AUGMENT_KINDS = ("none", "ada", "diffaug")
FUSED_SCALE_CHOICES: Dict[str, Union[bool, str]] = {"true": True, "auto": "auto", "false": False}  # CLI text -> value
MBSTD_GROUP_SIZE = 4  # D's minibatch-stddev group (official D_basic mbstd_group_size, training default)
SAME = object()  # CliOption.sets value: "the same value as the option itself"


def _official(name: str) -> Any:
    """The official default of a GeneratorConfig field (so the network-size defaults live in one place)."""
    return next(f.default for f in dataclasses.fields(GeneratorConfig) if f.name == name)


@dataclass(frozen=True)
class CliOption:
    """How a TrainConfig field appears on `stylegan train`.

    `flag`: the option name; `help`: its help text; `type`: the value type when the field's default is None;
    `choices`: command-line text -> field value; `sets`: other fields the option sets too (`SAME` = the same
    value, anything else = that constant); `show_default`: what to show when the field default says too little;
    `presets`: option value -> {field: value} set too when the option changes the value, unless those fields'
    options are given as well (`--loss wgan` brings RMSprop, its learning rate and 5 D steps).
    """

    flag: str
    help: str
    type: Optional[type] = None
    choices: Optional[Mapping[str, Any]] = None
    sets: Mapping[str, Any] = field(default_factory=dict)
    show_default: Optional[str] = None
    required: bool = False
    presets: Mapping[Any, Mapping[str, Any]] = field(default_factory=dict)


def _opt(default: Any = dataclasses.MISSING, *, factory: Optional[Callable[[], Any]] = None,
         cli: Optional[CliOption] = None) -> Any:
    """A dataclass field with an optional command-line option in its metadata."""
    metadata = {"cli": cli} if cli is not None else {}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


class ConfigError(ValueError):
    """A bad TrainConfig value: names the field, the value and what was expected.

    `expected` may name other fields as `{field_name}`; `render(namer)` writes them (and the field) the way the
    caller calls them (`TrainConfig.x` in the API, `--option` at the command line).
    """

    def __init__(self, field_name: str, value: Any, expected: str) -> None:
        self.field = field_name
        self.value = value
        self.expected = expected
        super().__init__(f"TrainConfig.{field_name} = {value!r}: expected {self.render_expected(lambda f: f)}")

    def render_expected(self, namer: Callable[[str], str]) -> str:
        names = {f.name: namer(f.name) for f in dataclasses.fields(TrainConfig)}
        return self.expected.format(**names)


def _int_keys(d: Dict[Any, Any], name: str) -> Dict[int, Any]:
    """JSON turns int dict keys into strings; turn them back (and reject non-integers clearly)."""
    out: Dict[int, Any] = {}
    for k, v in d.items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            raise ConfigError(name, d, f"integer resolutions as keys, not {k!r}") from None
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_pow2(x: Any) -> bool:
    return _is_int(x) and x >= 1 and (x & (x - 1)) == 0


def mbstd_batch_problem(batch: int, world_size: int = 1) -> Optional[str]:
    """Why a global minibatch cannot run D's minibatch-stddev on `world_size` ranks, or None if it can.

    Each rank's share is split into groups of min(4, share) (official group size 4): above 4 it must be a multiple
    of 4, below it any size works.
    """
    local = batch // world_size
    group = min(MBSTD_GROUP_SIZE, local)
    if group < 1 or local % group == 0:
        return None
    per_rank = f" ({local} per rank on {world_size} ranks)" if world_size > 1 else ""
    return (f"minibatch {batch}{per_rank} is not divisible by the minibatch-stddev group size {group}; use a "
            f"multiple of {MBSTD_GROUP_SIZE * world_size} (or 1-3 per rank)")


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """All settings of one `stylegan train` run; immutable so the schedule cannot drift mid-run."""

    # --- run options -------------------------------------------------------------------------------------------
    outdir: str = _opt("runs/train", cli=CliOption("--outdir", "Run folder (checkpoints, logs, grids).",
                                                   required=True))
    data: str = _opt("builtin:glyphs", cli=CliOption("--data", "Image folder, .zip of images, or builtin:glyphs."))
    resolution: int = _opt(32, cli=CliOption(
        "--resolution", "Final resolution (power of two, >= --start-res). Smaller images are upscaled (warning); "
                        "if all are smaller it is an error."))
    cache_dir: Optional[str] = _opt(None, cli=CliOption(
        "--cache-dir", "Dataset cache folder.", type=str,
        show_default="$STYLEGAN_CACHE_DIR/datasets or ~/.cache/stylegan/datasets"))
    glyphs_count: int = _opt(10000, cli=CliOption("--glyphs", "Number of images of builtin:glyphs."))
    glyphs_style: str = _opt("solid", cli=CliOption(
        "--glyphs-style", "Stroke style of builtin:glyphs: solid, or hollow outline glyphs (the same glyphs, colours "
                          "and poses).", choices={s: s for s in GLYPH_STYLES}))
    strict_data: bool = _opt(False, cli=CliOption("--strict", "Fail on unreadable images instead of skipping them."))
    loss: str = _opt("wgan-gp", cli=CliOption(
        "--loss", "GAN loss (docs/LOSSES.md): wgan-gp, logistic (non-saturating), hinge; for comparison lsgan "
                  "(least squares; sets --r1-gamma 0 unless given) and wgan (the original WGAN with weight "
                  "clipping; WGAN-GP is its improvement; sets --optimizer rmsprop --lr 5e-5 --d-repeats 5 unless "
                  "given, as Arjovsky et al. 2017).",
        choices={n: n for n in LOSS_NAMES}, presets=LOSS_PRESETS))
    wgan_lambda: float = _opt(WGAN_LAMBDA, cli=CliOption(
        "--gp-lambda", "wgan-gp: gradient-penalty weight (official D_wgan_gp wgan_lambda)."))
    r1_gamma: float = _opt(R1_GAMMA, cli=CliOption(
        "--r1-gamma", "logistic: R1 weight (official 10, tuned for 1024 px; small images want far less, "
                      "e.g. 0.05); lsgan: optional R1 weight (0: none)."))
    wgan_clip: float = _opt(WGAN_CLIP, cli=CliOption(
        "--wgan-clip", "wgan: D's parameters are clipped to [-c, c] after every D step (Arjovsky et al. 0.01)."))
    seed: int = _opt(0, cli=CliOption("--seed", "Random seed."))
    device: str = _opt("auto", cli=CliOption("--device", "cpu, cuda, cuda:N or auto (CUDA when available)."))
    cond: bool = _opt(False, cli=CliOption("--cond", "Condition G and D on the dataset's class labels."))
    # stylegan/precision.py: the run's config (and config.json) holds what `auto` chose
    precision: str = _opt("fp32", cli=CliOption(
        "--precision", "Arithmetic of G's and D's convolutions and dense layers: fp32 (exact), bf16 (autocast; "
                       "fast on CPUs with amx_bf16/avx512_bf16 and CUDA sm80+), auto (bf16 where native, else "
                       "fp32). Weights, optimiser state and losses stay fp32.",
        choices={n: n for n in PRECISIONS}))
    # stylegan/fp16_recipe.py (official num_fp16_res, stylegan2-ada-pytorch): used by --precision fp16 only
    num_fp16_res: int = _opt(DEFAULT_NUM_FP16_RES, cli=CliOption(
        "--fp16-res", "--precision fp16 (CUDA): how many of the highest resolutions run in float16 (official "
                      "num_fp16_res); the others run in float32."))
    workers: int = _opt(2, cli=CliOption("--workers", "DataLoader worker processes."))
    tick_kimg: float = _opt(4.0, cli=CliOption("--tick", "kimg between status lines / log records."))
    snapshot_ticks: int = _opt(5, cli=CliOption(
        "--snap", "Ticks between checkpoints and fake grids (official network_snapshot_ticks)."))
    keep_checkpoints: int = _opt(3, cli=CliOption(
        "--keep", "Periodic checkpoints kept (level-change ones count too)."))
    deterministic: bool = True                # torch.use_deterministic_algorithms(True, warn_only=True)
    swd_num: int = _opt(1024, cli=CliOption(
        "--swd-num", "Images per set for the SWD (x1e3, PGGAN protocol) logged at each snapshot from 16 px; "
                     "0: off."))
    metrics: str = _opt("", cli=CliOption(
        "--metrics", "Comma-separated metrics computed on G_ema at each snapshot and logged (see `stylegan "
                     "metrics`), e.g. glyph_acc or fid50k_full,kid50k_full (stylegan2-ada's --metrics).",
        show_default="none"))
    metrics_num: Optional[int] = _opt(None, cli=CliOption(
        "--metrics-num", "Generated images per snapshot metric instead of each protocol's count (reported under "
                         "a name that says so, e.g. fid5k_full).", type=int, show_default="the protocol's"))
    inception: Optional[str] = _opt(None, cli=CliOption(
        "--inception", "NVIDIA's inception-2015-12-05.pt (path or URL) for FID/KID/IS snapshot metrics.", type=str,
        show_default="the official URL"))
    vgg16: Optional[str] = _opt(None, cli=CliOption(
        "--vgg16", "NVIDIA's vgg16.pt (path or URL) for precision/recall and PPL snapshot metrics.", type=str,
        show_default="the official URL"))

    # --- network size (GeneratorConfig/DiscriminatorConfig fields; official defaults) --------------------------
    fmap_base: int = _opt(_official("fmap_base"), cli=CliOption("--fmap-base", "Feature-map budget (official)."))
    fmap_max: int = _opt(_official("fmap_max"), cli=CliOption("--fmap-max", "Most feature maps per layer "
                                                                            "(official)."))
    latent_size: int = _opt(_official("latent_size"), cli=CliOption(
        "--latent", "Size of z and w, and width of the mapping layers (official).",
        sets={"dlatent_size": SAME, "mapping_fmaps": SAME}))
    dlatent_size: int = _official("dlatent_size")
    mapping_layers: int = _opt(_official("mapping_layers"), cli=CliOption(
        "--mapping-layers", "Dense layers of the mapping network (official; fewer make a smaller, faster "
                            "network)."))
    mapping_fmaps: int = _official("mapping_fmaps")
    # G's 2x up-convs and D's 2x down-convs as ONE stride-2 (transposed) convolution with the 4x4 summed kernel:
    # True at every resolution, 'auto' = official (from 128 px), False never. D computes the same function either
    # way; G's fused up-conv is the unfused one with its 3x3 kernel flipped (official semantics), the same function
    # family under the same init and Adam. It saves FLOPs and step time (docs/PERFORMANCE.md §4.2), hence the
    # default. Configs saved before this field existed meant 'auto' (from_dict).
    fused_scale: Union[bool, str] = _opt(True, cli=CliOption(
        "--fused-scale", "2x up/down-convs as one stride-2 (transposed) conv: true = at every resolution (fewer "
                         "FLOPs; D's function is unchanged, G's is the unfused one with flipped 3x3 kernels), "
                         "auto = official (from 128 px), false = never.",
        choices=FUSED_SCALE_CHOICES))

    # --- official training_loop() arguments --------------------------------------------------------------------
    total_kimg: float = _opt(100.0, cli=CliOption("--kimg", "Total training length in thousands of real images."))
    G_smoothing_kimg: float = _opt(10.0, cli=CliOption(
        "--ema-kimg", "Half-life of G_ema in kimg (official G_smoothing_kimg); shorter suits short runs."))
    D_repeats: int = _opt(1, cli=CliOption(
        "--d-repeats", "D steps per G step, each on a new minibatch that counts as images shown (official "
                       "D_repeats 1)."))
    minibatch_repeats: int = 1                # official 4; 1 here: lod/lr are re-evaluated every minibatch
    reset_opt_for_new_lod: bool = True        # official True: reset Adam moments when the level changes
    mirror_augment: bool = _opt(False, cli=CliOption("--mirror", "Random x-flips of the reals."))
    dlatent_avg_beta: float = _official("dlatent_avg_beta")
    style_mixing_prob: float = _official("style_mixing_prob")
    G_beta1: float = 0.0                      # official G_opt/D_opt: beta1=0.0, beta2=0.99, epsilon=1e-8
    G_beta2: float = 0.99
    D_beta1: float = 0.0
    D_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    optimizer: str = _opt("adam", cli=CliOption(
        "--optimizer", "adam (official: betas 0, 0.99) or rmsprop (torch defaults, as the WGAN reference code).",
        choices={n: n for n in OPTIMIZERS}))

    # --- official training_schedule() arguments (1-GPU values from train.py) -----------------------------------
    lod_initial_resolution: int = _opt(8, cli=CliOption("--start-res", "Resolution training starts at "
                                                                       "(official)."))
    lod_training_kimg: float = _opt(600.0, cli=CliOption(
        "--phase-kimg", "kimg per stabilise phase and per fade-in phase (official 600).",
        sets={"lod_transition_kimg": SAME}))
    lod_transition_kimg: float = 600.0
    minibatch_base: int = 4
    minibatch_dict: Dict[int, int] = _opt(factory=lambda: dict(OFFICIAL_MINIBATCH_DICT))
    batch: Optional[int] = _opt(None, cli=CliOption(
        "--batch", "Minibatch at every resolution.", type=int, show_default="official 1-GPU table"))
    G_lrate_base: float = _opt(0.001, cli=CliOption(
        "--lr", "One learning rate for G and D at every resolution.",
        sets={"D_lrate_base": SAME, "G_lrate_dict": {}, "D_lrate_dict": {}},
        show_default="official: 0.001, higher at >= 128 px"))
    G_lrate_dict: Dict[int, float] = _opt(factory=lambda: dict(OFFICIAL_LRATE_DICT))
    D_lrate_base: float = 0.001
    D_lrate_dict: Dict[int, float] = _opt(factory=lambda: dict(OFFICIAL_LRATE_DICT))
    lrate_rampup_kimg: float = 0.0

    # --- transfer learning and D augmentation (training/transfer.py, training/augment.py, training/ada.py;
    # official stylegan2-ada names: resume_pkl, freezed, augpipe, augment_p, ada_target, ada_interval, ada_kimg) --
    resume_pkl: Optional[str] = _opt(None, cli=CliOption(
        "--resume-from", "Start a NEW run from the networks of a file (PATH or http(s) URL) that stylegan.load "
                         "reads: ours, NVlabs .pkl, rosinality. The architecture comes from the file; training "
                         "starts at its resolution unless --start-res is given; optimisers and kimg start fresh "
                         "(--resume continues a run instead).", type=str))
    resume_pkl_sha256: Optional[str] = None   # the source file's hash, recorded by the Trainer
    freezed: int = _opt(0, cli=CliOption(
        "--freeze-d", "Freeze-D: the K highest-resolution blocks of D (and their FromRGB) get no updates."))
    augment: str = _opt("none", cli=CliOption(
        "--augment", "D augmentation: ada (adaptive p, official pipeline), diffaug (DiffAugment color, translation, "
                     "cutout) or none.", choices={n: n for n in AUGMENT_KINDS}))
    augpipe: str = _opt("bgc", cli=CliOption(
        "--augpipe", "ADA ops: blit (flip, rot90, int shift), geom (scale, rotation, aniso, frac shift), color, or "
                     "the combinations bg, bgc (official).", choices={n: n for n in AUGPIPES}))
    augment_p: Optional[float] = _opt(None, cli=CliOption(
        "--aug-p", "With --augment ada: a fixed augmentation probability in [0, 1] instead of the ADA controller.",
        type=float))
    ada_target: float = _opt(ADA_TARGET, cli=CliOption(
        "--ada-target", "ADA target of r_t = E[sign(D(reals))], in (0, 1) (official 0.6)."))
    ada_interval: int = ADA_INTERVAL          # official: p is adjusted every 4 minibatches
    ada_kimg: Optional[float] = _opt(None, cli=CliOption(
        "--ada-kimg", "kimg for p to move from 0 to 1 (official).", type=float,
        show_default=f"{ADA_KIMG:g}, {ADA_KIMG_RESUME:g} with --resume-from"))

    def __post_init__(self) -> None:
        # Accept dicts that came through JSON (string keys) and normalise them to int keys.
        for name in ("minibatch_dict", "G_lrate_dict", "D_lrate_dict"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ConfigError(name, value, "a dict resolution -> value")
            object.__setattr__(self, name, _int_keys(value, name))
        self.validate()

    # ------------------------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError (a ValueError) naming the first bad field; runs on construction, so a bad config
        never trains. The one place where a training option is checked."""

        def check(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ConfigError(name, getattr(self, name), expected)

        for name in ("resolution", "lod_initial_resolution"):
            check(_is_pow2(getattr(self, name)) and getattr(self, name) >= 4, name, "a power of two >= 4")
        check(self.lod_initial_resolution <= self.resolution, "lod_initial_resolution",
              f"a start resolution not above {{resolution}} ({self.resolution})")
        check(self.loss in LOSS_NAMES, "loss", f"one of {', '.join(LOSS_NAMES)}")
        check(self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}")
        check(_is_number(self.wgan_clip) and self.wgan_clip > 0, "wgan_clip", "a finite number > 0")
        for name in ("total_kimg", "tick_kimg", "G_lrate_base", "D_lrate_base", "adam_epsilon"):
            check(_is_number(getattr(self, name)) and getattr(self, name) > 0, name, "a finite number > 0")
        for name in ("lod_training_kimg", "lod_transition_kimg", "G_smoothing_kimg", "lrate_rampup_kimg",
                     "wgan_lambda", "r1_gamma"):
            check(_is_number(getattr(self, name)) and getattr(self, name) >= 0, name, "a finite number >= 0")
        check(self.resolution == self.lod_initial_resolution or self.lod_training_kimg + self.lod_transition_kimg > 0,
              "lod_training_kimg", "a level length > 0 when the run grows (with both the stabilise and the fade "
              "length 0 it would stay at the start resolution forever)")
        for name in ("snapshot_ticks", "keep_checkpoints", "D_repeats", "minibatch_repeats", "minibatch_base",
                     "fmap_base", "fmap_max", "latent_size", "dlatent_size", "mapping_layers", "mapping_fmaps",
                     "glyphs_count"):
            check(_is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "an integer >= 1")
        for name in ("workers", "swd_num"):
            check(_is_int(getattr(self, name)) and getattr(self, name) >= 0, name, "an integer >= 0")
        check(isinstance(self.metrics, str), "metrics", "a comma-separated list of metric names")
        check(self.metrics_num is None or (_is_int(self.metrics_num) and self.metrics_num >= 1), "metrics_num",
              "None or an integer >= 1")
        for name in self.metric_names:
            try:
                protocol_for(name, self.metrics_num)
            except ValueError as exc:
                raise ConfigError("metrics_num", self.metrics_num, str(exc).split(": expected ", 1)[-1]) from None
        check(_is_int(self.seed) and 0 <= self.seed <= MAX_SEED, "seed", f"an integer in [0, {MAX_SEED}]")
        for name in ("G_beta1", "G_beta2", "D_beta1", "D_beta2", "dlatent_avg_beta", "style_mixing_prob"):
            check(_is_number(getattr(self, name)) and 0.0 <= getattr(self, name) <= 1.0, name, "a number in [0, 1]")
        for name in ("strict_data", "cond", "deterministic", "mirror_augment", "reset_opt_for_new_lod"):
            check(isinstance(getattr(self, name), bool), name, "True or False")
        check(self.batch is None or (_is_int(self.batch) and self.batch >= 1), "batch", "None or an integer >= 1")
        for res, mb in self.minibatch_dict.items():
            check(_is_int(mb) and mb >= 1, "minibatch_dict", f"integer minibatches >= 1 (at {res} px: {mb!r})")
        for name in ("G_lrate_dict", "D_lrate_dict"):
            for res, lr in getattr(self, name).items():
                check(_is_number(lr) and lr > 0, name, f"learning rates > 0 (at {res} px: {lr!r})")
        check(isinstance(self.data, str) and bool(self.data), "data", "a folder, a .zip file or builtin:glyphs")
        check(isinstance(self.outdir, str) and bool(self.outdir), "outdir", "a folder name")
        check(isinstance(self.device, str) and (self.device == "auto" or bool(DEVICE_NAME.fullmatch(self.device))),
              "device",
              "auto, cpu, cuda or cuda:N")
        check(isinstance(self.fused_scale, bool) or self.fused_scale == "auto", "fused_scale",
              "True, False or 'auto'")
        check(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}")
        check(isinstance(self.num_fp16_res, int) and not isinstance(self.num_fp16_res, bool)
              and self.num_fp16_res >= 0, "num_fp16_res", "an int >= 0")
        check(self.resume_pkl is None or (isinstance(self.resume_pkl, str) and bool(self.resume_pkl)),
              "resume_pkl", "None or a network file (path or URL)")
        max_freezed = self.resolution_log2 - 2
        check(_is_int(self.freezed) and 0 <= self.freezed <= max_freezed, "freezed",
              f"an integer in [0, {max_freezed}] (D has {max_freezed} blocks at {self.resolution} px)")
        check(self.glyphs_style in GLYPH_STYLES, "glyphs_style", f"one of {', '.join(GLYPH_STYLES)}")
        check(self.augment in AUGMENT_KINDS, "augment", f"one of {', '.join(AUGMENT_KINDS)}")
        check(self.augpipe in AUGPIPES, "augpipe", f"one of {', '.join(AUGPIPES)}")
        check(self.augment_p is None or (_is_number(self.augment_p) and 0.0 <= self.augment_p <= 1.0),
              "augment_p", "a probability in [0, 1]")
        check(self.augment_p is None or self.augment == "ada", "augment_p",
              "no value unless {augment} is ada (DiffAugment has no p)")
        check(_is_number(self.ada_target) and 0.0 < self.ada_target < 1.0, "ada_target", "a number in (0, 1)")
        check(_is_int(self.ada_interval) and self.ada_interval >= 1, "ada_interval", "an integer >= 1")
        check(self.ada_kimg is None or (_is_number(self.ada_kimg) and self.ada_kimg > 0), "ada_kimg",
              "a finite number > 0")

    # ------------------------------------------------------------------------------------------------------------
    @property
    def resolution_log2(self) -> int:
        return int(round(math.log2(self.resolution)))

    @property
    def metric_names(self) -> Tuple[str, ...]:
        """The snapshot metrics of `metrics` (ConfigError naming the valid names for an unknown one)."""
        if not isinstance(self.metrics, str) or not self.metrics.strip():
            return ()
        try:
            return tuple(parse_metric_names(self.metrics))
        except ValueError:
            raise ConfigError("metrics", self.metrics, f"comma-separated names from {', '.join(PROTOCOLS)}") from None

    @property
    def ada_kimg_used(self) -> float:
        """ada_kimg, or its default: 500, and 100 when fine-tuning (official train.py with --resume)."""
        if self.ada_kimg is not None:
            return self.ada_kimg
        return ADA_KIMG_RESUME if self.resume_pkl is not None else ADA_KIMG

    @property
    def total_images(self) -> int:
        """total_kimg as a number of real images (the loop's stopping point)."""
        return int(round(self.total_kimg * 1000))

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        """As JsonConfig.from_dict; a config saved before `fused_scale` existed meant 'auto' (what those runs
        built their networks with)."""
        if isinstance(d, dict) and "fused_scale" not in d:
            d = {**d, "fused_scale": "auto"}
        return super().from_dict(d)


def cli_options() -> Tuple[Tuple[str, CliOption], ...]:
    """(field name, CliOption) of every TrainConfig field that is a `stylegan train` option, in field order."""
    return tuple((f.name, f.metadata["cli"]) for f in dataclasses.fields(TrainConfig) if "cli" in f.metadata)


def apply_options(base: Dict[str, Any], given: Mapping[str, Any]) -> Dict[str, Any]:
    """`base` (a config dict: the defaults, or a checkpoint's saved config) with the options the user gave.

    `given`: field name -> value for the options given on the command line only; each also sets its `sets`
    fields. This one function serves fresh runs and `--resume` alike.
    """
    options = dict(cli_options())
    out = dict(base)
    for name, value in given.items():  # presets first, so that options given explicitly win in any order
        if value != base.get(name):
            out.update(copy.deepcopy(dict(options[name].presets.get(value, {}))))
    for name, value in given.items():
        out[name] = value
        for other, how in options[name].sets.items():
            out[other] = value if how is SAME else copy.deepcopy(how)
    return out


def option_of(field_name: str) -> Optional[str]:
    """The command-line flag that sets a field (directly or through `sets`), or None."""
    for name, option in cli_options():
        if name == field_name or field_name in option.sets:
            return option.flag
    return None
