"""`stylegan generate / style-mixing / interpolate` through click's CliRunner, URL downloads from a local server,
and every bad-input case ending in a click error (exit code 2, no traceback).

Ops run as the pure-torch reference (STYLEGAN_OPS=ref): these tests are about the commands, not the kernels.
"""
from __future__ import annotations

import http.server
import os
import pickle
import threading
from pathlib import Path
from typing import Iterator, List

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan import generate as api
from stylegan.cli.generate import generate, interpolate, style_mixing
from stylegan.cli.options import parse_seeds
from stylegan.config import GeneratorConfig
from stylegan.download import DownloadError, cached_name, download
from stylegan.generator import Generator
from stylegan.images import to_uint8
from stylegan.loading import load, save

from network_test_support import DATA, TINY_GENERATOR as TINY


@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")


def _tiny(label_size: int = 0) -> Generator:
    torch.manual_seed(label_size)
    G = Generator(GeneratorConfig(**TINY, label_size=label_size)).eval()
    with torch.no_grad():
        G.w_avg.normal_()
    return G


@pytest.fixture(scope="module")
def net_file(tmp_path_factory) -> Path:
    """A tiny unconditional network saved in our format (G_ema is the one sampled)."""
    path = tmp_path_factory.mktemp("nets") / "tiny.pt"
    save(path, G=_tiny(), G_ema=_tiny())
    return path


@pytest.fixture(scope="module")
def cond_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nets") / "cond.pt"
    save(path, G=_tiny(label_size=3))
    return path


@pytest.fixture(scope="module")
def G_loaded(net_file):
    return load(net_file).G_ema


def run(command, args: List[str]):
    result = CliRunner().invoke(command, [str(a) for a in args])
    return result


def ok(command, args: List[str]):
    result = run(command, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def usage_error(command, args: List[str], *fragments: str) -> str:
    """Runs a command expected to fail with a click usage error; returns the output."""
    result = run(command, args)
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output} {result.exception!r}"
    assert isinstance(result.exception, SystemExit)  # a click error, not an uncaught exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


def png(path: Path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image)


# ---------------------------------------------------------------------------------------------------------- generate


def test_generate_writes_one_png_per_seed(net_file, G_loaded, tmp_path):
    ok(generate, ["--network", net_file, "--seeds", "0-2,42", "--outdir", tmp_path / "a", "--device", "cpu"])
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0042.png"]
    want = api.generate_images(G_loaded, [0, 1, 2, 42], psi=1.0, noise_mode="const", progress=False)
    for seed, image in zip([0, 1, 2, 42], want):
        np.testing.assert_array_equal(png(tmp_path / "a" / f"seed{seed:04d}.png"), image)


def test_generate_same_seed_gives_identical_png_bytes(net_file, tmp_path):
    for out in ("a", "b"):
        ok(generate, ["--network", net_file, "--seeds", "7", "--trunc", "0.7", "--outdir", tmp_path / out])
    assert (tmp_path / "a" / "seed0007.png").read_bytes() == (tmp_path / "b" / "seed0007.png").read_bytes()
    ok(generate, ["--network", net_file, "--seeds", "7", "--outdir", tmp_path / "c"])  # default --trunc 1.0
    assert (tmp_path / "a" / "seed0007.png").read_bytes() != (tmp_path / "c" / "seed0007.png").read_bytes()


