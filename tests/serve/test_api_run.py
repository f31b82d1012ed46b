"""The run view of `stylegan serve --run`: log.jsonl's records (with ?since=N, read again as the run appends),
the snapshot grids by listed name only."""
from __future__ import annotations

import json

from serve_support import client_of, make_state

from stylegan.plot import DEFAULT_KEYS


def test_run_records_since_and_snapshots(nets, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = [{"kimg": 1.0, "loss_G": 0.5, "swd": None}, {"kimg": 2.0, "loss_G": float("nan")}]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "reals.png").write_bytes(b"reals")
    (run / "fakes000002.png").write_bytes(b"fakes 2")
    (run / "fakes000010.png").write_bytes(b"fakes 10")
    (run / "notes.txt").write_text("not a snapshot")
    state = make_state([nets["net"]], run_dir=run)
    with client_of(state) as c:
        assert c.get("/api/info").json()["run"] == {"name": "run"}
        view = c.get("/api/run").json()
        assert view["name"] == "run"
        assert view["records"] == [records[0], {"kimg": 2.0, "loss_G": None}]  # NaN: null in strict JSON
        assert view["snapshots"] == [{"name": "reals.png", "kimg": None}, {"name": "fakes000002.png", "kimg": 2},
                                     {"name": "fakes000010.png", "kimg": 10}]
        assert view["keys"] == list(DEFAULT_KEYS)  # no metric logged yet: the curves `stylegan plot` draws
        assert c.get("/api/run?since=1").json()["records"] == [{"kimg": 2.0, "loss_G": None}]
        assert c.get("/api/run?since=5").json()["records"] == []
        with open(run / "log.jsonl", "a") as f:  # the run goes on: one whole record, one half-written
            f.write(json.dumps({"kimg": 3.0}) + "\n" + '{"kimg": 4')
        assert c.get("/api/run?since=2").json()["records"] == [{"kimg": 3.0}]
        with open(run / "log.jsonl", "a") as f:
            f.write(".0}\n")
        assert c.get("/api/run?since=2").json()["records"] == [{"kimg": 3.0}, {"kimg": 4.0}]
        with open(run / "log.jsonl", "a") as f:
            f.write(json.dumps({"kimg": 5.0, "glyph_acc": 0.5}) + "\n")
        assert c.get("/api/run?since=4").json()["keys"] == [*DEFAULT_KEYS, "glyph_acc"]  # a metric: its curve
        assert c.get("/api/run/snapshots/fakes000010.png").content == b"fakes 10"
        assert c.get("/api/run/snapshots/reals.png").headers["content-type"] == "image/png"
        for name in ("notes.txt", "log.jsonl", "..%2Fnet.pt", "fakes000003.png", "%2e%2e"):
            assert c.get(f"/api/run/snapshots/{name}").status_code == 404, name
        assert c.get("/api/run?since=-1").json()["parameter"] == "since"
        assert c.get("/api/run?from=1").json()["parameter"] == "from"
