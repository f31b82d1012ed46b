"""`stylegan serve`'s HTTP API through FastAPI's TestClient: each image route answers the bytes the CLI writes for
the same arguments (the CLI run through CliRunner), and the headers name that command."""
from __future__ import annotations

import pytest

from serve_support import client_of, make_state, run_cli, run_header_command

pytestmark = pytest.mark.usefixtures("single_thread")


def _in(folder):
    return lambda name: folder / name


def _cli_bytes(response, network, folder, out_name, out_option="--outdir"):
    """The bytes the response's X-Stylegan-Command writes (run in `folder`)."""
    run_header_command(response.headers["x-stylegan-command"], network, folder,
                       {out_option: _in(folder), "--directions": _in(folder)})
    return (folder / out_name).read_bytes()


def test_info_describes_every_network(client):
    info = client.get("/api/info").json()
    assert [n["index"] for n in info["networks"]] == [0, 1]
    first, cond = info["networks"]
    assert (first["name"], first["resolution"], first["num_layers"], first["label_size"]) == ("net.pt", 16, 6, 0)
    assert cond["label_size"] == 3
    assert first["layer_groups"] == {"coarse": [0, 3], "middle": [4, 5], "fine": None}
    assert {d["name"] for d in first["directions"]} == {"sefa", "ganspace"}
    assert info["run"] is None and info["device"] == "cpu" and info["precision"] == "fp32"


@pytest.mark.parametrize("query, net, files", [
    ("seed=7", "net", "out/seed0007.png"),
    ("seed=42&psi=0.5&cutoff=3&noise=none", "net", "out/seed0042.png"),
    ("seed=5&lod=1.5", "net", "out/seed0005.png"),
    ("net=1&seed=3&class=2&psi=0.7", "cond", "out/seed0003.png"),
])
def test_generate_equals_the_cli_bytes(client, nets, tmp_path, query, net, files):
    response = client.get(f"/api/generate?{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content == _cli_bytes(response, nets[net], tmp_path, files)


def test_generate_default_lod_of_a_training_checkpoint_is_the_clis(tmp_path):
    """Without lod= the server renders at a checkpoint's training lod, as `stylegan generate` without --lod."""
    from stylegan.loading import save

    from projection_support import small_generator

    path = tmp_path / "ckpt.pt"
    save(path, G=small_generator(), extra={"training": {"lod": 1.0}})
    state = make_state([path])
    with client_of(state) as c:
        assert c.get("/api/info").json()["networks"][0]["default_lod"] == 1.0
        response = c.get("/api/generate?seed=3")
        assert "--lod" not in response.headers["x-stylegan-command"]
        cli = _cli_bytes(response, path, tmp_path, "out/seed0003.png")
        assert response.content == cli
        assert c.get("/api/generate?seed=3&lod=0").content != cli


@pytest.mark.parametrize("query", ["rows=1,2&cols=3,4,5&styles=coarse", "rows=7&cols=8&styles=4-5&psi=0.6&cutoff=2",
                                   "rows=1&cols=2&styles=middle&noise=none"])
def test_mix_equals_the_cli_grid(client, nets, tmp_path, query):
    response = client.get(f"/api/mix?{query}")
    assert response.status_code == 200, response.text
    assert response.content == _cli_bytes(response, nets["net"], tmp_path, "out/grid.png")


@pytest.mark.parametrize("fmt, name, media", [("gif", "interpolation.gif", "image/gif"),
                                              ("png", "interpolation.png", "image/png"),
                                              ("strip", "interpolation.png", "image/png")])
def test_interpolate_equals_the_cli_file(client, nets, tmp_path, fmt, name, media):
    response = client.get(f"/api/interpolate?seeds=1,2,3&frames=6&space=z&psi=0.8&format={fmt}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    assert response.content == _cli_bytes(response, nets["net"], tmp_path, name, "--out")


@pytest.mark.parametrize("query", ["seed=4&directions=sefa&index=1&strength=2.5&layers=coarse",
                                   "seed=4&directions=ganspace&index=0&strength=-1.5&psi=0.7",
                                   "seed=9&directions=sefa&index=0&strength=0"])
def test_edit_equals_the_cli_image(client, nets, tmp_path, query):
    response = client.get(f"/api/edit?{query}")
    assert response.status_code == 200, response.text
    command = response.headers["x-stylegan-command"]
    assert command.startswith("stylegan directions") and " && stylegan edit " in command
    assert response.content == _cli_bytes(response, nets["net"], tmp_path, "edit.png", "--out")


def test_edit_with_a_directions_file_equals_the_cli_image(nets, tmp_path):
    dirs = tmp_path / "mine.npz"
    run_cli("directions", "--network", nets["net"], "--method", "ganspace", "--num", "3", "--layers", "middle",
            "--num-samples", "500", "--device", "cpu", "--out", dirs)
    state = make_state([nets["net"], nets["cond"]], directions=[dirs])
    with client_of(state) as c:
        info = c.get("/api/info").json()["networks"]
        assert {"name": "mine", "method": "ganspace", "count": 3} in info[0]["directions"]
        assert "mine" not in {d["name"] for d in info[1]["directions"]}  # made for the other network
        response = c.get("/api/edit?seed=2&directions=mine&index=2&strength=3")
        assert response.status_code == 200, response.text
        command = response.headers["x-stylegan-command"]
        assert "&&" not in command and f"--directions {dirs}" in command
        out = tmp_path / "out"
        out.mkdir()
        run_header_command(command, nets["net"], out, {"--out": out / "edit.png"})
        assert response.content == (out / "edit.png").read_bytes()
        # the file's own layers (middle: 4-5) are the default
        same = c.get("/api/edit?seed=2&directions=mine&index=2&strength=3&layers=4-5")
        assert same.content == response.content
        assert c.get("/api/edit?seed=2&directions=mine&index=3&strength=3").json()["parameter"] == "index"


def test_bf16_answers_equal_the_cli_with_precision_bf16(nets, tmp_path):
    import torch

    from stylegan.precision import resolve_precision

    try:
        bf16 = resolve_precision("bf16", torch.device("cpu"), warn=False)
    except ValueError as exc:
        pytest.skip(f"bf16 does not run here: {exc}")
    state = make_state([nets["net"]], precision=bf16)
    with client_of(state) as c:
        assert c.get("/api/info").json()["precision"] == "bf16"
        response = c.get("/api/generate?seed=8&psi=0.7")
        assert "--precision bf16" in response.headers["x-stylegan-command"]
        assert response.content == _cli_bytes(response, nets["net"], tmp_path, "out/seed0008.png")


def test_index_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/index.html").content == page.content
