"""Accuracy of the glyph_acc classifier ("glyphs") on REAL builtin:glyphs images of each stroke style.

Why: glyph_acc of a network fine-tuned on `--glyphs-style outline` only means something if the classifier reads
real outline glyphs; this measures it (docs/TRANSFER.md §3.2).
Usage: python docs/scripts/glyph_classifier_on_outline.py [COUNT]
"""
import sys
from collections import Counter

import numpy as np
import torch

from stylegan.metrics.glyph_classifier import INPUT_RESOLUTION, classify, load_classifier
from stylegan.training.glyphs import CLASSES, GlyphParams, render_glyph


def accuracy(style: str, count: int):
    params = GlyphParams(count=count, style=style)
    drawn = [render_glyph(i, INPUT_RESOLUTION, params) for i in range(count)]
    x = torch.from_numpy(np.stack([img for img, _ in drawn])).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([label for _, label in drawn])
    pred = classify(load_classifier("glyphs"), x)
    ok = pred == y
    per_class = {CLASSES[c]: float(ok[y == c].float().mean()) for c in range(len(CLASSES))}
    confusions = Counter((CLASSES[int(a)], CLASSES[int(b)]) for a, b in zip(y[~ok], pred[~ok])).most_common(5)
    return float(ok.float().mean()), per_class, confusions


if __name__ == "__main__":
    torch.set_num_threads(1)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for style in ("solid", "outline"):
        acc, per_class, conf = accuracy(style, count)
        worst = sorted(per_class.items(), key=lambda kv: kv[1])[:5]
        print(f"{style}: accuracy {acc:.4f} on the first {count} images; worst classes "
              f"{', '.join(f'{k} {v:.2f}' for k, v in worst)}; top confusions (true, read) {conf}")
