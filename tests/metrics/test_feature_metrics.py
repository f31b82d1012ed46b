"""FID/KID/PR/IS/PPL end to end with a TorchScript stand-in of NVIDIA's feature networks: the numbers equal the
official formulas applied to the stand-in's features of the same images; caching, naming, ranks, bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from click.testing import CliRunner
from PIL import Image

from stylegan import feature_nets
from stylegan.cli.metrics import metrics as metrics_cli
from stylegan.config import GeneratorConfig
from stylegan.generator import Generator
from stylegan.loading import save
from stylegan.metrics import GeneratedImages, MetricOptions, Processes, RealImages, compute_metric, protocol_for

from feature_net_standins import StandinDetector, WrongShapeDetector, write_standin
from network_test_support import TINY_GENERATOR


@pytest.fixture(autouse=True)
def _reference_ops_and_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")
    monkeypatch.setenv("STYLEGAN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    return write_standin(tmp_path_factory.mktemp("nets") / "standin.pt")


@pytest.fixture(scope="module")
def tiny_G() -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(**TINY_GENERATOR)).eval()


def _folder(root: Path, n: int, res: int, seed: int, shift: int = 0) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 200, size=(1, 1, 3))
        img = np.clip(base + rng.integers(0, 56, size=(res, res, 3)) + shift, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i:03d}.png")
    return root


def _features_of_folder(folder: Path, module: torch.nn.Module, **call) -> np.ndarray:
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        return module(x, **call).numpy().astype(np.float64)


def _official_fid(a: np.ndarray, b: np.ndarray) -> float:
    """stylegan2-ada-pytorch: population covariances, scipy sqrtm of the product, real part."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    root = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return float(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * root))


