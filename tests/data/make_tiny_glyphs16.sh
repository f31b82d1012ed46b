#!/bin/sh
# Makes tests/data/tiny_glyphs16.pt: a small trained unconditional 16 px glyphs network (G_ema only, 220 KB) for the
# projection-encoder test. Made with this package on the 2-core CPU VM (about 20 minutes there under other jobs).
set -e
out=${1:-tests/data/tiny_glyphs16.pt}
run=$(mktemp -d)
stylegan train --outdir "$run/run" --resolution 16 --start-res 8 --phase-kimg 4 --kimg 20 --fmap-base 128 \
  --fmap-max 32 --latent 32 --mapping-layers 4 --batch 16 --lr 0.003 --loss logistic --r1-gamma 0.05 --ema-kimg 1 \
  --threads 1 --glyphs 2000 --workers 0 --snap 5 --quiet --cache-dir "$run/cache"
python -c "import stylegan, sys; n = stylegan.load(sys.argv[1]); stylegan.save(sys.argv[2], G_ema=n.G_ema)" \
  "$run/run/checkpoint-0000020000.pt" "$out"
rm -rf "$run"
