"""`stylegan project`, `generate --ws`, `stylegan directions` and `stylegan edit` through CliRunner: the files they
write, proj.png byte-identical to `generate --ws` of its npz, and every bad input as a one-line click error."""
from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan.benchmarks.projection import table_rows
from stylegan.cli import main
from stylegan.loading import save
from stylegan.ws_file import load_ws_file

from projection_support import own_targets, small_generator, standin_file

STEPS = ["--steps", "6", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny networks: threads only add waiting

@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")
    monkeypatch.setenv("STYLEGAN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # no cached vgg16


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("proj")
    G = small_generator()
    save(folder / "net.pt", G=G)
    save(folder / "other.pt", G=small_generator(seed=7))
    target = own_targets(G, 1)[0].permute(1, 2, 0).numpy()
    PIL.Image.fromarray(target).resize((40, 30), PIL.Image.NEAREST).save(folder / "a.png")
    PIL.Image.fromarray(target).save(folder / "b.png")
    return folder


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def _fails(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_project_writes_its_files_and_generate_ws_reproduces_proj_png(files, tmp_path):
    out = tmp_path / "out"
    r = _run("project", "--network", files / "net.pt", "--target", files / "a.png", "--target", files / "b.png",
             "--outdir", out, "--space", "wplus", "--noise-steps", "2", *STEPS)
    assert r.exit_code == 0, r.output
    assert "pixel loss" in r.output  # the auto loss' note: no VGG16 file given or cached
    for name in ("a", "b"):
        folder = out / name
        for f in ("target.png", "proj.png", "projected.npz", "progress.gif", "log.jsonl"):
            assert (folder / f).is_file(), f
        records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
        assert len(records) == 8 and records[-1]["stage"] == "noise" and "psnr" in records[0]
        ws_file = load_ws_file(folder / "projected.npz")
        assert ws_file.ws.shape == (1, 6, 16) and len(ws_file.noise) == 6 and ws_file.G_sha256
        assert ws_file.meta["space"] == "wplus"
        gen = tmp_path / f"gen-{name}"
        r = _run("generate", "--network", files / "net.pt", "--ws", folder / "projected.npz", "--noise-from",
                 folder / "projected.npz", "--outdir", gen, "--device", "cpu")
        assert r.exit_code == 0, r.output
        assert (gen / "projected.png").read_bytes() == (folder / "proj.png").read_bytes()
    r = _run("generate", "--network", files / "net.pt", "--ws", out / "a" / "projected.npz", "--outdir",
             tmp_path / "const", "--device", "cpu")
    assert r.exit_code == 0 and "--noise-from" in r.output  # the hint: the file has noise maps


def test_project_with_a_vgg16_standin(files, tmp_path):
    vgg = standin_file(tmp_path / "vgg16.pt")
    r = _run("project", "--network", files / "net.pt", "--target", files / "b.png", "--outdir", tmp_path / "o",
             "--vgg16", vgg, "--mse-weight", "0.1", *STEPS)
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "o" / "log.jsonl").read_text().splitlines()[0])
    assert {"lpips", "mse", "loss"} <= set(record)


def test_project_bad_inputs(files, tmp_path):
    base = ["project", "--network", files / "net.pt", "--outdir", tmp_path / "o"]
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    PIL.Image.new("L", (8193, 1)).save(tmp_path / "huge.png")
    _fails(_run(*base, "--target", tmp_path / "empty.png", *STEPS), "empty.png is empty")
    _fails(_run(*base, "--target", tmp_path / "text.png", *STEPS), "not a readable image")
    _fails(_run(*base, "--target", tmp_path / "huge.png", *STEPS), "8192")
    _fails(_run(*base, "--target", tmp_path, *STEPS), "is a directory")
    _fails(_run(*base, "--target", tmp_path / "missing.png", *STEPS), "no such file")
    _fails(_run(*base, "--target", files / "b.png", "--steps", "0"), "--steps", "0")
    _fails(_run(*base, "--target", files / "b.png", "--space", "z", *STEPS), "--space", "'z'")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    _fails(_run(*base, "--target", files / "b.png", "--vgg16", tmp_path / "junk.pt", *STEPS), "--vgg16",
           "not a TorchScript file")
    _fails(_run(*base, "--target", files / "b.png", "--loss", "lpips", "--vgg16", standin_file(tmp_path / "w.pt",
                                                                                              "wrong"), *STEPS),
           "--vgg16", "returned")
    _fails(_run(*base, "--target", files / "b.png", "--class", "1", *STEPS), "--class", "unconditional")


def test_project_refuses_a_network_without_mapping_statistics(files, tmp_path):
    G = small_generator()
    with torch.no_grad():
        for p in G.mapping.parameters():
            p.zero_()  # every z maps to the same w: no spread to scale the search by
    save(tmp_path / "flat.pt", G=G)
    _fails(_run("project", "--network", tmp_path / "flat.pt", "--target", files / "b.png", "--outdir",
                tmp_path / "o", *STEPS), "--network", "no usable statistics")


def test_generate_ws_bad_inputs(files, tmp_path):
    out = tmp_path / "p"
    assert _run("project", "--network", files / "net.pt", "--target", files / "b.png", "--outdir", out,
                *STEPS).exit_code == 0
    npz = out / "projected.npz"
    _fails(_run("generate", "--network", files / "other.pt", "--ws", npz, "--outdir", tmp_path / "g"),
           "--ws", "made for another network", str(files / "other.pt"))
    np.savez(tmp_path / "shape.npz", ws=np.zeros((1, 5, 16), np.float32))
    _fails(_run("generate", "--network", files / "net.pt", "--ws", tmp_path / "shape.npz", "--outdir",
                tmp_path / "g"), "--ws", "[1, 5, 16]", "[N, 6, 16]")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    _fails(_run("generate", "--network", files / "net.pt", "--ws", tmp_path / "junk.npz", "--outdir",
                tmp_path / "g"), "not a latent .npz")
    np.savez(tmp_path / "plain.npz", ws=np.zeros((2, 6, 16), np.float32))
    _fails(_run("generate", "--network", files / "net.pt", "--ws", tmp_path / "plain.npz", "--noise-from",
                tmp_path / "plain.npz", "--outdir", tmp_path / "g"), "--noise-from", "no noise maps")
    _fails(_run("generate", "--network", files / "net.pt", "--ws", npz, "--seeds", "1", "--outdir", tmp_path / "g"),
           "either --seeds or --ws")
    r = _run("generate", "--network", files / "net.pt", "--ws", tmp_path / "plain.npz", "--outdir", tmp_path / "g")
    assert r.exit_code == 0 and (tmp_path / "g" / "plain-0000.png").is_file()  # a file without fingerprint


def test_directions_and_edit(files, tmp_path):
    net = files / "net.pt"
    for method in ("sefa", "ganspace"):
        r = _run("directions", "--network", net, "--method", method, "--num", "4", "--num-samples", "200",
                 "--out", tmp_path / f"{method}.npz", "--device", "cpu")
        assert r.exit_code == 0, r.output
    samples = tmp_path / "samples.npz"
    rng = np.random.default_rng(0)
    w = rng.normal(size=(200, 16))
    np.savez(samples, w=w, labels=(w[:, 0] > 0).astype(int))
    r = _run("directions", "--network", net, "--method", "labels", "--samples", samples, "--num-samples", "200",
             "--out", tmp_path / "labels.npz", "--device", "cpu")
    assert r.exit_code == 0, r.output
    r = _run("edit", "--network", net, "--seeds", "1,2", "--directions", tmp_path / "sefa.npz", "--index", "1",
             "--strengths", "-2,0,2", "--layers", "coarse", "--out", tmp_path / "strip.png", "--gif",
             "--device", "cpu")
    assert r.exit_code == 0, r.output
    strip = np.asarray(PIL.Image.open(tmp_path / "strip.png"))
    assert strip.shape == (32, 48, 3) and (tmp_path / "strip.gif").is_file()
    gen = tmp_path / "gen"
    assert _run("generate", "--network", net, "--seeds", "1,2", "--outdir", gen, "--batch", "1",
                "--device", "cpu").exit_code == 0
    assert np.array_equal(strip[:16, 16:32], np.asarray(PIL.Image.open(gen / "seed0001.png")))  # strength 0
    assert not np.array_equal(strip[:16, :16], strip[:16, 16:32])

    _fails(_run("edit", "--network", net, "--seeds", "1", "--directions", tmp_path / "sefa.npz", "--index", "4",
                "--out", tmp_path / "s.png"), "--index", "past the 4 direction")
    _fails(_run("edit", "--network", files / "other.pt", "--seeds", "1", "--directions", tmp_path / "sefa.npz",
                "--out", tmp_path / "s.png"), "--directions", "made for another network")
    _fails(_run("edit", "--network", net, "--seeds", "1", "--directions", tmp_path / "sefa.npz", "--strengths",
                "1,x", "--out", tmp_path / "s.png"), "--strengths", "'x'")
    _fails(_run("edit", "--network", net, "--seeds", "1", "--directions", tmp_path / "sefa.npz", "--layers", "fine",
                "--out", tmp_path / "s.png"), "--layers", "empty")
    _fails(_run("directions", "--network", net, "--method", "labels", "--out", tmp_path / "x.npz"),
           "--samples")
    _fails(_run("directions", "--network", net, "--method", "pca", "--out", tmp_path / "x.npz"), "--method")


def test_encoder_train_then_project_from_it(files, tmp_path):
    from stylegan.file_hash import file_sha256

    enc = tmp_path / "enc.pt"
    r = _run("encoder", "train", "--network", files / "net.pt", "--out", enc, "--kimg", "0.032", "--batch", "16",
             "--device", "cpu")
    assert r.exit_code == 0 and enc.is_file(), r.output
    assert "wrote" in r.output and "ws loss" in r.output
    out = tmp_path / "p"
    r = _run("project", "--network", files / "net.pt", "--target", files / "b.png", "--outdir", out,
             "--init", "encoder", "--encoder", enc, *STEPS)
    assert r.exit_code == 0, r.output
    assert load_ws_file(out / "projected.npz").meta["init"] == "encoder"

    base = ["project", "--target", files / "b.png", "--outdir", tmp_path / "o", *STEPS]
    _fails(_run(*base, "--network", files / "other.pt", "--init", "encoder", "--encoder", enc), "--encoder",
           "trained for another network", file_sha256(files / "net.pt")[:12], file_sha256(files / "other.pt")[:12])
    _fails(_run(*base, "--network", files / "net.pt", "--init", "encoder", "--encoder", files / "net.pt"),
           "--encoder", "not an encoder file")
    _fails(_run(*base, "--network", files / "net.pt", "--init", "encoder"), "--encoder FILE")
    _fails(_run(*base, "--network", files / "net.pt", "--encoder", enc), "--init encoder")
    _fails(_run("encoder", "train", "--network", files / "net.pt", "--out", tmp_path, "--kimg", "0.01"), "--out",
           "directory")
    _fails(_run("encoder", "train", "--network", files / "net.pt", "--kimg", "0"), "--kimg")


def test_bench_project_prints_a_table_and_refuses_bad_lists(tmp_path):
    """A benchmark, not a timed test: only that it runs and states what it measured."""
    r = _run("bench", "project", "--resolutions", "8", "--spaces", "w,wplus", "--steps", "1,2", "--fmap-base", "32",
             "--fmap-max", "8", "--latent", "8", "--precision", "fp32,bf16", "--json", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    assert "ms per step" in r.output and "threads" in r.output and "wplus" in r.output and "vs fp32" in r.output
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [(row["space"], row["precision"]) for row in rows] == [("w", "fp32"), ("w", "bf16"), ("wplus", "fp32"),
                                                                  ("wplus", "bf16")]
    table = table_rows({"rows": rows})
    assert table[1][5] == pytest.approx(rows[0]["ms_per_step"] / rows[1]["ms_per_step"]) and table[0][5] != table[0][5]
    _fails(_run("bench", "project", "--precision", "fp16"), "--precision", "precision 'fp16' is for CUDA devices only")
    _fails(_run("bench", "project", "--resolutions", "12"), "--resolutions", "'12'")
    _fails(_run("bench", "project", "--steps", "8,2"), "--steps", "'8,2'")
    _fails(_run("bench", "project", "--spaces", "z"), "--spaces", "'z'")
