"""Bad input to `stylegan serve`: every bad parameter is a 400 JSON error naming it; unknown routes, jobs and
snapshots 404; traversal in the static and snapshot routes refused; uploads over 20 MB 413, non-images 415; the
host warning of the CLI."""
from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest

import serve_support  # noqa: F401  (skips this module, with the reason, without the serve extra)

pytestmark = pytest.mark.usefixtures("single_thread")


BAD_QUERIES = [
    ("/api/generate", "", "seed"),
    ("/api/generate?seed=abc", "", "seed"),
    ("/api/generate?seed=-1", "", "seed"),
    ("/api/generate?seed=4294967296", "", "seed"),
    ("/api/generate?seed=1,2", "", "seed"),
    ("/api/generate?seed=1&psi=nan", "", "psi"),
    ("/api/generate?seed=1&psi=inf", "", "psi"),
    ("/api/generate?seed=1&psi=1e9", "", "psi"),
    ("/api/generate?seed=1&psi=x", "", "psi"),
    ("/api/generate?seed=1&cutoff=7", "", "cutoff"),      # the network has 6 layers
    ("/api/generate?seed=1&cutoff=-1", "", "cutoff"),
    ("/api/generate?seed=1&noise=loud", "", "noise"),
    ("/api/generate?seed=1&class=0", "", "class"),       # unconditional
    ("/api/generate?net=1&seed=1", "", "class"),         # conditional: class required
    ("/api/generate?net=1&seed=1&class=3", "", "class"),  # 3 classes: 0-2
    ("/api/generate?seed=1&lod=3", "", "lod"),
    ("/api/generate?seed=1&lod=-0.5", "", "lod"),
    ("/api/generate?net=2&seed=1", "", "net"),
    ("/api/generate?net=x&seed=1", "", "net"),
    ("/api/generate?seed=1&slot=a/b", "", "slot"),
    ("/api/generate?seed=1&slot=" + "a" * 65, "", "slot"),
    ("/api/generate?seed=1&network=/etc/passwd", "", "network"),  # no file names: unknown parameter
    ("/api/mix?rows=1&cols=2&styles=fine", "", "styles"),  # empty for a 16 px network
    ("/api/mix?rows=1&cols=2&styles=3-9", "", "styles"),
    ("/api/mix?rows=&cols=2", "", None),                   # empty: the CLI's default rows
    ("/api/mix?rows=0-99&cols=2", "", "rows"),
    ("/api/interpolate?seeds=1", "", "seeds"),
    ("/api/interpolate?seeds=1,2&frames=0", "", "frames"),
    ("/api/interpolate?seeds=1,2&frames=100000", "", "frames"),
    ("/api/interpolate?seeds=1,2&space=q", "", "space"),
    ("/api/interpolate?seeds=1,2&format=mp4", "", "format"),
    ("/api/edit?directions=sefa", "", "job"),
    ("/api/edit?seed=1&job=abc&directions=sefa", "", "job"),
    ("/api/edit?seed=1", "", "directions"),
    ("/api/edit?seed=1&directions=../../x", "", "directions"),
    ("/api/edit?seed=1&directions=sefa&index=16", "", "index"),
    ("/api/edit?seed=1&directions=sefa&strength=1e6", "", "strength"),
    ("/api/edit?seed=1&directions=sefa&layers=0-6", "", "layers"),
    ("/api/run?since=-1", "", None),                       # no run: 404 first
]


@pytest.mark.parametrize("url, _, parameter", BAD_QUERIES)
def test_bad_parameters_are_400_naming_the_parameter(client, url, _, parameter):
    response = client.get(url)
    if url.startswith("/api/run"):
        assert response.status_code == 404
        return
    if parameter is None:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["parameter"] == parameter, body
    assert body["error"] and "Traceback" not in body["error"]


def test_messages_name_the_value_and_what_was_expected(client):
    body = client.get("/api/generate?seed=1&psi=1e9").json()
    assert "1e9" in body["error"] and "[-4, 4]" in body["error"]
    body = client.get("/api/generate?net=1&seed=1&class=3").json()
    assert "3 classes" in body["error"] and "0 <= N <= 2" in body["error"]
    assert "3-9" in client.get("/api/mix?rows=1&cols=2&styles=3-9").json()["error"]
    assert "<= 5" in client.get("/api/mix?rows=1&cols=2&styles=3-9").json()["error"]


