"""stylegan.save/load round trips, the format readers and the `convert` / `info` commands."""
import ast
import pickle
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan.cli import main
from stylegan.formats import native, nvlabs_tf, rosinality

import rosinality_reference
from network_test_support import SMALL_PKL

TINY_G = dict(resolution=16, fmap_base=64, fmap_max=16, latent_size=8, dlatent_size=8, mapping_fmaps=8)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    G = stylegan.Generator(stylegan.GeneratorConfig(**TINY_G), impl="ref")
    D = stylegan.Discriminator(stylegan.DiscriminatorConfig(resolution=16, fmap_base=64, fmap_max=16), impl="ref")
    G.w_avg.normal_()
    return G, D


def test_save_then_load_gives_identical_outputs(tmp_path, tiny):
    G, D = tiny
    path = tmp_path / "net.pt"
    stylegan.save(path, G=G, D=D, G_ema=G, extra={"note": "hello", "step": 3})
    payload = torch.load(path, weights_only=True)  # the format promise: plain weights-only torch file
    assert payload["format_version"] == 1 and payload["extra"] == {"note": "hello", "step": 3}
    nets = stylegan.load(path)
    assert nets.source_format == "stylegan" and nets.extra["note"] == "hello"
    z = torch.randn(3, 8)
    img = torch.randn(3, 3, 16, 16)
    nets.G_ema.impl = nets.D.impl = "ref"
    assert torch.equal(nets.G_ema(z, noise_mode="const"), G(z, noise_mode="const"))
    assert torch.equal(nets.D(img), D(img))
    assert torch.equal(nets.G_ema.w_avg, G.w_avg)
    assert nets.config["G"] == G.config and nets.config["D"] == D.config


def test_load_accepts_file_objects_and_detects_by_content(tmp_path, tiny):
    path = tmp_path / "weights.pkl"  # a misleading extension: detection reads the content
    stylegan.save(path, G_ema=tiny[0])
    with open(path, "rb") as f:
        nets = stylegan.load(f)
    assert nets.source_format == "stylegan" and nets.G is None and nets.D is None
    assert nets.generator is nets.G_ema


def test_save_is_atomic_and_validates(tmp_path, tiny):
    path = tmp_path / "net.pt"
    stylegan.save(path, G=tiny[0])
    before = path.read_bytes()
    with pytest.raises(TypeError, match="G must be a stylegan"):
        stylegan.save(path, G=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="nothing to save"):
        stylegan.save(path)
    assert path.read_bytes() == before  # a failed save leaves the previous file untouched
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]  # and no temp file behind


def test_state_dict_mismatch_names_the_entry(tmp_path, tiny):
    path = tmp_path / "net.pt"
    stylegan.save(path, G=tiny[0])
    payload = torch.load(path, weights_only=True)
    payload["G"]["synthesis.torgb.0.weight"] = torch.zeros(3, 5, 1, 1)
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"net.pt: G: synthesis.torgb.0.weight has shape \[3, 5, 1, 1\]"):
        stylegan.load(path)


def test_convert_official_pickle_then_info(tmp_path):
    out = tmp_path / "small.pt"
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(SMALL_PKL), str(out)])
    assert result.exit_code == 0, result.output
    assert "nvlabs-tf" in result.output and out.exists()
    official, converted = stylegan.load(SMALL_PKL), stylegan.load(out)
    assert converted.extra["converted_from"] == "nvlabs-tf"
    z = torch.randn(2, 32)
    for a, b in ((official.G_ema, converted.G_ema), (official.G, converted.G)):
        a.impl = b.impl = "ref"
        assert torch.equal(a(z, noise_mode="const"), b(z, noise_mode="const"))

    result = runner.invoke(main, ["info", str(out)])
    assert result.exit_code == 0, result.output
    for expected in ("format         stylegan", "resolution     32 px, 3 channel(s), 8 style layers",
                     "labels         none (unconditional)", "w_avg present; 8 const noise buffers",
                     "fmap_base                256", "mbstd_group_size         4"):
        assert expected in result.output, result.output
    result = runner.invoke(main, ["info", str(SMALL_PKL)])
    assert result.exit_code == 0 and "format         nvlabs-tf" in result.output


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (pickle.dumps(__import__("os").system, protocol=4), "posix.system"),
    (b"not a network at all", "unknown file format"),
])
def test_cli_bad_files_are_click_errors_without_traceback(tmp_path, content, message):
    src = tmp_path / "bad.pkl"
    src.write_bytes(content)
    for args in (["convert", str(src), str(tmp_path / "out.pt")], ["info", str(src)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.pt").exists()


def test_convert_to_unwritable_destination(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(SMALL_PKL), str(tmp_path / "missing" / "x" / "\0bad")])
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_public_names_resolve_in_a_fresh_interpreter():
    """The README's API (`stylegan.load`, `stylegan.generate.z_from_seed`, `stylegan.ops`, ...) works after a bare
    `import stylegan`, which stays light (no torch import until a name is used)."""
    import subprocess
    import sys

    code = ("import sys, stylegan; assert 'torch' not in sys.modules; "
            "names = [stylegan.load, stylegan.save, stylegan.Generator, stylegan.Discriminator, "
            "stylegan.GeneratorConfig, stylegan.UnsafePickleError, stylegan.generate.z_from_seed, "
            "stylegan.ops.bias_act, stylegan.training.__name__]; print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "9", out.stderr


# ---- the three format readers ---------------------------------------------------------------------------------------
def _read_native(tiny, tmp_path):
    G, D = tiny
    G_ema = stylegan.Generator(G.config.replace(mapping_layers=2), impl="ref")  # a config unlike G's
    stylegan.save(tmp_path / "net.pt", G=G, D=D, G_ema=G_ema)
    return native.networks_from_payload(torch.load(tmp_path / "net.pt", weights_only=True), "net.pt")


def _read_official(tiny, tmp_path):
    return nvlabs_tf.networks_from_pickle(SMALL_PKL.read_bytes(), "small.pkl")


def _read_rosinality(tiny, tmp_path):
    return rosinality.networks_from_checkpoint(rosinality_reference.random_generator_state(2, seed=6), "x.model")


@pytest.mark.parametrize("reader", [_read_native, _read_official, _read_rosinality])
def test_every_reader_returns_networks_with_the_configs_of_generator_and_D(tiny, tmp_path, reader):
    """`load` only dispatches: each reader returns the same Networks, config['G'] being that of `.generator`."""
    nets = reader(tiny, tmp_path)
    assert type(nets) is stylegan.Networks, type(nets)
    assert set(nets.config) == {"G", "D"}
    assert nets.config["G"] == nets.generator.config
    assert nets.config["D"] == (nets.D.config if nets.D is not None else None)


def test_generator_is_G_ema_else_G():
    G, G_ema = torch.nn.Identity(), torch.nn.Identity()
    assert stylegan.Networks(G, None, G_ema, {}, "stylegan").generator is G_ema
    assert stylegan.Networks(G, None, None, {}, "stylegan").generator is G
    with pytest.raises(ValueError, match="this rosinality file holds no generator"):
        stylegan.Networks(None, torch.nn.Identity(), None, {}, "rosinality").generator


def test_format_readers_never_import_loading():
    """loading imports the readers; a reader importing loading back, even inside a function, is an import cycle."""
    folder = Path(stylegan.formats.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                package = {0: "", 1: "stylegan.formats", 2: "stylegan"}[node.level]
                base = ".".join(p for p in (package, node.module or "") if p)
                modules = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            assert "stylegan.loading" not in modules, f"{path.name}:{node.lineno} imports stylegan.loading"
