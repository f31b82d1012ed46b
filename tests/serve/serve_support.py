"""Shared pieces of the serve tests: a tiny network saved to a file, the app over it, and the CLI run for the same
arguments (the bytes every endpoint must equal). Skips the whole module with a visible reason when the `serve`
extra is not installed."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("fastapi", reason="stylegan serve needs the serve extra: pip install 'stylegan[serve]'")
pytest.importorskip("httpx2", reason="FastAPI's TestClient needs httpx2 (the test extra)")
pytest.importorskip("multipart", reason="uploads need python-multipart (the serve extra)")

from fastapi.testclient import TestClient  # noqa: E402

from stylegan.cli import main  # noqa: E402
from stylegan.cli.serve import build_state  # noqa: E402
from stylegan.loading import save  # noqa: E402
from stylegan.precision import FP32  # noqa: E402
from stylegan.serve.app import create_app  # noqa: E402
from stylegan.serve.state import ServeState  # noqa: E402

from projection_support import small_generator  # noqa: E402


def save_networks(folder: Path) -> dict:
    """net.pt (16 px, unconditional), cond.pt (16 px, 3 classes) in `folder`."""
    paths = {"net": folder / "net.pt", "cond": folder / "cond.pt"}
    save(paths["net"], G=small_generator())
    save(paths["cond"], G=small_generator(seed=3, label_size=3))
    return paths


def make_state(networks: List[Path], run_dir: Optional[Path] = None, directions: Optional[List[Path]] = None,
               precision=FP32, **worker_kwargs) -> ServeState:
    state = build_state([str(p) for p in networks], run_dir, list(directions or []), torch.device("cpu"), precision)
    if worker_kwargs:
        from stylegan.serve.worker import Worker

        state.worker.close()
        state.worker = Worker(**worker_kwargs)
    return state


def client_of(state: ServeState) -> TestClient:
    return TestClient(create_app(state))


def run_cli(*args) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def cli_args(command: str, network) -> list:
    """A header's command (one `stylegan ...` line) as CLI arguments, NETWORK replaced by the file."""
    import shlex

    words = shlex.split(command)
    assert words[0] == "stylegan", command
    return [str(network) if w == "NETWORK" else w for w in words[1:]]


def run_header_command(command: str, network, folder: Path, replacements: dict) -> None:
    """Runs each `stylegan ...` command of a header (joined by ' && ') in `folder`: the value after each option of
    `replacements` (e.g. --outdir, --out, --directions, --ws) is placed inside `folder`, or replaced."""
    for part in command.split(" && "):
        args = cli_args(part, network)
        for option, value in replacements.items():
            if option in args:
                i = args.index(option)
                args[i + 1] = str(value(args[i + 1]) if callable(value) else value)
        run_cli(*args)


def wait_until(condition, timeout: float = 30.0) -> None:
    """Polls condition() until it holds; fails the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