@pytest.mark.parametrize("url", ["/nope", "/api/nope", "/api/jobs/0123456789abcdef", "/api/jobs/x/image",
                                 "/api/jobs/x/ws", "/api/jobs/x/target", "/static/nope.js", "/api/run",
                                 "/api/run/snapshots/fakes000000.png"])
def test_unknown_routes_jobs_and_files_are_404_json(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize("name", ["../app.py", "..%2Fapp.py", "%2e%2e%2fapp.py", "..%2F..%2Fsetup.py",
                                  "..\\app.py", "%2Fetc%2Fpasswd", "%2e%2e", "static", "__init__.py",
                                  "index.html%00.js"])
def test_static_traversal_is_refused(client, name):
    response = client.get(f"/static/{name}")
    assert response.status_code == 404
    assert b"import" not in response.content and b"root:" not in response.content


def test_cancel_of_unknown_job_is_404(client):
    assert client.delete("/api/jobs/nope").status_code == 404


def _png(width=20, height=12) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("content, name", [(b"hello, not an image", "a.png"), (b"", "empty.png"),
                                           (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "cut.png"),
                                           (b"GIF89a" + b"\xff" * 20, "x.gif")])
def test_a_non_image_upload_is_415(client, content, name):
    response = client.post("/api/project", files={"image": (name, content, "image/png")}, data={"steps": "1"})
    assert response.status_code == 415, response.text
    assert name in response.json()["error"] and "/tmp" not in response.json()["error"]


def test_a_decompression_bomb_is_415(client, tmp_path):
    """A small file declaring a huge image (here 30000 x 30000) is refused without decoding it."""
    import zlib
    import struct

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + \
        chunk(b"IEND", b"")
    response = client.post("/api/project", files={"image": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 415, response.text
    assert "DecompressionBomb" in response.json()["error"]


def test_an_upload_over_20_mb_is_413(client):
    big = b"\0" * ((20 << 20) + 1)
    response = client.post("/api/project", files={"image": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert "20 MB" in response.json()["error"]


@pytest.mark.parametrize("data, parameter", [({"space": "z"}, "space"), ({"steps": "0"}, "steps"),
                                             ({"steps": "99999"}, "steps"), ({"noise_steps": "-1"}, "noise_steps"),
                                             ({"seed": "x"}, "seed"), ({"loss": "l1"}, "loss"),
                                             ({"net": "5"}, "net"), ({"path": "/etc/passwd"}, "path"),
                                             ({"class": "1"}, "class")])
def test_bad_projection_fields_are_400(client, data, parameter):
    response = client.post("/api/project", files={"image": ("a.png", _png(), "image/png")}, data=data)
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == parameter


def test_a_projection_without_an_image_is_400(client):
    response = client.post("/api/project", data={"steps": "1"})
    assert response.status_code == 400 and response.json()["parameter"] == "image"


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_serve_warns_for_a_host_other_than_loopback(nets, monkeypatch, host, warned):
    import uvicorn
    from click.testing import CliRunner

    from stylegan.cli import main

    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.setdefault("host", self.config.host))
    result = CliRunner().invoke(main, ["serve", "--network", str(nets["net"]), "--device", "cpu", "--host", host])
    assert result.exit_code == 0, result.output
    assert seen["host"] == host
    assert ("warning: listening on" in result.output) == warned


def test_serve_refuses_a_bad_network_or_directions_file(nets, tmp_path):
    from click.testing import CliRunner

    from stylegan.cli import main

    (tmp_path / "bad.npz").write_bytes(b"nope")
    result = CliRunner().invoke(main, ["serve", "--network", str(tmp_path / "missing.pt"), "--device", "cpu"])
    assert result.exit_code == 2 and "--network" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["serve", "--network", str(nets["net"]), "--directions",
                                       str(tmp_path / "bad.npz"), "--device", "cpu"])
    assert result.exit_code == 2 and "--directions" in result.output and "Traceback" not in result.output


def test_serve_without_the_extra_says_what_to_install(nets, monkeypatch):
    import sys

    from click.testing import CliRunner

    from stylegan.cli import main

    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed
    result = CliRunner().invoke(main, ["serve", "--network", str(nets["net"]), "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert 'pip install "stylegan[serve]"' in result.output and "fastapi" in result.output
