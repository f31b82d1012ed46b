"""Projection jobs of `stylegan serve`: a job runs to done on a tiny network and answers the files `stylegan
project` writes (target.png and proj.png byte for byte, projected.npz's arrays and meta), edits of its latents
equal `stylegan edit --ws`, image requests are answered while it runs, and it can be cancelled (queued or running)."""
from __future__ import annotations

import io
import threading
import time

import numpy as np
import PIL.Image
import pytest
import torch

from serve_support import client_of, make_state, run_cli, run_header_command

from stylegan.precision import FP32
from stylegan.ws_file import load_ws_file

from projection_support import own_targets, small_generator, standin_file

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")
    monkeypatch.setenv("STYLEGAN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # no cached vgg16


@pytest.fixture(scope="module")
def target_png() -> bytes:
    """A 40x30 image of the network's own (so the projection converges): crop and resize are exercised."""
    target = own_targets(small_generator(), 1)[0].permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    PIL.Image.fromarray(target).resize((40, 30), PIL.Image.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture()
def served(nets):
    state = make_state([nets["net"]])
    with client_of(state) as c:
        yield state, c


def _wait(c, job, states, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        status = c.get(f"/api/jobs/{job}").json()
        if status["state"] in states:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.02)


def _start(c, target_png, **fields):
    response = c.post("/api/project", files={"image": ("a.png", target_png, "image/png")},
                      data={k: str(v) for k, v in fields.items()})
    assert response.status_code == 200, response.text
    return response.json()["job"]


def test_a_projection_job_answers_the_files_of_stylegan_project(served, nets, target_png, tmp_path, monkeypatch):
    state, c = served
    job = _start(c, target_png, steps=6, noise_steps=2, space="wplus", seed=3)
    status = _wait(c, job, ("done", "failed"))
    assert status["state"] == "done", status
    assert (status["step"], status["steps"]) == (8, 8) and status["psnr"] > 0
    assert "pixel loss" in status["note"]

    monkeypatch.chdir(tmp_path)  # so the CLI's --target is 'a.png', the upload's name
    (tmp_path / "a.png").write_bytes(target_png)
    run_cli("project", "--network", nets["net"], "--target", "a.png", "--outdir", "out", "--steps", "6",
            "--noise-steps", "2", "--space", "wplus", "--seed", "3", "--device", "cpu")
    assert c.get(f"/api/jobs/{job}/target").content == (tmp_path / "out/target.png").read_bytes()
    assert c.get(f"/api/jobs/{job}/image").content == (tmp_path / "out/proj.png").read_bytes()
    download = c.get(f"/api/jobs/{job}/ws")
    assert download.headers["content-disposition"] == 'attachment; filename="projected.npz"'
    with np.load(io.BytesIO(download.content)) as ours, np.load(tmp_path / "out/projected.npz") as cli:
        assert sorted(ours.files) == sorted(cli.files)
        for key in cli.files:
            assert np.array_equal(ours[key], cli[key]), key

    # an edit of the job's latents is `stylegan edit --ws projected.npz`
    (tmp_path / "projected.npz").write_bytes(download.content)
    edit = c.get(f"/api/edit?job={job}&directions=sefa&index=0&strength=2&layers=coarse")
    assert edit.status_code == 200, edit.text
    assert "--ws projected.npz" in edit.headers["x-stylegan-command"]
    run_header_command(edit.headers["x-stylegan-command"], nets["net"], tmp_path, {})
    assert edit.content == (tmp_path / "edit.png").read_bytes()
    assert c.get(f"/api/edit?job={job}&directions=sefa&seed=1").json()["parameter"] == "job"
    assert c.get(f"/api/edit?job={job}&directions=sefa&psi=0.5").json()["parameter"] == "psi"


def test_a_bf16_server_projects_as_stylegan_project_precision_bf16(nets, target_png, tmp_path, monkeypatch):
    from stylegan.precision import resolve_precision

    try:
        bf16 = resolve_precision("bf16", torch.device("cpu"), warn=False)
    except ValueError as exc:
        pytest.skip(f"bf16 does not run here: {exc}")
    with client_of(make_state([nets["net"]], precision=bf16)) as c:
        job = _start(c, target_png, steps=5, seed=2)
        assert _wait(c, job, ("done", "failed"))["state"] == "done"
        (tmp_path / "job.npz").write_bytes(c.get(f"/api/jobs/{job}/ws").content)
        monkeypatch.chdir(tmp_path)
        (tmp_path / "a.png").write_bytes(target_png)
        run_cli("project", "--network", nets["net"], "--target", "a.png", "--outdir", "out", "--steps", "5",
                "--seed", "2", "--device", "cpu", "--precision", "bf16")
        assert load_ws_file(tmp_path / "job.npz").meta["precision"] == "bf16"
        with np.load(tmp_path / "job.npz") as ours, np.load(tmp_path / "out/projected.npz") as cli:
            assert np.array_equal(ours["ws"], cli["ws"])  # the same bf16 steps
        assert c.get(f"/api/jobs/{job}/image").content == (tmp_path / "out/proj.png").read_bytes()


def test_serve_vgg16_gives_the_lpips_projection_of_stylegan_project(nets, target_png, tmp_path, monkeypatch):
    """`serve --vgg16 FILE` (a stand-in of the official signature): loss=lpips is the CLI's LPIPS projection."""
    import click

    from stylegan.cli.serve import build_state

    vgg = standin_file(tmp_path / "vgg16.pt")
    state = make_state([nets["net"]])
    with client_of(state) as c:  # without the file (none cached): a 400 naming the option to pass
        refused = c.post("/api/project", files={"image": ("a.png", target_png, "image/png")}, data={"loss": "lpips"})
        assert refused.status_code == 400 and refused.json()["parameter"] == "loss"
        assert "--vgg16" in refused.json()["error"]
    state = build_state([str(nets["net"])], None, [], torch.device("cpu"), FP32, str(vgg))
    with client_of(state) as c:
        job = _start(c, target_png, steps=4, loss="lpips", seed=1)
        status = _wait(c, job, ("done", "failed"))
        assert status["state"] == "done" and status["note"] is None, status
        monkeypatch.chdir(tmp_path)
        (tmp_path / "a.png").write_bytes(target_png)
        run_cli("project", "--network", nets["net"], "--target", "a.png", "--outdir", "out", "--steps", "4",
                "--loss", "lpips", "--vgg16", str(vgg), "--seed", "1", "--device", "cpu")
        assert c.get(f"/api/jobs/{job}/image").content == (tmp_path / "out/proj.png").read_bytes()
        (tmp_path / "job.npz").write_bytes(c.get(f"/api/jobs/{job}/ws").content)
        assert load_ws_file(tmp_path / "job.npz").meta["loss"] == "lpips"
    (tmp_path / "junk.pt").write_bytes(b"not torchscript")
    with pytest.raises(click.BadParameter, match="TorchScript"):
        build_state([str(nets["net"])], None, [], torch.device("cpu"), FP32, str(tmp_path / "junk.pt"))


def test_a_running_job_can_be_cancelled_and_image_requests_are_answered_meanwhile(served, target_png):
    state, c = served
    job = _start(c, target_png, steps=5000)
    status = _wait(c, job, ("running",))
    deadline = time.monotonic() + 60
    while c.get(f"/api/jobs/{job}").json()["step"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert c.get(f"/api/jobs/{job}/image").headers["content-type"] == "image/png"  # the current projection
    assert c.get("/api/generate?seed=5").status_code == 200  # answered between two steps of the job
    assert c.get(f"/api/jobs/{job}").json()["state"] == "running"
    assert c.delete(f"/api/jobs/{job}").status_code == 200
    status = _wait(c, job, ("cancelled",), timeout=60)
    assert status["step"] < 5000
    assert c.get(f"/api/jobs/{job}/ws").status_code == 404
    assert c.get(f"/api/edit?job={job}&directions=sefa").json()["parameter"] == "job"


def test_a_queued_job_can_be_cancelled_before_it_starts(served, target_png):
    state, c = served
    release = threading.Event()
    try:
        state.worker.submit(release.wait)
        job = _start(c, target_png, steps=3)
        assert c.get(f"/api/jobs/{job}").json()["state"] == "queued"
        assert c.delete(f"/api/jobs/{job}").json()["state"] == "cancelled"
    finally:
        release.set()
    assert c.get("/api/generate?seed=1").status_code == 200  # the worker went past the job
    assert c.get(f"/api/jobs/{job}").json() == {"state": "cancelled", "step": 0, "steps": 0, "psnr": None,
                                                "loss": None, "error": None, "note": None}
