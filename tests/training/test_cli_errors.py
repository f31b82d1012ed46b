"""`stylegan train` rejects bad options and bad data with a clear message and no traceback."""
import pytest
from click.testing import CliRunner
from PIL import Image

from stylegan.cli.train import train as train_cmd


def run(args):
    return CliRunner().invoke(train_cmd, args)


@pytest.mark.parametrize("extra, message", [
    (["--resolution", "48"], "power of two"),
    (["--resolution", "4"], "above --resolution"),
    (["--kimg", "0"], "--kimg"),
    (["--batch", "0"], "--batch"),
    (["--batch", "6"], "multiple of 4"),
    (["--loss", "lsgan-gp"], "lsgan-gp"),
    (["--wgan-clip", "0"], "--wgan-clip"),
    (["--d-repeats", "0"], "--d-repeats"),
    (["--phase-kimg", "-1"], "--phase-kimg"),
    (["--data", "/nonexistent/folder"], "does not exist"),
    (["--data", "builtin:faces"], "unknown built-in dataset"),
    (["--fmap-base", "0"], "--fmap-base"),
    (["--mapping-layers", "0"], "--mapping-layers"),
    (["--lr", "0"], "--lr"),
    (["--ema-kimg", "-1"], "--ema-kimg"),
    (["--threads", "-2"], "--threads"),
])
def test_bad_options(tmp_path, extra, message):
    res = run(["--outdir", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--quiet", *extra])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_unwritable_outdir(tmp_path):
    (tmp_path / "file").write_text("x")
    res = run(["--outdir", str(tmp_path / "file" / "sub"), "--quiet"])
    assert res.exit_code == 2 and "cannot write" in res.output


def test_bad_data(tmp_path, tiny_cli):
    base = ["--outdir", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), *tiny_cli]
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "a.png").write_bytes(b"garbage")
    (corrupt / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    res = run([*base, "--data", str(corrupt)])
    assert res.exit_code == 2 and "could be read" in res.output, res.output
    res = run([*base, "--data", str(corrupt), "--strict"])
    assert res.exit_code == 2 and "a.png" in res.output, res.output
    few = tmp_path / "few"
    few.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16), (i * 50, 0, 0)).save(few / f"{i}.png")
    res = run([*base, "--data", str(few)])
    assert res.exit_code == 2 and "fewer than one minibatch" in res.output, res.output
    res = run([*base, "--data", str(few), "--batch", "1", "--cond"])
    assert res.exit_code == 2 and "--cond needs class labels" in res.output, res.output
    small = tmp_path / "small"
    small.mkdir()
    for i in range(8):
        Image.new("RGB", (8, 8)).save(small / f"{i}.png")
    res = run([*base, "--data", str(small)])
    assert res.exit_code == 2 and "smaller than the target resolution" in res.output, res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run([*base, "--data", str(empty)])
    assert res.exit_code == 2 and "no images" in res.output
    assert "Traceback" not in res.output


def test_resume_without_checkpoint(tmp_path):
    res = run(["--outdir", str(tmp_path / "o"), "--resume", "latest", "--quiet"])
    assert res.exit_code == 2 and "no checkpoint" in res.output, res.output
