"""The weight-free metrics `modes` and `glyph_acc`: their dataset, their shipped classifiers, and the metrics.

Every check can fail: the classifiers are scored on fresh held-out images, the mode count of the reals is compared
with an untrained generator's, and a 'perfect generator' (real glyphs of the requested class) with an untrained one.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from network_test_support import TINY_GENERATOR
from stylegan.config import GeneratorConfig
from stylegan.file_hash import file_sha256
from stylegan.generator import Generator
from stylegan.metrics import glyph_classifier as gc
from stylegan.metrics.glyph_metrics import glyph_accuracy, mode_coverage, mode_statistics, modes_of_images
from stylegan.training.dataset import ImageDataset
from stylegan.training.glyphs import CLASSES
from stylegan.training.stacked_glyphs import (NUM_MODES, StackedGlyphParams, mode_of_digits, render_stacked_glyph,
                                              stacked_digits)

pytestmark = pytest.mark.filterwarnings("ignore:stylegan.ops.*kernel is unavailable:RuntimeWarning")


@pytest.fixture(scope="module")
def glyph_heldout():
    """2000 fresh held-out glyph images (uint8 [N, 3, 32, 32]) and labels."""
    return gc.labelled_images("glyphs", 2000, gc.HELDOUT_SEED + 1)


def _u8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] floats that stylegan.images.to_uint8_nchw maps back to the same uint8."""
    return images.to(torch.float32) / 127.5 - 1.0


