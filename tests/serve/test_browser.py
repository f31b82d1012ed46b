"""The page of `stylegan serve` in a real browser: Debian's chromium (headless) driven by Playwright, against a live
server on 127.0.0.1 serving a tiny conditional network and a tiny run folder.

What is checked is what a user sees: the images the page shows are the API's bytes for the settings on screen
(after a slider moves, the newest settings' image, never a stale one), the large view's command, the curves of
the run, a projection that starts, reports progress and is cancelled, and API errors in the status line.
"""
from __future__ import annotations

import io
import json
import urllib.parse
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from projection_support import SMALL
from serve_browser_support import browser_unavailable, chromium, fetch_bytes, serve, shown_bytes, wait_for_query

pytestmark = pytest.mark.skipif(browser_unavailable() is not None, reason=str(browser_unavailable()))

CLASSES = 3  # conftest.py's nets["cond"]
RES = SMALL["resolution"]
RECORD_KEYS = ("loss_G", "loss_D", "penalty")


def _record(tick: int, **extra) -> dict:
    return {"tick": tick, "kimg": 4.0 * tick, "images_shown": 4000 * tick, "lod": 0.0, "resolution": RES,
            "loss_G": 1.0 + 0.1 * tick, "loss_D": 1.2 - 0.05 * tick, "penalty": 0.1 * tick, **extra}


def _tiny_run(folder: Path) -> Path:
    """A run folder as `stylegan train` leaves it: log.jsonl (one record per tick) and a snapshot grid."""
    folder.mkdir()
    (folder / "log.jsonl").write_text("".join(json.dumps(_record(t)) + "\n" for t in (1, 2, 3)))
    grid = (np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3)
    PIL.Image.fromarray(grid).save(folder / "fakes000012.png")
    return folder


@pytest.fixture(scope="module")
def site(nets, tmp_path_factory):
    """(base URL, run folder) of a live `stylegan serve` of the 16 px conditional network (conftest.py's) and a tiny
    run (reference ops: no kernel build in the test)."""
    run = _tiny_run(tmp_path_factory.mktemp("serve") / "run")
    with serve(["--network", str(nets["cond"]), "--run", str(run), "--device", "cpu"],
               env={"STYLEGAN_OPS": "ref"}) as url:
        yield url, run


@pytest.fixture(scope="module")
def browser():
    with chromium() as context:
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        yield context


@pytest.fixture
def page(site, browser):
    """A fresh tab on the page, with every console error and uncaught exception in page.errors and every URL it
    requested in page.requested."""
    url, _ = site
    page = browser.new_page()
    page.errors = []
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(f"uncaught: {exc}"))
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto(url + "/")
    page.wait_for_function("document.querySelectorAll('#seed-grid img.seed[data-query]').length === 12")
    yield page
    page.close()


def _api_bytes(site, query: str) -> bytes:
    return fetch_bytes(site[0] + query)


def _move_slider(page, selector: str, key: str, presses: int) -> None:
    """Moves a range input as a user does, one key press (one input event) at a time."""
    page.focus(selector)
    for _ in range(presses):
        page.keyboard.press(key)


def test_page_loads_without_console_errors(page, site):
    assert page.errors == []
    assert page.is_visible("#tab-run")  # the server has a run
    assert page.is_visible("#class") and page.eval_on_selector("#class", "s => s.options.length") == CLASSES
    first = page.eval_on_selector("#seed-grid img.seed", "el => el.dataset.query")
    assert "seed=0" in first and "psi=1.00" in first
    assert shown_bytes(page, "#seed-grid img.seed") == _api_bytes(site, first)
    # Offline: everything the page loaded came from the server itself (or is an image blob it made).
    outside = [u for u in page.requested if not u.startswith((site[0] + "/", "blob:", "data:"))]
    assert outside == [] and any(u.endswith("/static/app.js") for u in page.requested)


def test_truncation_slider_changes_the_image(page, site):
    before = shown_bytes(page, "#seed-grid img.seed")
    _move_slider(page, "#psi", "ArrowLeft", 10)  # 1.00 -> 0.90 in 10 input events, each superseding the last
    assert page.input_value("#psi") == "0.9"
    query = wait_for_query(page, "#seed-grid img.seed", "psi=0.90", "seed=0")
    after = shown_bytes(page, "#seed-grid img.seed")
    assert after != before
    assert after == _api_bytes(site, query)  # the newest settings' bytes: no stale answer overwrote them
    # Every cell shows psi 0.90 once the requests settle.
    page.wait_for_function("[...document.querySelectorAll('#seed-grid img.seed')]"
                           ".every((el) => el.dataset.query.includes('psi=0.90'))")


