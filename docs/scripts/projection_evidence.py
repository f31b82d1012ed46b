"""Makes docs/images/projection_*.png and prints the table of docs/PROJECTION.md §3.

usage: python docs/scripts/projection_evidence.py CHECKPOINT OUTDIR [STEPS]

The checkpoint is a 32 px glyphs run still training at 16 px (lod 1): its 16 px network (layers 0-5 and the
16 px ToRGB, the layers that have trained) is cut out as a 16 px Generator, which computes exactly what the
checkpoint renders at lod 1. Targets: builtin:glyphs images of another seed (GlyphParams(seed=1)), never seen in
training; each is projected with its own class label in W and in W+ (pixel loss, default schedule).
"""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import stylegan
from stylegan.config import GeneratorConfig
from stylegan.directions import compute_directions
from stylegan.edit import edit_images, edit_strip
from stylegan.generate import layer_range, ws_from_seeds
from stylegan.generator import Generator
from stylegan.images import tile
from stylegan.projection import ProjectionConfig, project
from training.glyphs import CLASSES, GlyphParams, render_glyph

SCALE = 4


def cut_to(G: Generator, resolution: int) -> Generator:
    cfg = GeneratorConfig.from_dict({**G.config.to_dict(), "resolution": resolution})
    small = Generator(cfg).eval()
    state = {k: v for k, v in G.state_dict().items() if k in small.state_dict()}
    small.load_state_dict(state)
    return small


def big(img: np.ndarray) -> np.ndarray:
    return img.repeat(SCALE, 0).repeat(SCALE, 1)


def main() -> None:
    checkpoint, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    outdir.mkdir(parents=True, exist_ok=True)
    nets = stylegan.load(checkpoint)
    if nets.lod not in (0.0, 1.0):
        raise SystemExit(f"{checkpoint} is at lod {nets.lod}: expected a stable level (0 or 1)")
    G = cut_to(nets.generator.eval(), 16) if nets.lod == 1.0 else nets.generator.eval()
    params = GlyphParams(count=200, seed=1)
    picks = [render_glyph(i, G.config.resolution, params) for i in (0, 1, 2, 3)]
    rows, lines = [], []
    for img, label in picks:
        target = torch.from_numpy(img).permute(2, 0, 1)[None]
        row = [img]
        scores = []
        for space in ("w", "wplus"):
            p = project(G, target, ProjectionConfig(space=space, num_steps=steps), class_idx=label, progress=False)
            row.append(p.images[0])
            scores.append(p.psnr[0])
        rows.append([big(x) for x in row])
        lines.append(f"| {CLASSES[label]} | {scores[0]:.1f} | {scores[1]:.1f} |")
    Image.fromarray(tile(list(map(list, zip(*rows))))).save(outdir / "projection_glyphs.png")
    print("| glyph | W PSNR (dB) | W+ PSNR (dB) |\n|---|---|---|\n" + "\n".join(lines))

    strips = []
    seeds, class_idx = [1, 2, 3], 10
    ws = ws_from_seeds(G, seeds, 1.0, None, class_idx)
    for method in ("sefa", "ganspace"):
        d = compute_directions(G, method, list(range(G.num_layers)), num=5, class_idx=class_idx)
        direction = torch.from_numpy(d.vectors[0] * d.sigmas[0]).float()
        for group in ("coarse", "middle"):
            images = edit_images(G, ws, direction, [-3, -1.5, 0, 1.5, 3], list(layer_range(group, G.num_layers)))
            strip = edit_strip(images)
            Image.fromarray(big(strip)).save(outdir / f"edit_{method}_{group}.png")
            strips.append(big(strip))
    print("edit strips: sefa coarse, sefa middle, ganspace coarse, ganspace middle; seeds", seeds, "class",
          CLASSES[class_idx])
    Image.fromarray(np.concatenate(strips, axis=0)).save(outdir / "projection_edits.png")


if __name__ == "__main__":
    main()
