"""`stylegan serve`'s HTTP API through FastAPI's TestClient: each image route answers the bytes the CLI writes for
the same arguments (the CLI run through CliRunner), and the headers name that command."""
from __future__ import annotations

import shlex

import pytest

from serve_support import client_of, make_state, run_cli, save_networks

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    return save_networks(tmp_path_factory.mktemp("serve-nets"))


@pytest.fixture(scope="module")
def client(nets):
    state = make_state([nets["net"], nets["cond"]])
    with client_of(state) as c:
        yield c
    state.worker.close()


def _cli_args(command: str, network) -> list:
    """The header's command with NETWORK replaced by the file (and without the leading 'stylegan')."""
    words = shlex.split(command)
    assert words[0] == "stylegan"
    return [str(network) if w == "NETWORK" else w for w in words[1:]]


def _run_header_command(response, network, tmp_path, out_option, out_name):
    """Runs the response's X-Stylegan-Command with its output redirected into tmp_path; the bytes written."""
    args = _cli_args(response.headers["x-stylegan-command"], network)
    i = args.index(out_option)
    args[i + 1] = str(tmp_path / args[i + 1])
    run_cli(*args)
    return (tmp_path / out_name).read_bytes()


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
    assert response.content == _run_header_command(response, nets[net], tmp_path, "--outdir", files)


def test_index_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/index.html").content == page.content