# In the page: fetch answers for psi 0.99 are held back until the test releases them, ignore aborts and drop the
# slot (so the server renders them and never answers 409), as from a slow server whose answers were already on their
# way: only the page's own newest-request check can keep them off the screen.
SLOW_STALE_FETCH_JS = """
window.slowAnswers = {started: 0, arrived: 0, release: false};
const realFetch = window.fetch;
window.fetch = async (url, init = {}) => {
  if (!String(url).includes("psi=0.99")) return realFetch(url, init);
  window.slowAnswers.started++;
  try {
    const resp = await realFetch(String(url).replace(/&slot=[^&]*/, ""), {...init, signal: undefined});
    const body = await resp.blob();  // read at once: the connection is free for the newer requests
    while (!window.slowAnswers.release) await new Promise((resolve) => setTimeout(resolve, 20));
    return new Response(body, {status: resp.status, headers: resp.headers});
  } finally {
    window.slowAnswers.arrived++;
  }
};
"""


def test_a_slow_stale_answer_never_overwrites_a_newer_image(page, site):
    page.add_init_script(SLOW_STALE_FETCH_JS)
    page.reload()
    page.wait_for_function("document.querySelectorAll('#seed-grid img.seed[data-query]').length === 12")
    page.focus("#psi")
    page.keyboard.press("ArrowLeft")  # 0.99: its answers are held back
    page.wait_for_function("window.slowAnswers.started === 12")
    page.keyboard.press("ArrowLeft")  # 0.98
    every_cell = "[...document.querySelectorAll('#seed-grid img.seed')].every((el) => el.dataset.query.includes(%r))"
    page.wait_for_function(every_cell % "psi=0.98")
    page.evaluate("window.slowAnswers.release = true")
    page.wait_for_function("window.slowAnswers.arrived === 12")  # every stale answer is in
    page.wait_for_timeout(200)
    assert page.evaluate(every_cell % "psi=0.98")
    query = page.eval_on_selector("#seed-grid img.seed", "el => el.dataset.query")
    assert shown_bytes(page, "#seed-grid img.seed") == _api_bytes(site, query)