def _official_kid(x: np.ndarray, y: np.ndarray) -> float:
    """KID with one subset that covers both sets (the subset draw is then only a permutation)."""
    n, m = x.shape[1], x.shape[0]
    a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
    b = (x @ y.T / n + 1) ** 3
    return float(((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m)


def test_folder_vs_folder_equals_the_official_formulas_on_the_standin_features(tmp_path, standin):
    a = _folder(tmp_path / "a", 40, 16, seed=1)
    b = _folder(tmp_path / "b", 40, 16, seed=2, shift=30)
    out = tmp_path / "res.json"
    res = CliRunner().invoke(metrics_cli, ["--data", str(a), "--fakes", str(b), "--metrics", "fid,kid,pr,is",
                                           "--inception", str(standin), "--vgg16", str(standin),
                                           "--cache-dir", str(tmp_path / "ds"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())["metrics"]
    module = StandinDetector()
    fa, fb = _features_of_folder(a, module, return_features=True), _features_of_folder(b, module,
                                                                                        return_features=True)
    assert got["fid"] == pytest.approx(_official_fid(fb, fa), rel=1e-6)
    assert got["fid"] > 0.01
    assert got["kid"] != 0 and np.isfinite(got["kid"])
    # KID's default 100 subsets of min(40, 40, 1000) = all 40: every subset is the whole set
    assert got["kid"] == pytest.approx(_official_kid(fb, fa), rel=1e-6)
    assert 0 <= got["pr_precision"] <= 1 and 0 <= got["pr_recall"] <= 1
    probs = _features_of_folder(b, module, no_output_bias=True)
    parts = np.array_split(probs, 10)
    scores = [np.exp(np.mean(np.sum(q * (np.log(q) - np.log(q.mean(0, keepdims=True))), 1))) for q in parts]
    assert got["is_mean"] == pytest.approx(np.mean(scores), rel=1e-5)
    assert "fid" in res.output and "is_mean" in res.output
    same = CliRunner().invoke(metrics_cli, ["--data", str(a), "--fakes", str(a), "--metrics", "fid",
                                            "--inception", str(standin), "--cache-dir", str(tmp_path / "ds")])
    assert same.exit_code == 0, same.output
    fid_row = next(line for line in same.output.splitlines() if line.startswith("fid "))
    assert abs(float(fid_row.split()[1])) < 1e-6


def _reals(tmp_path: Path, n: int = 48, res: int = 32):
    from stylegan.training.dataset import ImageDataset

    folder = _folder(tmp_path / "reals", n, res, seed=3)
    return ImageDataset(str(folder), res, cache_dir=tmp_path / "ds")


def test_generator_fid_equals_the_formula_on_its_images_and_is_repeatable(tmp_path, standin, tiny_G):
    ds = _reals(tmp_path)
    reals = RealImages.of(ds)
    opts = MetricOptions(inception=str(standin), seed=5, batch=16)
    protocol = protocol_for("fid50k_full", num=40)
    assert protocol.name == "fid40_full" and not protocol.official
    first = compute_metric(protocol, G=tiny_G, reals=reals, opts=opts)
    assert first.results.keys() == {"fid40_full"} and first.num_gen == 40 and first.num_real == 48
    assert not first.reals_from_cache
    again = compute_metric(protocol, G=tiny_G, reals=reals, opts=opts)
    assert again.reals_from_cache and again.results == first.results
    other_seed = compute_metric(protocol, G=tiny_G, reals=reals, opts=MetricOptions(inception=str(standin), seed=6,
                                                                                      batch=16))
    assert other_seed.results["fid40_full"] != first.results["fid40_full"]
    # direct: the generator's images of the documented draws, the stand-in's features, the official formula
    gen = GeneratedImages(tiny_G, 40, 16, seed=5)
    module = StandinDetector()
    with torch.no_grad():
        fg = torch.cat([module(gen.images(b), return_features=True) for b in range(3)]).numpy().astype(np.float64)
        fr = module(torch.from_numpy(np.array(ds.images)).permute(0, 3, 1, 2).contiguous(),
                    return_features=True).numpy().astype(np.float64)
    assert first.results["fid40_full"] == pytest.approx(_official_fid(fg, fr), rel=1e-6)
    # another batch size: the same images (each is seeded by its index), the same number up to float rounding
    # (the feature network's float32 matmuls block differently per batch shape)
    other_batch = compute_metric(protocol, G=tiny_G, reals=reals, opts=MetricOptions(inception=str(standin), seed=5,
                                                                                       batch=7))
    assert other_batch.results["fid40_full"] == pytest.approx(first.results["fid40_full"], rel=1e-6)
    payload = first.to_json()
    assert payload["detector"]["sha256"] == feature_nets.file_sha256(standin)
    assert payload["official_protocol"] is False and payload["protocol"]["registry_name"] == "fid50k_full"


def test_ppl_is_deterministic_finite_and_grows_with_the_generator_scale(tmp_path, standin, tiny_G):
    opts = MetricOptions(vgg16=str(standin), seed=1)
    p = protocol_for("ppl_wfull", num=8)
    assert p.name == "ppl8_wfull"
    a = compute_metric(p, G=tiny_G, opts=opts)
    assert a.results == compute_metric(p, G=tiny_G, opts=opts).results
    assert a.results["ppl8_wfull"] > 0 and a.num_gen == 8
    z = compute_metric(protocol_for("ppl_zend", num=8), G=tiny_G, opts=opts)
    assert z.results["ppl8_zend"] > 0 and z.results["ppl8_zend"] != a.results["ppl8_wfull"]


def test_ranks_take_interleaved_batches_whose_merge_is_the_single_process_result(tiny_G):
    """Rank r of W takes batches r, r + W, ...; the batches' images do not depend on who makes them, so the
    gathered features in batch order are the single-process features (the real gather: test_metrics_ddp)."""
    from stylegan.metrics.feature_stats import collect_features

    extract = lambda x: StandinDetector()(x, return_features=True)  # noqa: E731
    gen = GeneratedImages(tiny_G, 40, 16)
    merged = {}
    for rank in (0, 1):
        mine = Processes(rank, 2)
        merged[rank] = [(b, extract(gen.images(b)).numpy()) for b in mine.my_batches(3)]
    assert [b for b, _ in merged[0]] == [0, 2] and [b for b, _ in merged[1]] == [1]
    one = collect_features(gen.images, 40, 16, extract, True, False, Processes(0, 1))
    both = np.concatenate([f for _, f in sorted(merged[0] + merged[1], key=lambda item: item[0])])
    np.testing.assert_array_equal(one.all(), both)


def test_feature_network_errors_say_what_file_is_needed(tmp_path, monkeypatch):
    with pytest.raises(feature_nets.FeatureNetError) as err:
        feature_nets.load_feature_net(tmp_path / "missing.pt", "inception")
    assert "inception-2015-12-05.pt" in str(err.value) and "nvlabs-fi-cdn" in str(err.value)
    assert "--inception PATH" in str(err.value)
    not_ts = tmp_path / "not.pt"
    not_ts.write_bytes(b"hello")
    with pytest.raises(feature_nets.FeatureNetError, match="not a TorchScript file"):
        feature_nets.load_feature_net(not_ts, "vgg16")
    wrong = write_standin(tmp_path / "wrong.pt", WrongShapeDetector())
    net = feature_nets.load_feature_net(wrong, "inception")
    with pytest.raises(feature_nets.FeatureNetError, match=r"returned \[4\].*expected \[N, D\]"):
        net.features(torch.zeros(4, 3, 8, 8, dtype=torch.uint8))
    # the default URL unreachable (offline machine): the message names the file, the URL and the flag
    spec = feature_nets.FEATURE_NETS["vgg16"]
    monkeypatch.setitem(feature_nets.FEATURE_NETS, "vgg16",
                        feature_nets.FeatureNetSpec(spec.kind, spec.filename, "http://127.0.0.1:9/vgg16.pt",
                                                    spec.used_by))
    monkeypatch.setenv("STYLEGAN_DOWNLOAD_DIR", str(tmp_path / "dl"))
    with pytest.raises(feature_nets.FeatureNetError) as err:
        feature_nets.load_feature_net(None, "vgg16")
    assert "cannot get the vgg16 network" in str(err.value) and "vgg16.pt" in str(err.value)
    with pytest.raises(ValueError, match="expected one of inception, vgg16"):
        feature_nets.feature_net_spec("resnet")


def test_cli_bad_input(tmp_path, standin, tiny_G):
    net = tmp_path / "net.pt"
    save(net, G_ema=tiny_G)
    data = _folder(tmp_path / "d", 40, 32, seed=4)
    base = ["--network", str(net), "--data", str(data), "--cache-dir", str(tmp_path / "ds"),
            "--inception", str(standin), "--vgg16", str(standin)]
    runner = CliRunner()

    def fails(args, *texts):
        res = runner.invoke(metrics_cli, args)
        assert res.exit_code == 2, res.output
        for text in texts:
            assert text in res.output, (text, res.output)

    fails(base + ["--metrics", "fid99"], "unknown metric(s) fid99", "fid50k_full", "kid50k_full")
    fails(base + ["--metrics", "pr50k3_full", "--num", "3"], "--num 3 is too small for pr50k3_full", ">= 4")
    fails(base + ["--metrics", "fid50k", "--num", "45"], "fid45 uses 45 real images", "has 40",
          "--allow-fewer")
    ok = runner.invoke(metrics_cli, base + ["--metrics", "fid50k", "--num", "45", "--allow-fewer"])
    assert ok.exit_code == 0, ok.output
    fails(base + ["--metrics", "ppl_wend", "--num", "4", "--vgg16", str(tmp_path / "nope.pt")],
          "--vgg16", "vgg16.pt", "nvlabs-fi-cdn")
    bad_ts = tmp_path / "bad.pt"
    bad_ts.write_bytes(b"not torchscript")
    fails(base + ["--metrics", "fid50k_full", "--num", "8", "--inception", str(bad_ts)], "--inception",
          "not a TorchScript file")
    fails(["--network", str(net), "--metrics", "fid50k_full", "--num", "8", "--inception", str(standin)],
          "fid8_full compare(s) with real images: give --data")
    small = _folder(tmp_path / "small", 10, 16, seed=5)
    fails(["--data", str(data), "--fakes", str(small), "--metrics", "fid", "--inception", str(standin)],
          "32 px images", "16 px", "--resize")
    fails(["--data", str(data), "--fakes", str(small), "--metrics", "fid50k_full"], "unknown metric(s) fid50k_full")
    ok = runner.invoke(metrics_cli, ["--data", str(data), "--fakes", str(small), "--metrics", "fid", "--resize", "16",
                                     "--inception", str(standin), "--cache-dir", str(tmp_path / "ds")])
    assert ok.exit_code == 0, ok.output


def test_torchrun_cli_equals_one_process(tmp_path, standin, tiny_G):
    """`torchrun --nproc-per-node=2 -m stylegan metrics ...`: the images are split across the two ranks, rank 0
    reports once, and the numbers equal the one-process command's (the reals' cache is off, so both compute)."""
    import subprocess
    import sys

    net = tmp_path / "net.pt"
    save(net, G_ema=tiny_G)
    data = _folder(tmp_path / "reals", 48, 32, seed=3)
    args = ["metrics", "--network", str(net), "--data", str(data), "--metrics", "fid50k_full,kid50k_full",
            "--num-gen", "40", "--batch", "8", "--inception", str(standin), "--cache-dir", str(tmp_path / "ds"),
            "--no-stats-cache", "--device", "cpu"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                              "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "stylegan",
           *args, "--json", str(tmp_path / "two.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("fid40_full") == 1, proc.stdout
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank (OMP_NUM_THREADS=1): float results may depend on the thread count
    try:
        one = CliRunner().invoke(metrics_cli, args[1:] + ["--json", str(tmp_path / "one.json")])
    finally:
        torch.set_num_threads(threads)
    assert one.exit_code == 0, one.output
    two = json.loads((tmp_path / "two.json").read_text())["metrics"]
    assert two == json.loads((tmp_path / "one.json").read_text())["metrics"]
