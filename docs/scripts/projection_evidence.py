"""Makes docs/images/projection_glyphs.png, projection_edits_sefa.png, projection_edits_ganspace.png and prints
the tables of docs/PROJECTION.md §4.

usage: python docs/scripts/projection_evidence.py CHECKPOINT ENCODER OUTDIR [STEPS]

CHECKPOINT: the README main job's (32 px, label-conditional glyphs, trained on builtin:glyphs images 0-9999 of
seed 0). ENCODER: `stylegan encoder train --network CHECKPOINT --out ENCODER`. Targets: builtin:glyphs images of
the same seed with indices from 10000 on (every image is drawn from its own random stream seeded by (seed, index),
so these are new draws of the training distribution that no training step saw); the script also prints each
target's nearest training image (PSNR) to show none is a copy. Each target is projected with its own label: W, W+,
and W+ started from the encoder (pixel loss, default schedule, STEPS steps); the figure shows the encoder's start
too, with the PSNR under every image.
"""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import stylegan
from stylegan.file_hash import file_sha256
from stylegan.directions import compute_directions
from stylegan.edit import edit_images, edit_strip
from stylegan.generate import ws_from_seeds
from stylegan.image_similarity import psnr
from stylegan.images import tile
from stylegan.projection import ProjectionConfig, encoder_start, load_encoder, project, render, w_statistics
from stylegan.training.dataset import ImageDataset
from stylegan.training.glyphs import CLASSES, GlyphParams, render_glyph

SCALE = 4
CAPTION = 14  # px of text under each image
TRAINING_COUNT = 10000  # the main job's --glyphs (default)
TARGETS = range(TRAINING_COUNT, TRAINING_COUNT + 6)
EDIT_SEEDS, EDIT_CLASS, STRENGTHS = [1, 2], 10, [-3, -1.5, 0, 1.5, 3]


def big(img: np.ndarray) -> np.ndarray:
    return img.repeat(SCALE, 0).repeat(SCALE, 1)


def captioned(img: np.ndarray, text: str) -> np.ndarray:
    """The image at SCALE x with `text` on a white band under it."""
    up = big(img)
    canvas = Image.new("RGB", (up.shape[1], up.shape[0] + CAPTION), "white")
    canvas.paste(Image.fromarray(up), (0, 0))
    ImageDraw.Draw(canvas).text((3, up.shape[0] + 1), text, fill="black")
    return np.asarray(canvas)


def nearest_training_psnr(targets: np.ndarray, resolution: int) -> list:
    """PSNR of each target [N, H, W, C] to its closest image of the training set (the cached builtin:glyphs)."""
    reals = ImageDataset("builtin:glyphs", resolution, glyphs_count=TRAINING_COUNT).images  # [N, H, W, C] uint8
    reals = torch.from_numpy(np.array(reals)).float()
    out = []
    for t in targets:
        t = torch.from_numpy(t).float()[None]
        mse = (reals - t).square().mean(dim=(1, 2, 3))
        out.append(float(10 * torch.log10(255 ** 2 / mse.min())))
    return out


def cached_projection(cache: Path, key: str, run):
    """(uint8 images [N, H, W, C], PSNRs) of run() -> Projection, kept in cache/key.npz so a rerun (say, with
    another encoder) recomputes only what changed."""
    path = cache / f"{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            return data["images"], [float(v) for v in data["psnr"]]
    p = run()
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=p.images, psnr=np.array(p.psnr))
    return p.images, p.psnr