def test_generate_grid(net_file, G_loaded, tmp_path):
    ok(generate, ["--network", net_file, "--seeds", "0-2", "--grid", "2x2", "--outdir", tmp_path, "--batch", "2"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
    grid = png(tmp_path / "grid.png")
    want = api.generate_images(G_loaded, [0, 1, 2], psi=1.0, progress=False)
    assert grid.shape == (64, 64, 3)
    assert np.abs(grid[:32, 32:].astype(int) - want[1]).max() <= 1 and (grid[32:, 32:] == 0).all()
    usage_error(generate, ["--network", net_file, "--seeds", "0-2", "--grid", "1x2"], "--grid", "do not fit")
    usage_error(generate, ["--network", net_file, "--seeds", "0", "--grid", "2by2"], "--grid")


def test_generate_with_class_on_conditional_net(cond_file, tmp_path):
    ok(generate, ["--network", cond_file, "--seeds", "1", "--class", "2", "--outdir", tmp_path / "c2"])
    ok(generate, ["--network", cond_file, "--seeds", "1", "--class", "0", "--outdir", tmp_path / "c0"])
    assert not np.array_equal(png(tmp_path / "c2" / "seed0001.png"), png(tmp_path / "c0" / "seed0001.png"))
    usage_error(generate, ["--network", cond_file, "--seeds", "1", "--outdir", tmp_path], "--class", "3 classes")
    usage_error(generate, ["--network", cond_file, "--seeds", "1", "--class", "3", "--outdir", tmp_path], "--class")


def test_generate_several_classes(cond_file, tmp_path):
    """--class 0-2: one image per (class, seed), class-major; each equals the single-class run's image."""
    ok(generate, ["--network", cond_file, "--seeds", "1,5", "--class", "0-2", "--outdir", tmp_path / "all"])
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        f"class{c:02d}-seed{s:04d}.png" for c in range(3) for s in (1, 5)]
    ok(generate, ["--network", cond_file, "--seeds", "1,5", "--class", "2", "--outdir", tmp_path / "two"])
    for seed in (1, 5):
        np.testing.assert_array_equal(png(tmp_path / "all" / f"class02-seed{seed:04d}.png"),
                                      png(tmp_path / "two" / f"seed{seed:04d}.png"))
    ok(generate, ["--network", cond_file, "--seeds", "1,5", "--class", "0-2", "--grid", "2x3", "--outdir",
                  tmp_path / "grid"])
    grid = png(tmp_path / "grid" / "grid.png")
    np.testing.assert_array_equal(grid[64:, 32:], png(tmp_path / "all" / "class02-seed0005.png"))  # row = class
    usage_error(generate, ["--network", cond_file, "--seeds", "1,5", "--class", "0-2", "--grid", "2x2"],
                "--grid", "3 classes x 2 seeds")
    usage_error(generate, ["--network", cond_file, "--seeds", "1", "--class", "1-3", "--outdir", tmp_path],
                "--class", "0 <= N <= 2")
    usage_error(generate, ["--network", cond_file, "--seeds", "1", "--class", "a", "--outdir", tmp_path],
                "--class", "not a class or a range")


def test_generate_official_fixture_matches_nvlabs(tmp_path):
    """tests/data/small.pkl (made by NVlabs' TF code): seed 1236 at psi 0.7 = the fixture's gs_defaults[0]."""
    ok(generate, ["--network", DATA / "small.pkl", "--seeds", "1236", "--trunc", "0.7", "--outdir", tmp_path])
    with np.load(DATA / "small_io.npz") as data:
        want = to_uint8(torch.from_numpy(data["gs_defaults"][:1]))[0]
    diff = np.abs(png(tmp_path / "seed1236.png").astype(int) - want)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


# ------------------------------------------------------------------------------------------------------ style-mixing


def test_style_mixing_writes_grid_and_cells(net_file, G_loaded, tmp_path):
    ok(style_mixing, ["--network", net_file, "--rows", "1,2", "--cols", "3-5", "--styles", "middle",
                      "--trunc", "0.7", "--outdir", tmp_path])
    grid = png(tmp_path / "grid.png")
    assert grid.shape == (3 * 32, 4 * 32, 3) and (grid[:32, :32] == 255).all()
    _, cells = api.style_mixing_grid(G_loaded, [1, 2], [3, 4, 5], range(4, 8), psi=0.7, cutoff=8)
    for (r, c), image in cells.items():
        np.testing.assert_array_equal(png(tmp_path / f"{r}-{c}.png"), image)
    assert len(list(tmp_path.glob("*-*.png"))) == 6


def test_style_mixing_layer_errors(net_file, tmp_path):
    usage_error(style_mixing, ["--network", net_file, "--rows", "1", "--cols", "2", "--styles", "fine",
                               "--outdir", tmp_path], "--styles", "empty")
    usage_error(style_mixing, ["--network", net_file, "--rows", "1", "--cols", "2", "--styles", "0-8",
                               "--outdir", tmp_path / "o"], "--styles", "out of range")
    assert not (tmp_path / "o").exists()
    usage_error(style_mixing, ["--network", net_file, "--rows", "1,", "--cols", "2", "--outdir", tmp_path],
                "--rows")


# ------------------------------------------------------------------------------------------------------- interpolate


def test_interpolate_writes_a_looping_gif(net_file, G_loaded, tmp_path):
    out = tmp_path / "anim.gif"
    ok(interpolate, ["--network", net_file, "--seeds", "1,2", "--frames", "4", "--space", "z", "--out", out])
    with PIL.Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == 4 and gif.info.get("loop") == 0
        first = np.asarray(gif.convert("RGB"))
    seed_image = api.generate_images(G_loaded, [1], psi=1.0, progress=False)[0]
    # GIF frames are palette-quantized: compare coarsely with seed 1's image.
    assert np.abs(first.astype(int) - seed_image).mean() < 8
    usage_error(interpolate, ["--network", net_file, "--seeds", "1", "--out", out], "--seeds", "at least 2")
    usage_error(interpolate, ["--network", net_file, "--seeds", "1,2", "--space", "q", "--out", out], "--space")


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("seeds", ["3-1", "a", "", "1,,2", "1-", "-3", "4294967296", " , "])
def test_malformed_seed_lists(net_file, tmp_path, seeds):
    usage_error(generate, ["--network", net_file, "--seeds", seeds, "--outdir", tmp_path], "--seeds")


def test_parse_seeds():
    assert parse_seeds("0-3,42, 7") == [0, 1, 2, 3, 42, 7]
    assert parse_seeds("5-5") == [5]
    with pytest.raises(ValueError, match="more than"):
        parse_seeds("0-4000000000")


def test_bad_options(net_file, tmp_path):
    base = ["--network", net_file, "--seeds", "0"]
    usage_error(generate, base + ["--trunc", "abc", "--outdir", tmp_path], "--trunc")
    usage_error(generate, base + ["--trunc", "nan", "--outdir", tmp_path], "--trunc")
    usage_error(generate, base + ["--class", "0", "--outdir", tmp_path], "--class", "unconditional")
    usage_error(generate, base + ["--noise-mode", "fixed", "--outdir", tmp_path], "--noise-mode")
    usage_error(generate, base + ["--device", "tpu", "--outdir", tmp_path], "--device")
    usage_error(generate, base + ["--batch", "0", "--outdir", tmp_path], "--batch")


def test_unwritable_outdir(net_file, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    usage_error(generate, ["--network", net_file, "--seeds", "0", "--outdir", blocker / "sub"], "--outdir")
    usage_error(style_mixing, ["--network", net_file, "--outdir", blocker], "--outdir")
    usage_error(interpolate, ["--network", net_file, "--seeds", "1,2", "--out", blocker / "x.gif"], "--out")


def test_files_that_are_not_networks(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(os.system, protocol=2))  # a pickle referencing code: refused, never run
    for path, fragment in ((text, "unknown file format"), (evil, "system"), (tmp_path / "missing.pt", "not found")):
        usage_error(generate, ["--network", path, "--seeds", "0", "--outdir", tmp_path / "o"], "--network", fragment)
    assert not (tmp_path / "o").exists()  # a failed run leaves no empty output folder behind


# ------------------------------------------------------------------------------------------------------ URL loading


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: List[str] = []

    def do_GET(self):  # noqa: N802 (http.server naming)
        type(self).requests.append(self.path)
        if self.path.startswith("/truncated"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path, net_file) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 serving net_file as /nets/tiny.pt; shut down after the test, or after
    60 s at most even if the test hangs."""
    root = tmp_path / "www"
    (root / "nets").mkdir(parents=True)
    (root / "nets" / "tiny.pt").write_bytes(net_file.read_bytes())
    (root / "nets" / "notes.txt").write_text("not a network")
    _Handler.requests = []
    handler = lambda *a, **kw: _Handler(*a, directory=str(root), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    watchdog = threading.Timer(60.0, httpd.shutdown)
    watchdog.daemon = True
    thread.start()
    watchdog.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_network_from_url_is_downloaded_once(server, tmp_path, monkeypatch, G_loaded):
    cache = tmp_path / "cache"
    monkeypatch.setenv("STYLEGAN_DOWNLOAD_DIR", str(cache))
    url = f"{server}/nets/tiny.pt"
    for out in ("a", "b"):
        ok(generate, ["--network", url, "--seeds", "3", "--outdir", tmp_path / out])
    assert _Handler.requests == ["/nets/tiny.pt"]  # the second run used the cache
    assert [p.name for p in cache.iterdir()] == [cached_name(url)]
    assert (cache / cached_name(url)).read_bytes() == (tmp_path / "www/nets/tiny.pt").read_bytes()
    want = api.generate_images(G_loaded, [3], psi=1.0, progress=False)[0]
    np.testing.assert_array_equal(png(tmp_path / "b" / "seed0003.png"), want)


def test_url_errors_are_click_errors(server, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("STYLEGAN_DOWNLOAD_DIR", str(cache))
    usage_error(generate, ["--network", f"{server}/nets/missing.pt", "--seeds", "0", "--outdir", tmp_path],
                "--network", "HTTP 404")
    usage_error(generate, ["--network", f"{server}/nets/notes.txt", "--seeds", "0", "--outdir", tmp_path],
                "--network", "unknown file format")
    with pytest.raises(DownloadError, match="1000|IncompleteRead|bytes"):
        download(f"{server}/truncated/net.pt", progress=False)
    assert list(cache.iterdir()) == []  # failed downloads leave nothing behind: no temp file, no non-network


def test_cached_name_and_cache_dir(monkeypatch, tmp_path):
    from stylegan.download import download_cache_dir

    a, b = cached_name("https://x.org/a/net.pkl"), cached_name("https://y.org/b/net.pkl")
    assert a != b and a.endswith("_net.pkl") and b.endswith("_net.pkl")
    assert cached_name("https://x.org/a/net.pkl") == a
    assert cached_name("https://x.org/").endswith("_download")
    assert "/" not in cached_name("https://x.org/a%2F..%2Fetc")
    monkeypatch.delenv("STYLEGAN_DOWNLOAD_DIR", raising=False)
    monkeypatch.setenv("STYLEGAN_CACHE_DIR", str(tmp_path))
    assert download_cache_dir() == tmp_path / "downloads"
    monkeypatch.setenv("STYLEGAN_DOWNLOAD_DIR", str(tmp_path / "d"))
    assert download_cache_dir() == tmp_path / "d"
    with pytest.raises(ValueError, match="http"):
        download("ftp://x.org/net.pkl", cache_dir=tmp_path)


def test_generate_renders_a_training_checkpoint_at_its_lod(tmp_path):
    """A mid-training checkpoint (lod 1.0 of a 32-px net) renders at 16 px by default; --lod 0 gives 32 px."""
    from stylegan.formats import native

    G = _tiny()
    payload = native.to_payload(G=G, G_ema=G)
    payload["training"] = {"images_shown": 1000, "lod": 1.0}
    ckpt = tmp_path / "checkpoint-0000001000.pt"
    torch.save(payload, ckpt)
    runner = CliRunner()
    result = runner.invoke(generate, ["--network", str(ckpt), "--seeds", "3", "--outdir", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "training lod 1" in result.output
    at_lod = np.asarray(PIL.Image.open(tmp_path / "a" / "seed0003.png"))
    assert at_lod.shape[:2] == (16, 16)
    np.testing.assert_array_equal(at_lod, api.generate_images(G, [3], psi=1.0, lod=1.0)[0].squeeze())
    result = runner.invoke(generate, ["--network", str(ckpt), "--seeds", "3", "--lod", "0", "--outdir",
                                      str(tmp_path / "b")])
    assert result.exit_code == 0 and np.asarray(PIL.Image.open(tmp_path / "b" / "seed0003.png")).shape[:2] == (32, 32)
    result = runner.invoke(generate, ["--network", str(ckpt), "--seeds", "3", "--lod", "7", "--outdir",
                                      str(tmp_path / "c")])
    assert result.exit_code == 2 and "--lod" in result.output and "Traceback" not in result.output