def test_class_and_lod_pickers(page, site):
    page.select_option("#class", "2")
    query = wait_for_query(page, "#seed-grid img.seed", "class=2")
    assert shown_bytes(page, "#seed-grid img.seed") == _api_bytes(site, query)
    assert page.is_visible("#lod")  # a 16 px network has levels 0..2
    _move_slider(page, "#lod", "End", 1)
    query = wait_for_query(page, "#seed-grid img.seed", "lod=2.00", "class=2")
    shown = PIL.Image.open(io.BytesIO(shown_bytes(page, "#seed-grid img.seed")))
    assert shown.size == (RES // 4, RES // 4)  # lod 2 renders at resolution / 2^2, as `stylegan generate --lod 2`
    page.click("#lod-reset")
    page.wait_for_function("!document.querySelector('#seed-grid img.seed').dataset.query.includes('lod=')")


def test_paging_and_the_large_view_show_the_command(page):
    page.click("#page-next")
    wait_for_query(page, "#seed-grid img.seed", "seed=12")
    page.click("#seed-grid img.seed")
    assert page.is_visible("#seed-large")
    page.wait_for_function("document.querySelector('#seed-command').textContent.startsWith('stylegan')")
    command = page.text_content("#seed-command")
    assert command.startswith("stylegan generate --network NETWORK --seeds 12 ")
    assert "--class 0" in command
    assert page.text_content("#seed-large-seed") == "12"
    page.click("#seed-copy")
    assert page.evaluate("navigator.clipboard.readText()") == command
    page.keyboard.press("Escape")
    assert not page.is_visible("#seed-large")


def test_a_style_mix_renders(page, site):
    page.click("#tab-mix")
    query = wait_for_query(page, "#mix-image", "/api/mix", "rows=1%2C2%2C3")
    first = shown_bytes(page, "#mix-image")
    assert first == _api_bytes(site, query)
    assert PIL.Image.open(io.BytesIO(first)).size == (4 * RES, 4 * RES)  # header row/column + 3x3
    assert page.text_content("#mix-command").startswith("stylegan style-mixing --network NETWORK")
    page.fill("#mix-cols", "7,8")
    query = wait_for_query(page, "#mix-image", "cols=7%2C8")
    assert shown_bytes(page, "#mix-image") == _api_bytes(site, query) != first


def test_an_interpolation_renders(page, site):
    page.click("#tab-interp")
    query = wait_for_query(page, "#interp-image", "/api/interpolate", "format=gif")
    gif = shown_bytes(page, "#interp-image")
    assert gif[:6] == b"GIF89a" and gif == _api_bytes(site, query)
    page.select_option("#interp-format", "strip")
    query = wait_for_query(page, "#interp-image", "format=strip")
    strip = PIL.Image.open(io.BytesIO(shown_bytes(page, "#interp-image")))
    assert strip.size == (int(page.input_value("#interp-frames")) * RES, RES)
    assert page.text_content("#interp-command").startswith("stylegan interpolate --network NETWORK")


def test_an_api_error_shows_in_the_status_line(page):
    page.click("#tab-mix")
    page.fill("#mix-rows", "1,x")
    page.wait_for_selector("#status.error")
    assert "rows" in page.text_content("#status")
    assert page.get_attribute("#mix-rows", "aria-invalid") == "true"
    page.fill("#mix-rows", "1,2")
    page.wait_for_function("!document.querySelector('#status').classList.contains('error')")
    assert page.get_attribute("#mix-rows", "aria-invalid") is None


def test_the_run_tab_draws_and_follows_the_log(page, site):
    _, run = site
    page.click("#tab-run")
    page.wait_for_selector("#run-plot svg[data-key=loss_G] polyline")
    assert {page.get_attribute(s, "data-key") for s in ["#run-plot svg >> nth=%d" % i for i in range(3)]} \
        == set(RECORD_KEYS)
    points = page.get_attribute("#run-plot svg[data-key=loss_G] polyline", "points")
    assert len(points.split()) == 3
    page.hover("#run-plot svg[data-key=loss_G]", position={"x": 5, "y": 60})  # at the left: the first tick
    assert page.text_content("#run-plot svg[data-key=loss_G] text[visibility=visible]") == "4 kimg: 1.1"
    page.wait_for_function("document.querySelector('#run-snapshot-image').naturalWidth === 64")
    assert "fakes000012" in page.text_content("#run-snapshot-label")
    # The run trains on: a new tick with an SWD appears without reloading (the page polls /api/run?since=N).
    with (run / "log.jsonl").open("a") as log:
        log.write(json.dumps(_record(4, swd_avg=42.0)) + "\n")
    page.wait_for_selector("#run-plot svg[data-key=swd_avg]", timeout=15000)
    assert len(page.get_attribute("#run-plot svg[data-key=loss_G] polyline", "points").split()) == 4


def _start_projection(page, site, folder: Path, steps: int) -> None:
    """Uploads one of the network's own images (pixel loss: no VGG16 file in the test) and presses Start."""
    target = folder / "target.png"
    target.write_bytes(_api_bytes(site, "/api/generate?net=0&seed=5&psi=0.50&class=1"))
    page.click("#tab-project")
    page.set_input_files("#project-file", str(target))
    page.select_option("#project-loss", "pixel")
    page.fill("#project-steps", str(steps))
    page.click("#project-start")


def test_a_projection_starts_reports_progress_and_is_cancelled(page, site, tmp_path):
    _start_projection(page, site, tmp_path, steps=5000)
    page.wait_for_function("document.querySelector('#project-progress').value > 0", timeout=30000)
    assert page.is_enabled("#project-cancel")
    page.click("#project-cancel")
    page.wait_for_function("document.querySelector('#project-progress-text').textContent.startsWith('cancelled')",
                           timeout=30000)
    assert not page.is_enabled("#project-cancel")
    assert page.get_attribute("#project-download", "aria-disabled") == "true"
    page.wait_for_function("document.querySelector('#project-image').naturalWidth === %d" % RES)


def test_a_finished_projection_is_edited_and_downloadable(page, site, tmp_path):
    _start_projection(page, site, tmp_path, steps=4)
    page.wait_for_function("document.querySelector('#project-progress-text').textContent.startsWith('done')",
                           timeout=60000)
    job_ws = page.get_attribute("#project-download", "href")
    assert job_ws.startswith("/api/jobs/") and job_ws.endswith("/ws")
    assert page.input_value("#edit-source") == "job"
    assert page.is_disabled("#psi") and page.is_enabled("#class")  # a projection's latents are edited as they are
    assert page.errors == []  # no request for an image the job does not have yet
    _move_slider(page, "#edit-strength", "ArrowRight", 20)  # 0.0 -> 2.0
    query = wait_for_query(page, "#edit-image", "/api/edit", "job=", "strength=2.0")
    assert shown_bytes(page, "#edit-image") == _api_bytes(site, query)
    assert "stylegan edit --network NETWORK --ws projected.npz" in page.text_content("#edit-command")
    parsed = urllib.parse.parse_qs(urllib.parse.urlsplit(query).query)
    assert parsed["directions"][0] == page.input_value("#edit-direction")
