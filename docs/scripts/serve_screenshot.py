"""Makes docs/images/serve.png, the README's picture of `stylegan serve`: the Seeds tab of a trained network.

usage: python docs/scripts/serve_screenshot.py CHECKPOINT [RUN_DIR] [OUT]

Run once for the README with the main job's checkpoint (docs/MAIN_JOB.md):
    python docs/scripts/serve_screenshot.py /work/runs/baseline/checkpoint-0000120000.pt /work/runs/baseline
It starts `stylegan serve` on a free loopback port, opens the page in Debian's chromium (headless, through
Playwright: tests/serve/serve_browser_support.py), shows 24 seeds of one class, sets psi 0.70 with the slider, waits until every seed image
of the grid shows that setting and saves a screenshot of the window.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "serve"))

from serve_browser_support import browser_unavailable, chromium, serve  # noqa: E402

PSI_PRESSES = 30  # ArrowLeft presses on the psi slider: 1.00 -> 0.70
VIEWPORT = {"width": 1280, "height": 900}
GLYPH_CLASS = "2"  # the glyph drawn (training.glyphs.CLASSES[2] = "2")
PER_PAGE = "24"


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    checkpoint = Path(sys.argv[1])
    run = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "docs" / "images" / "serve.png"
    reason = browser_unavailable()
    if reason:
        raise SystemExit(reason)
    args = ["--network", str(checkpoint), "--device", "cpu"] + (["--run", str(run)] if run else [])
    with serve(args) as url, chromium(VIEWPORT) as context:
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.querySelectorAll('#seed-grid img.seed[data-query]').length === 12",
                               timeout=120000)
        page.select_option("#seed-count", PER_PAGE)
        page.select_option("#class", GLYPH_CLASS)
        page.focus("#psi")
        for _ in range(PSI_PRESSES):
            page.keyboard.press("ArrowLeft")
        page.wait_for_function("([count, cls]) => { const cells = [...document.querySelectorAll('#seed-grid img.seed')];"
                               " return cells.length === count && cells.every((el) => el.dataset.query"
                               " && el.dataset.query.includes('psi=0.70') && el.dataset.query.includes(cls)); }",
                               arg=[int(PER_PAGE), f"class={GLYPH_CLASS}"], timeout=120000)
        page.mouse.move(0, 0)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