def projections(G, encoder, encoder_id: str, steps: int, cache: Path):
    """All targets as one batch per method, each target with its own label."""
    picks = [render_glyph(i, G.config.resolution, GlyphParams(count=TRAINING_COUNT + 100, seed=0)) for i in TARGETS]
    targets = torch.stack([torch.from_numpy(img).permute(2, 0, 1) for img, _ in picks])
    labels = [label for _, label in picks]
    start = render(G, encoder_start(encoder, targets, labels))
    start_psnr = psnr(torch.from_numpy(start).permute(0, 3, 1, 2).float(), targets.float()).tolist()
    w_avgs = torch.stack([w_statistics(G, ProjectionConfig().w_avg_samples, class_idx=c)[0] for c in labels])
    mean_images = render(G, w_avgs[:, None].expand(-1, G.num_layers, -1))
    avg_psnr = psnr(torch.from_numpy(mean_images).permute(0, 3, 1, 2).float(), targets.float()).tolist()
    columns = {}
    for name, space, enc in (("W", "w", None), ("W+", "wplus", None), ("enc+W+", "wplus", encoder)):
        key = f"{TARGETS.start}-{TARGETS.stop}-{space}-{steps}" + (f"-enc{encoder_id}" if enc is not None else "")
        columns[name] = cached_projection(cache, key, lambda: project(
            G, targets, ProjectionConfig(space=space, num_steps=steps), class_idx=labels, progress=False,
            encoder=enc))
        print(name, [round(v, 1) for v in columns[name][1]], flush=True)
    rows, lines = [], []
    for i, ((img, label), index) in enumerate(zip(picks, TARGETS)):
        cells = [captioned(img, f"{CLASSES[label]} #{index}")]
        cells += [captioned(columns[n][0][i], f"{n} {columns[n][1][i]:.1f}") for n in ("W", "W+")]
        cells += [captioned(start[i], f"enc {start_psnr[i]:.1f}"),
                  captioned(columns["enc+W+"][0][i], f"enc+W+ {columns['enc+W+'][1][i]:.1f}")]
        rows.append(cells)
        lines.append(f"| {CLASSES[label]} (#{index}) | {avg_psnr[i]:.1f} | {columns['W'][1][i]:.1f} | "
                     f"{columns['W+'][1][i]:.1f} | {start_psnr[i]:.1f} | {columns['enc+W+'][1][i]:.1f} |")
    near = nearest_training_psnr(np.stack([p[0] for p in picks]), G.config.resolution)
    print("nearest training image PSNR (dB):", [round(v, 1) for v in near])
    return tile(rows), lines


def edit_figure(G, method: str) -> np.ndarray:
    """Rows: top direction 0 and 1, each on layers 0-3 (4-8 px, coarse) and 4-7 (16-32 px, the finest here)."""
    ws = ws_from_seeds(G, EDIT_SEEDS, 1.0, None, EDIT_CLASS)
    d = compute_directions(G, method, list(range(G.num_layers)), num=5, class_idx=EDIT_CLASS)
    strips = []
    for k in (0, 1):
        direction = torch.from_numpy(d.vectors[k] * d.sigmas[k]).float()
        for layers in (range(0, 4), range(4, G.num_layers)):
            strips.append(big(edit_strip(edit_images(G, ws, direction, STRENGTHS, list(layers)))))
    gap = np.full((4, strips[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for s in strips for x in (s, gap)][:-1], axis=0)


def main() -> None:
    checkpoint, encoder_path, outdir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    outdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    G = stylegan.load(checkpoint).generator.eval()
    encoder = load_encoder(encoder_path).encoder
    figure, lines = projections(G, encoder, file_sha256(encoder_path)[:12], steps, outdir / "cache")
    Image.fromarray(figure).save(outdir / "projection_glyphs.png")
    print("| glyph | w_avg start | W | W+ | encoder start | encoder + W+ |\n|---|---|---|---|---|---|\n"
          + "\n".join(lines))
    for method in ("sefa", "ganspace"):
        Image.fromarray(edit_figure(G, method)).save(outdir / f"projection_edits_{method}.png")
    print("edit strips: direction 0 layers 0-3, 4-7; direction 1 layers 0-3, 4-7; seeds", EDIT_SEEDS, "class",
          CLASSES[EDIT_CLASS], "strengths", STRENGTHS)


if __name__ == "__main__":
    main()
