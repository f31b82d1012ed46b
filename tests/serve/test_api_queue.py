"""The worker queue of `stylegan serve`: slot replacement (409 for the superseded request, only the latest
computed), the bounded queue (503), the bounded response cache, jobs yielding to image requests, and a burst of 200
requests that neither fails nor grows without bound."""
from __future__ import annotations

import concurrent.futures
import os
import threading

import pytest

from serve_support import client_of, make_state, wait_until

pytestmark = pytest.mark.usefixtures("single_thread")


# -- the worker itself ---------------------------------------------------------------------------------------------

def test_worker_replaces_a_pending_task_of_the_same_slot_only():
    from stylegan.serve.worker import Superseded, Worker

    worker = Worker()
    release = threading.Event()
    ran = []
    try:
        blocker = worker.submit(release.wait)
        first = worker.submit(lambda: ran.append("first"), slot="psi")
        other = worker.submit(lambda: ran.append("other"), slot="seed")
        unslotted = worker.submit(lambda: ran.append("unslotted"))
        second = worker.submit(lambda: ran.append("second"), slot="psi")
        with pytest.raises(Superseded) as caught:
            first.result(timeout=5)
        assert caught.value.slot == "psi"
        release.set()
        for future in (blocker, other, unslotted, second):
            future.result(timeout=30)
        assert ran == ["other", "unslotted", "second"]  # the replacement keeps the newer request's place
    finally:
        release.set()
        worker.close()


def test_worker_queue_is_bounded():
    from stylegan.serve.worker import Busy, Worker

    worker = Worker(max_queue=2, max_jobs=1)
    release = threading.Event()
    try:
        worker.submit(release.wait)
        wait_until(lambda: worker.pending() == 0)  # the blocker runs
        worker.submit(lambda: None)
        worker.submit(lambda: None)
        with pytest.raises(Busy):
            worker.submit(lambda: None)
        with pytest.raises(Busy):  # a slot replaces only a pending request of its own slot
            worker.submit(lambda: None, slot="a")
        worker.submit_job(lambda: None)
        with pytest.raises(Busy):
            worker.submit_job(lambda: None)
    finally:
        release.set()
        worker.close()


def test_a_job_lets_image_requests_run_between_its_steps():
    from stylegan.serve.worker import Worker

    worker = Worker()
    order = []

    def job():
        for step in range(3):
            order.append(f"step{step}")
            if step == 0:
                request = worker.submit(lambda: order.append("request"))
                worker.run_pending()
                assert request.done()

    try:
        worker.submit_job(job).result(timeout=30)
        assert order == ["step0", "request", "step1", "step2"]
    finally:
        worker.close()


def test_response_cache_is_bounded_by_count_and_bytes():
    from stylegan.serve.cache import CachedResponse, ResponseCache

    cache = ResponseCache(max_items=3, max_bytes=100)
    for i in range(5):
        cache.put(i, CachedResponse(b"x" * 10, "image/png"))
    assert len(cache) == 3 and cache.get(0) is None and cache.get(4) is not None
    cache.get(2)  # now the most recent: 3 is the least recently used
    cache.put(5, CachedResponse(b"y" * 75, "image/png"))
    assert cache.bytes <= 100 and cache.get(3) is None and cache.get(2) is not None
    cache.put(6, CachedResponse(b"z" * 101, "image/png"))  # larger than the whole cache: not kept
    assert cache.get(6) is None and cache.bytes <= 100


# -- through HTTP --------------------------------------------------------------------------------------------------

def test_a_superseded_request_answers_409_and_only_the_latest_is_computed(nets):
    """Deterministic: the worker is blocked while two requests of one slot queue up."""
    state = make_state([nets["net"]])
    rendered = []
    with client_of(state) as c:
        from stylegan.serve import renders

        original = renders.GenerateRequest.render

        def counting(self, served, precision):
            rendered.append(self.seed)
            return original(self, served, precision)

        renders.GenerateRequest.render = counting
        release = threading.Event()
        try:
            state.worker.submit(release.wait)
            wait_until(lambda: state.worker.pending() == 0)
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                first = pool.submit(c.get, "/api/generate?seed=1&slot=psi")
                wait_until(lambda: state.worker.pending() == 1)
                second = pool.submit(c.get, "/api/generate?seed=2&slot=psi")
                answer = first.result(timeout=30)  # while the worker is still blocked
                assert answer.status_code == 409
                assert answer.json() == {"error": "superseded", "slot": "psi"}
                assert state.worker.pending() == 1
                release.set()
                assert second.result(timeout=60).status_code == 200
            assert rendered == [2]
        finally:
            release.set()
            renders.GenerateRequest.render = original


def test_a_full_queue_answers_503(nets):
    state = make_state([nets["net"]], max_queue=2)
    with client_of(state) as c:
        release = threading.Event()
        try:
            state.worker.submit(release.wait)
            wait_until(lambda: state.worker.pending() == 0)
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                waiting = [pool.submit(c.get, f"/api/generate?seed={s}") for s in (1, 2)]
                wait_until(lambda: state.worker.pending() == 2)
                busy = c.get("/api/generate?seed=3")
                assert busy.status_code == 503 and busy.json() == {"error": "busy"}
                release.set()
                assert [f.result(timeout=60).status_code for f in waiting] == [200, 200]
        finally:
            release.set()


def test_repeats_come_from_the_cache_but_random_noise_never_does(nets):
    state = make_state([nets["net"]])
    with client_of(state) as c:
        first = c.get("/api/generate?seed=11&psi=0.5")
        computed = state.worker.computed
        again = c.get("/api/generate?seed=11&psi=0.5")
        assert again.content == first.content and state.worker.computed == computed
        assert again.headers["x-stylegan-command"] == first.headers["x-stylegan-command"]
        c.get("/api/generate?seed=11&noise=random")
        c.get("/api/generate?seed=11&noise=random")
        assert state.worker.computed == computed + 2


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to read the RSS")
def test_a_burst_of_200_requests_neither_fails_nor_grows_without_bound(nets):
    from stylegan.serve.cache import ResponseCache

    state = make_state([nets["net"]], max_queue=8)
    state.cache = ResponseCache(max_items=16, max_bytes=1 << 20)
    with client_of(state) as c:
        c.get("/api/generate?seed=0")  # warm-up: the first call imports and allocates
        rss_before = _rss_bytes()
        urls = [f"/api/generate?seed={i % 40}&psi=0.{i % 9 + 1}" + ("&slot=slider" if i % 3 == 0 else "")
                for i in range(150)]
        urls += [f"/api/mix?rows={i % 5}&cols={i % 7}&styles=coarse" for i in range(30)]
        urls += [f"/api/generate?seed={i}&psi=nan" for i in range(20)]  # bad ones are answered without the worker
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(c.get, urls))
        statuses = [a.status_code for a in answers]
        assert set(statuses[:180]) <= {200, 409, 503}, set(statuses)
        assert statuses[180:] == [400] * 20
        assert statuses.count(200) >= 1  # how many of the rest are 503 depends on the machine's speed
        busy = [url for url, status in zip(urls, statuses) if status == 503]
        assert all(c.get(url).status_code == 200 for url in busy)  # a busy answer is only "ask again"
        assert len(state.cache) <= 16 and state.cache.bytes <= 1 << 20
        assert state.worker.pending() == 0
        assert _rss_bytes() - rss_before < 200 << 20
        assert c.get("/api/generate?seed=1").status_code == 200  # still serving
