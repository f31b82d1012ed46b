"""Fixtures of the serve tests: the pure-torch ops (these tests are about the server, not the kernels), the tiny
networks saved once per module and a client of a server over them."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """{'net': 16 px unconditional, 'cond': 16 px with 3 classes} network files."""
    from serve_support import save_networks

    return save_networks(tmp_path_factory.mktemp("serve-nets"))


@pytest.fixture(scope="module")
def client(nets):
    """A TestClient of a server over both networks (its lifespan runs: the worker stops at the end)."""
    from serve_support import client_of, make_state

    with client_of(make_state([nets["net"], nets["cond"]])) as c:
        yield c