class PerfectGlyphGenerator(torch.nn.Module):
    """Stand-in for a perfect conditional G of builtin:glyphs: real glyph images of the requested class, optionally
    at another resolution (nearest-neighbour upsampled) to exercise the classifier's resizing."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, upscale: int = 1) -> None:
        super().__init__()
        self.config = GeneratorConfig(resolution=32 * upscale, latent_size=8, label_size=len(CLASSES), use_noise=False)
        self.bank = [images[labels == k] for k in range(len(CLASSES))]
        self.upscale = upscale
        self.calls = 0

    def forward(self, z, c=None, psi=1.0, lod=0.0, noise_mode="random", **kwargs):
        cls = c.argmax(dim=1)
        picks = [self.bank[int(k)][(self.calls + i) % len(self.bank[int(k)])] for i, k in enumerate(cls)]
        self.calls += len(picks)
        x = torch.stack(picks).repeat_interleave(self.upscale, 2).repeat_interleave(self.upscale, 3)
        return _u8_to_float(x).to(z.device)


def _untrained(label_size: int = 0) -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(**TINY_GENERATOR, label_size=label_size), impl="ref")


# ---------------------------------------------------------------------------------------------------------------
# builtin:stacked-glyphs

def test_stacked_glyphs_are_deterministic_and_labelled_by_mode(tmp_path):
    params = StackedGlyphParams(count=6)
    a, mode_a = render_stacked_glyph(3, 32, params)
    b, mode_b = render_stacked_glyph(3, 32, params)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and (a == b).all() and mode_a == mode_b
    assert mode_a == mode_of_digits(*stacked_digits(3, params))
    assert not (render_stacked_glyph(3, 32, StackedGlyphParams(count=6, seed=1))[0] == a).all()
    assert render_stacked_glyph(0, 64, params)[0].shape == (64, 64, 3)
    with pytest.raises(IndexError, match="out of range"):
        render_stacked_glyph(6, 32, params)

    ds = ImageDataset("builtin:stacked-glyphs", 32, cache_dir=tmp_path, glyphs_count=6)
    assert len(ds) == 6 and ds.num_classes == NUM_MODES and ds.num_channels == 3
    assert ds.labels.tolist() == [mode_of_digits(*stacked_digits(i, params)) for i in range(6)]
    assert (ds[3][0].permute(1, 2, 0).numpy() == a).all()
    other = {ImageDataset("builtin:stacked-glyphs", 32, cache_dir=tmp_path, glyphs_count=7).fingerprint,
             ImageDataset("builtin:stacked-glyphs", 32, cache_dir=tmp_path, glyphs_count=6, glyphs_seed=1).fingerprint,
             ImageDataset("builtin:glyphs", 32, cache_dir=tmp_path, glyphs_count=6).fingerprint}
    assert ds.fingerprint not in other and len(other) == 3
    with pytest.raises(ValueError, match="builtin:stacked-glyphs"):
        ImageDataset("builtin:stacked-glyph", 32, cache_dir=tmp_path)


def test_26k_stacked_glyphs_cover_all_1000_modes_evenly():
    params = StackedGlyphParams(count=26000)
    modes = np.array([mode_of_digits(*stacked_digits(i, params)) for i in range(params.count)])
    stats = mode_statistics(modes)
    # A multinomial sample of 26k over 1000 equal modes has KL ~ 999 / (2 * 26000) = 0.019.
    assert stats["modes"] == 1000 and stats["num_images"] == 26000 and stats["modes_kl"] < 0.03


def test_mode_statistics_formula():
    assert mode_statistics(np.arange(1000)) == {"modes": 1000, "modes_kl": pytest.approx(0.0, abs=1e-12),
                                               "num_images": 1000}
    assert mode_statistics(np.full(50, 7))["modes_kl"] == pytest.approx(math.log(1000))
    rng = np.random.default_rng(1)
    modes = rng.integers(0, 300, size=5000)
    q = np.bincount(modes, minlength=1000) / 5000
    direct = sum(p * math.log(p / 0.001) for p in q if p > 0)
    stats = mode_statistics(torch.from_numpy(modes))
    assert stats["modes"] == len(np.unique(modes)) and stats["modes_kl"] == pytest.approx(direct, rel=1e-12)
    for bad, match in ((np.array([3, 1000]), "1000 is outside"), (np.array([-1]), "-1 is outside"),
                       (np.zeros(0, np.int64), "non-empty"), (np.zeros(3), "integer")):
        with pytest.raises(ValueError, match=match):
            mode_statistics(bad)


# ---------------------------------------------------------------------------------------------------------------
# The shipped classifiers

@pytest.mark.parametrize("kind", sorted(gc.KINDS))
def test_shipped_weights_match_their_hash_and_load(kind):
    path = gc.weights_path(kind)
    assert path.stat().st_size < 500_000
    assert file_sha256(path) == gc.KINDS[kind].sha256
    model = gc.load_classifier(kind)
    assert not model.training and model.num_classes == gc.KINDS[kind].num_classes


@pytest.mark.parametrize("kind", sorted(gc.KINDS))
def test_loading_weights_leaves_the_callers_rng_alone(kind):
    """A training run loads the classifier at its first snapshot: the load must not draw from the global RNG."""
    before = torch.get_rng_state()
    gc.load_weights_file(gc.weights_path(kind), kind, gc.KINDS[kind].sha256)
    assert torch.equal(torch.get_rng_state(), before)


def test_digit_classifier_reads_the_reals_modes():
    """Fresh held-out stacked glyphs (a seed neither trained on nor the shipped held-out set) and the dataset's own
    seed-0 images: the mode read from the three channels is the label."""
    for seed, count in ((gc.HELDOUT_SEED + 1, 800), (0, 400)):
        params = StackedGlyphParams(count=count, seed=seed)
        drawn = [render_stacked_glyph(i, 32, params) for i in range(count)]
        images = torch.from_numpy(np.stack([img for img, _ in drawn])).permute(0, 3, 1, 2).contiguous()
        labels = np.array([mode for _, mode in drawn])
        predicted = modes_of_images(images)
        digit_acc = float(np.mean([(predicted // 10 ** k % 10 == labels // 10 ** k % 10).mean() for k in range(3)]))
        assert digit_acc >= 0.995, (seed, digit_acc)
        assert (predicted == labels).mean() >= 0.985, seed
        assert mode_statistics(predicted)["modes"] == len(np.unique(labels))


def test_glyph_classifier_heldout_accuracy(glyph_heldout):
    images, labels = glyph_heldout
    assert gc.accuracy(gc.load_classifier("glyphs"), images, labels) >= 0.995


def test_classifier_input_resizing():
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    up = gc.to_input(x)
    assert up.shape == (2, 3, 32, 32) and torch.equal(up[:, :, ::4, ::4], x.float() / 255)
    big = x.repeat_interleave(8, 2).repeat_interleave(8, 3)       # 64 px of 2x2 blocks: box-down gives them back
    assert torch.allclose(gc.to_input(big), up, atol=1e-6)
    assert gc.resize_note(64) == "64 px box-downsampled to 32 px" and "nearest" in gc.resize_note(16)
    with pytest.raises(TypeError, match="uint8"):
        gc.to_input(x.float())
    with pytest.raises(ValueError, match="power-of-two"):
        gc.to_input(torch.zeros(1, 3, 24, 24, dtype=torch.uint8))
    with pytest.raises(ValueError, match="2 channel"):
        gc.classify(gc.load_classifier("glyphs"), torch.zeros(1, 2, 32, 32, dtype=torch.uint8))


def test_damaged_or_missing_weights_are_refused(tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_bytes(gc.weights_path("digits").read_bytes() + b"x")
    with pytest.raises(ValueError, match="sha256"):
        gc.load_weights_file(bad, "digits", gc.KINDS["digits"].sha256)
    with pytest.raises(ValueError, match="kind 'glyphs'"):
        gc.load_weights_file(gc.weights_path("digits"), "glyphs")
    with pytest.raises(FileNotFoundError, match="--kind digits"):
        gc.load_weights_file(tmp_path / "none.pt", "digits")
    with pytest.raises(ValueError, match="'letters' is unknown"):
        gc.get_kind("letters")


def test_retraining_learns_and_is_deterministic():
    """A short run of the shipped trainer (the same code, a tiny budget) learns well above chance (10%), and a
    second run gives the same weights."""
    test_x, test_y = gc.labelled_images("digits", 150, gc.HELDOUT_SEED)
    runs = [gc.train_classifier("digits", train_images=100, steps=50, batch=32, log=lambda _: None) for _ in range(2)]
    assert gc.accuracy(runs[0], test_x, test_y) >= 0.5
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("args, message", [(["--out", "{tmp}/none/w.pt"], "does not exist"),
                                           (["--out", "{tmp}/w.pt", "--steps", "0"], "steps=0 is invalid"),
                                           (["--out", "{tmp}/w.pt", "--train-images", "-3"], "train_images=-3")])
def test_retrain_command_bad_input(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        gc.main(["--kind", "digits"] + [a.format(tmp=tmp_path) for a in args])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "w.pt").exists()


# ---------------------------------------------------------------------------------------------------------------
# The metrics

def test_untrained_generator_hits_far_fewer_modes_than_the_reals():
    num = 300
    params = StackedGlyphParams(count=num, seed=5)
    reals = mode_statistics(np.array([mode_of_digits(*stacked_digits(i, params)) for i in range(num)]))
    G = _untrained()
    out = mode_coverage(G, num=num, batch=100)
    assert out["num_gen"] == num and out["modes_resize"] == "32 px (native)"
    # Measured: the reals hit 262 modes (KL 1.38), the untrained G 75 (KL 3.63).
    assert out["modes"] < reals["modes"] / 3 and out["modes_kl"] > 2 * reals["modes_kl"], (out, reals)
    again = mode_coverage(G, num=num, batch=60)          # same seed, another batching: the same numbers
    assert (again["modes"], again["modes_kl"]) == (out["modes"], out["modes_kl"])
    low = mode_coverage(G, num=20, lod=1.0)  # a training checkpoint at 16 px
    assert low["modes_resize"] == "16 px nearest-upsampled to 32 px"


def test_glyph_acc_of_a_perfect_generator(glyph_heldout):
    images, labels = glyph_heldout
    out = glyph_accuracy(PerfectGlyphGenerator(images, labels), num=720)
    assert out["glyph_acc"] >= 0.995 and out["num_gen"] == 720
    assert set(out["glyph_acc_per_class"]) == set(CLASSES) and len(out["glyph_acc_worst"]) == 5
    assert out["glyph_acc_worst"][0][1] == min(out["glyph_acc_per_class"].values())
    at64 = glyph_accuracy(PerfectGlyphGenerator(images, labels, upscale=2), num=360)
    assert at64["glyph_acc"] >= 0.99 and at64["glyph_acc_resize"] == "64 px box-downsampled to 32 px"


def test_glyph_acc_of_an_untrained_generator_is_near_chance():
    G = _untrained(label_size=36)
    out = glyph_accuracy(G, num=360, batch=120)
    assert out["glyph_acc"] < 0.12                       # chance: 1/36 = 0.028
    again = glyph_accuracy(G, num=360, batch=72)         # same seed, another batching: the same number
    assert again["glyph_acc_per_class"] == out["glyph_acc_per_class"]


def test_metric_bad_input():
    with pytest.raises(ValueError, match=r"unconditional generator \(label_size=0\)"):
        glyph_accuracy(_untrained(), num=36)
    with pytest.raises(ValueError, match="label_size=10"):
        glyph_accuracy(_untrained(label_size=10), num=36)
    with pytest.raises(ValueError, match="num=35 is invalid"):
        glyph_accuracy(_untrained(label_size=36), num=35)
    with pytest.raises(ValueError, match="num=0 is invalid"):
        mode_coverage(_untrained(), num=0)
    with pytest.raises(ValueError, match="batch=0 is invalid"):
        mode_coverage(_untrained(), num=4, batch=0)
    gray = Generator(GeneratorConfig(**{**TINY_GENERATOR, "num_channels": 1}), impl="ref")
    with pytest.raises(ValueError, match="1-channel images; expected 3"):
        mode_coverage(gray, num=4)
    with pytest.raises(ValueError, match="GeneratorConfig"):
        mode_coverage(torch.nn.Identity(), num=4)
    with pytest.raises(TypeError, match="uint8"):
        modes_of_images(torch.zeros(2, 3, 32, 32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
def test_metrics_on_cuda(glyph_heldout):
    images, labels = glyph_heldout
    out = mode_coverage(_untrained().cuda(), num=64)      # CUDA noise differs from the CPU's: only its range
    assert 1 <= out["modes"] <= 64 and out["num_gen"] == 64
    out = glyph_accuracy(PerfectGlyphGenerator(images, labels).cuda(), num=360, device="cuda")
    assert out["glyph_acc"] >= 0.99


def test_glyph_metrics_through_the_registry_and_the_cli(tmp_path):
    """`stylegan metrics --metrics glyph_acc,modes`: the registry's numbers equal the functions' (same seed), the
    scaled names say the count, the JSON carries the per-class details."""
    import json

    from click.testing import CliRunner

    from stylegan.cli.metrics import metrics as metrics_cli
    from stylegan.loading import save
    from stylegan.metrics import MetricOptions, compute_metric, protocol_for

    G = _untrained(label_size=len(CLASSES))
    direct = glyph_accuracy(G, num=72, seed=3)
    via = compute_metric(protocol_for("glyph_acc", 72), G=G, opts=MetricOptions(seed=3))
    assert via.results == {"glyph_acc": direct["glyph_acc"]} and via.num_gen == 72
    assert via.details["glyph_acc_per_class"]["A"] == pytest.approx(direct["glyph_acc_per_class"]["A"], abs=1e-4)
    net = tmp_path / "net.pt"
    save(net, G_ema=G)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(metrics_cli, ["--network", str(net), "--metrics", "glyph_acc,modes", "--num", "72",
                                           "--seed", "3", "--json", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["metrics"]["glyph_acc"] == pytest.approx(direct["glyph_acc"])
    assert {"modes72", "modes72_kl"} <= set(payload["metrics"])
    glyph = next(r for r in payload["results"] if r["name"] == "glyph_acc")
    assert len(glyph["details"]["glyph_acc_per_class"]) == 36
    bad = CliRunner().invoke(metrics_cli, ["--network", str(net), "--metrics", "glyph_acc", "--num", "10"])
    assert bad.exit_code == 2 and "--num 10 is too small for glyph_acc" in bad.output, bad.output
