"""Nothing lost: a run folder holds one run, one process trains in it, a full disk or a signal ends a run cleanly."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from stylegan.cli.train import train as train_cmd
from stylegan.training import checkpoint as ckpt_mod
from stylegan.training.checkpoint import checkpoint_name, list_checkpoints, prune_checkpoints


def run(args):
    return CliRunner().invoke(train_cmd, args)


@pytest.fixture
def base(tmp_path, tiny_cli):
    return ["--outdir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"), *tiny_cli]


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".lock"}


def test_a_fresh_run_refuses_a_folder_that_holds_a_run_and_leaves_it_untouched(base, tmp_path):
    assert run([*base, "--kimg", "0.032"]).exit_code == 0
    before = snapshot(tmp_path / "run")
    res = run([*base, "--kimg", "0.032", "--seed", "1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"{tmp_path / 'run'} already holds a run" in res.output and "--resume latest" in res.output
    assert snapshot(tmp_path / "run") == before  # config, log, grids and checkpoints exactly as they were


def test_a_killed_runs_leftovers_are_reported_not_reused(base, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "reals.png").write_bytes(b"png")
    res = run([*base, "--kimg", "0.032"])
    assert res.exit_code == 2 and "leftovers of a run that never wrote a checkpoint" in res.output
    assert "config.json" in res.output and (folder / "config.json").read_text() == "{}"
    (folder / "notes.txt").write_text("mine")  # a folder with only unrelated files is not a run
    for name in ("config.json", "reals.png"):
        (folder / name).unlink()
    assert run([*base, "--kimg", "0.016"]).exit_code == 0


def _hold_lock(folder: Path) -> subprocess.Popen:
    code = ("import sys, time; from pathlib import Path; from stylegan.training.run_folder import RunLock; "
            "lock = RunLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(120)")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_on_the_folder_is_refused_and_a_killed_owner_leaves_no_stale_lock(base, tmp_path):
    assert run([*base, "--kimg", "0.016"]).exit_code == 0
    owner = _hold_lock(tmp_path / "run")
    try:
        res = run([*base, "--kimg", "0.032", "--resume", "latest"])
        assert res.exit_code == 2, res.output
        assert f"in use by another stylegan train (process {owner.pid})" in res.output
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    res = run([*base, "--kimg", "0.032", "--resume", "latest"])  # the kernel dropped the dead owner's lock
    assert res.exit_code == 0 and "Resumed from" in res.output, res.output


def test_rotation_never_deletes_the_checkpoint_just_written(tmp_path):
    for n in (100, 200, 300, 400):  # a run resumed from 100 writes 150 while newer files exist
        (tmp_path / checkpoint_name(n)).write_bytes(b"x")
    mine = tmp_path / checkpoint_name(150)
    mine.write_bytes(b"mine")
    prune_checkpoints(tmp_path, keep=2, protect=mine)
    assert mine.exists() and [p.name for p in list_checkpoints(tmp_path)] == [
        checkpoint_name(150), checkpoint_name(300), checkpoint_name(400)]


def _disk_full(times: list):
    from stylegan import atomic_write
    real = atomic_write.atomic_write_bytes

    def write(path, data, tmp_prefix=None, before_replace=None):
        if tmp_prefix == ckpt_mod.TMP_PREFIX and times:
            times.pop()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data, tmp_prefix=tmp_prefix, before_replace=before_replace)
    return write


def test_a_full_disk_gives_one_line_and_a_nonzero_exit_and_keeps_older_checkpoints(base, tmp_path, monkeypatch):
    """The writer is monkeypatched to raise ENOSPC (no small filesystem is mounted by the tests)."""
    from stylegan import atomic_write
    assert run([*base, "--kimg", "0.032"]).exit_code == 0
    older = {p.name: p.read_bytes() for p in list_checkpoints(tmp_path / "run")}
    monkeypatch.setattr(ckpt_mod, "RETRY_WAIT_S", 0.0)
    monkeypatch.setattr(atomic_write, "atomic_write_bytes", _disk_full([1, 1]))  # fails, and fails again
    res = run([*base, "--kimg", "0.064", "--resume", "latest"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert re.search(rf"cannot write checkpoint checkpoint-\d{{10}}\.pt to {re.escape(str(tmp_path / 'run'))}: No "
                     rf"space left on device", res.output)
    assert "MiB free" in res.output and "retrying" in res.output
    assert {p.name: p.read_bytes() for p in list_checkpoints(tmp_path / "run")} == older


def test_a_full_disk_that_clears_is_retried_once(base, tmp_path, monkeypatch):
    from stylegan import atomic_write
    monkeypatch.setattr(ckpt_mod, "RETRY_WAIT_S", 0.0)
    monkeypatch.setattr(atomic_write, "atomic_write_bytes", _disk_full([1]))  # fails once, then space is back
    res = run([*base, "--kimg", "0.032"])
    assert res.exit_code == 0 and "no space for checkpoint" in res.output, res.output
    assert list_checkpoints(tmp_path / "run")[-1].name == checkpoint_name(32)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_writes_a_checkpoint_and_exits_with_the_signal_status(tmp_path, tiny_cli, sig, code):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "stylegan", "train", "--outdir", str(out), "--cache-dir", str(tmp_path / "c"),
            *tiny_cli, "--kimg", "100", "--threads", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (out / "log.jsonl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, output
    assert "Interrupted at kimg" in output and "--resume latest" in output
    last = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert list_checkpoints(out)[-1].name >= checkpoint_name(last["images_shown"])


def test_resume_below_the_checkpoint_says_so(base):
    assert run([*base, "--kimg", "0.032"]).exit_code == 0
    res = run([*base, "--kimg", "0.016", "--resume", "latest"])
    assert res.exit_code == 2 and "already at or past --kimg 0.016" in res.output, res.output
    assert "checkpoint None" not in res.output


@pytest.mark.parametrize("extra, message", [
    (["--phase-kimg", "0"], "--phase-kimg"),
    (["--device", "foo"], "--device"),
    (["--device", "meta"], "--device"),
    (["--impl", "cuda", "--device", "cpu"], "impl='cuda'"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2 ** 66)], "in [0, 4294967295]"),
    (["--glyphs", "100000000"], "above the limit of 1000000"),
    (["--data", "/nonexistent/folder"], "does not exist"),
])
def test_bad_options_give_one_line_and_leave_no_run_folder(tmp_path, tiny_cli, extra, message):
    out = tmp_path / "new"
    res = run(["--outdir", str(out), "--cache-dir", str(tmp_path / "c"), *tiny_cli, *extra])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    assert not out.exists()


def test_resume_refuses_nonfinite_weights_unless_asked(base, tmp_path):
    import torch
    assert run([*base, "--kimg", "0.032"]).exit_code == 0
    newest = list_checkpoints(tmp_path / "run")[-1]
    payload = torch.load(newest, weights_only=True)
    payload["G"]["mapping.layers.0.weight"][0, 0] = float("nan")
    payload["G_ema"]["synthesis.torgb.0.bias"][0] = float("inf")
    torch.save(payload, newest)
    res = run([*base, "--kimg", "0.048", "--resume", "latest"])
    assert res.exit_code == 2 and "weights hold NaN/Inf" in res.output, res.output
    assert "G.mapping.layers.0.weight" in res.output and "G_ema.synthesis.torgb.0.bias" in res.output
    res = run([*base, "--kimg", "0.048", "--resume", "latest", "--allow-nonfinite"])
    assert "weights hold NaN/Inf" not in res.output and "Resumed from" in res.output, res.output


def test_resume_from_a_damaged_file_never_advises_unsafe_loading(base, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    res = run([*base, "--kimg", "0.032", "--resume", str(bad)])
    assert res.exit_code == 2 and "bad.pt" in res.output and "weights_only" not in res.output, res.output
