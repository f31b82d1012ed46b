"""`stylegan bench serve`: a loopback load test of `stylegan serve`. A server process on 127.0.0.1 serves a
small randomly initialised network; N client threads send requests for a fixed time; the table reports
requests/s, the answers by status, p50/p99 latency and the server's peak RSS.

The request mix is what the page sends (see _client): seeds of a grid being paged through (mostly new images), a
truncation slider dragged with slot= (several positions in flight at once; stale ones answered 409), and a small
style-mixing grid. Each client has its own slots, like one browser tab.
"""
from __future__ import annotations

import http.client
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List

import torch

URL_LINE = re.compile(r"http://127\.0\.0\.1:(\d+)/")
START_TIMEOUT_S = 120.0


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies_s: List[float] = field(default_factory=list)
    statuses: Dict[int, int] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    errors: int = 0   # connection failures (never expected)

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return 1e3 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_network(path: str, resolution: int, fmap_base: int, fmap_max: int, latent_size: int) -> None:
    """A randomly initialised generator saved at `path` (the load test measures serving, not image quality)."""
    from ..config import GeneratorConfig
    from ..generator import Generator
    from ..loading import save

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(resolution=resolution, fmap_base=fmap_base, fmap_max=fmap_max,
                                  latent_size=latent_size, dlatent_size=latent_size)).eval()
    save(path, G=G)


def _peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, MiB; 0 where /proc is not available."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


SLIDER_BURST = 3  # psi positions a drag sends before the first answer arrives (the page does not wait)


def _connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=120)


def _send(port: int, connections: list, i: int, path: str) -> None:
    """Sends on connection i; a kept-alive connection the server has closed meanwhile is reopened once, as a
    browser does."""
    try:
        connections[i].request("GET", path)
    except (OSError, http.client.HTTPException):
        connections[i].close()
        connections[i] = _connect(port)
        connections[i].request("GET", path)


def _fetch_all(port: int, connections: list, paths: list) -> list:
    """[(status, seconds)] of `paths`, all in flight at once on their own connections."""
    started = []
    for i, path in enumerate(paths):
        started.append(time.monotonic())
        _send(port, connections, i, path)
    answers = []
    for i, path in enumerate(paths):
        try:
            response = connections[i].getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError):  # closed by keep-alive expiry: once more
            connections[i].close()
            connections[i] = _connect(port)
            connections[i].request("GET", path)
            response = connections[i].getresponse()
        response.read()
        answers.append((response.status, time.monotonic() - started[i]))
    return answers


def _client(port: int, index: int, until: float, result: LoadResult, lock: threading.Lock) -> None:
    """One page: seeds of a grid page one at a time, a psi drag as SLIDER_BURST requests in flight at once on
    their own connections (same slot: the stale ones may answer 409), a style mix."""
    rng = random.Random(index)
    connections = [_connect(port) for _ in range(SLIDER_BURST)]
    page = rng.randrange(1000)
    n = 0
    while time.monotonic() < until:
        kind = n % 8
        if kind < 6:     # paging through a seed grid
            paths = [f"/api/generate?seed={page * 8 + kind}"]
        elif kind == 6:  # dragging the psi slider of the large view
            paths = [f"/api/generate?seed={page * 8}&psi={rng.randrange(-10, 11) / 10}&slot=psi-{index}"
                     for _ in range(SLIDER_BURST)]
            page = rng.randrange(1000)
        else:
            paths = [f"/api/mix?rows={page},{page + 1}&cols={page + 2},{page + 3}&styles=coarse&slot=mix-{index}"]
        n += 1
        try:
            answers = _fetch_all(port, connections, paths)
        except (OSError, http.client.HTTPException):
            for connection in connections:
                connection.close()
            connections = [_connect(port) for _ in range(SLIDER_BURST)]
            with lock:
                result.errors += 1
            continue
        with lock:
            for status, elapsed in answers:
                result.latencies_s.append(elapsed)
                result.statuses[status] = result.statuses.get(status, 0) + 1
    for connection in connections:
        connection.close()


def run_load(clients: int, seconds: float, resolution: int, fmap_base: int, fmap_max: int, latent_size: int,
             threads: int) -> LoadResult:
    """Starts `stylegan serve` on 127.0.0.1 (any free port) in a subprocess, runs the clients, stops it."""
    with tempfile.TemporaryDirectory(prefix="stylegan-bench-serve-") as folder:
        network = os.path.join(folder, "net.pt")
        make_network(network, resolution, fmap_base, fmap_max, latent_size)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        command = [sys.executable, "-m", "stylegan", "serve", "--network", network, "--device", "cpu",
                   "--host", "127.0.0.1", "--port", "0"]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            port = _wait_for_url(server)
            result = LoadResult(clients, seconds)
            lock = threading.Lock()
            until = time.monotonic() + seconds
            workers = [threading.Thread(target=_client, args=(port, i, until, result, lock)) for i in range(clients)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            result.peak_rss_mib = _peak_rss_mib(server.pid)
            return result
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def _wait_for_url(server: subprocess.Popen) -> int:
    """The port of the server's 'serving ... http://127.0.0.1:PORT/' line."""
    deadline = time.monotonic() + START_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = URL_LINE.search(line)
        if match:
            threading.Thread(target=server.stdout.read, daemon=True).start()  # keep draining its output
            return int(match.group(1))
    raise RuntimeError("stylegan serve did not start:\n" + "".join(seen[-20:]))


def table_rows(results: List[LoadResult]) -> List[list]:
    rows = []
    for r in results:
        rows.append([r.clients, r.requests, round(r.requests / r.seconds, 1), r.statuses.get(200, 0),
                     r.statuses.get(409, 0), r.statuses.get(503, 0),
                     sum(v for k, v in r.statuses.items() if k not in (200, 409, 503)) + r.errors,
                     round(r.percentile_ms(0.5), 1), round(r.percentile_ms(0.99), 1), round(r.peak_rss_mib)])
    return rows


TABLE_HEADERS = ["clients", "requests", "req/s", "200", "409 superseded", "503 busy", "other/failed", "p50 ms",
                 "p99 ms", "server peak RSS MiB"]


__all__ = ["run_load", "table_rows", "TABLE_HEADERS", "LoadResult", "make_network"]
