"""`stylegan serve`'s app on a live uvicorn server on 127.0.0.1 (any free port): a client that disconnects while
its request waits withdraws it from the queue, and a burst of 200 requests from 20 connections is answered
without failures or unbounded growth."""
from __future__ import annotations

import concurrent.futures
import http.client
import os
import socket
import threading

import pytest

from serve_support import make_state, wait_until

uvicorn = pytest.importorskip("uvicorn", reason="the live server needs uvicorn (the serve extra)")

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture()
def live(nets):
    """(state, port) of a server running in a thread; stopped (lifespan included) at the end."""
    from stylegan.serve.app import create_app

    state = make_state([nets["net"]], max_queue=8)
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield state, port
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive()


def _get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_a_client_that_goes_away_withdraws_its_pending_request(live):
    state, port = live
    release = threading.Event()
    try:
        state.worker.submit(release.wait)
        wait_until(lambda: state.worker.pending() == 0)
        computed = state.worker.computed  # the blocker still runs: not counted yet
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /api/generate?seed=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            wait_until(lambda: state.worker.pending() == 1)
        wait_until(lambda: state.worker.pending() == 0)  # withdrawn while the worker is still blocked
        release.set()
        assert _get(port, "/api/generate?seed=2") == 200
        assert state.worker.computed == computed + 2  # the blocker and seed 2; seed 1 was never rendered
    finally:
        release.set()


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to read the RSS")
def test_a_burst_of_200_requests_on_loopback(live):
    state, port = live
    assert _get(port, "/api/generate?seed=0") == 200
    rss_before = _rss_bytes()
    paths = [f"/api/generate?seed={i % 50}&psi=0.{i % 7 + 1}" + ("&slot=s" if i % 4 == 0 else "")
             for i in range(200)]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda p: _get(port, p), paths))
    assert set(statuses) <= {200, 409, 503} and statuses.count(200) >= 10, statuses
    assert _rss_bytes() - rss_before < 200 << 20
    assert len(state.cache) <= state.cache.max_items
    wait_until(lambda: state.worker.pending() == 0)
    assert _get(port, "/api/info") == 200
