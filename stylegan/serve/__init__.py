"""`stylegan serve`: a local web explorer of networks and a training run (seeds, truncation, style mixing,
interpolation, projection and edits, the run's curves), answering with the same bytes the CLI writes.

Layout: params (every query parameter's parsing and validation), renders (one request type per image route: its
validation result, the worker computation through the CLI's own functions, the equivalent CLI command), worker (the
per-device thread every torch call runs on: bounded queue, slot replacement), cache (recent responses), jobs
(background projections), run_view (a run folder's log and snapshots), state (what `stylegan serve` loaded at
start), app (the FastAPI routes). Needs the `serve` extra: pip install "stylegan[serve]".
"""
