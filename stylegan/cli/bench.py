"""`stylegan bench`: benchmark tables. A click group; each benchmark is a subcommand (`ops`; more can be added)."""
from __future__ import annotations

import json
from typing import Dict, List

import click
import torch

from stylegan.benchmarks import timing
from stylegan.benchmarks.conv import DEFAULT_RESOLUTIONS as CONV_RESOLUTIONS
from stylegan.benchmarks.networks import FMAP_BASE, FMAP_MAX, FUSED_SCALE_CHOICES, LATENT_SIZE
from stylegan.training.config import mbstd_batch_problem


@click.group()
def bench() -> None:
    """Benchmarks that print tables stating the machine, thread count and allocator settings."""


def _malloc_settings(choice: str) -> List[str]:
    return list(timing.MALLOC_SETTINGS) if choice == "both" else [choice]


@bench.command("ops")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the ops run.")
@click.option("--repeat", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed calls per measurement (the median is reported).")
@click.option("--malloc", "malloc", type=click.Choice(["default", "tuned", "both"]), default="both",
              show_default=True,
              help="glibc allocator settings: default, tuned (" +
                   " ".join(f"{k}={v}" for k, v in timing.TUNED_MALLOC_ENV.items()) +
                   ") or both (two tables). Each runs in its own subprocess.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write every number to this JSON file.")
@click.option("--quick", is_flag=True, help="Tiny shapes: checks that the bench runs, measures nothing useful.")
def ops_command(device: str, repeat: int, malloc: str, json_path: str, quick: bool) -> None:
    """Time bias_act and upfirdn2d: reference vs kernel, forward / fwd+bwd / double backward."""
    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available to torch on this machine", param_hint="--device")
    args = ["--device", device, "--repeat", str(repeat)] + (["--quick"] if quick else [])
    results: Dict[str, dict] = {}
    from stylegan.benchmarks.ops import MEASURE_BUDGET_S, TABLE_HEADERS, table_rows  # torch-heavy imports only when run

    for setting in _malloc_settings(malloc):
        click.echo(f"measuring with malloc={setting} ...", err=True)
        try:
            result = timing.run_with_env("stylegan.benchmarks.ops", args, timing.env_for_malloc(setting))
        except timing.SubprocessError as exc:
            raise click.ClickException(f"the measurement with malloc={setting} failed: {exc}") from None
        results[setting] = result
        click.echo("")
        click.echo(f"## bench ops, malloc={setting}")
        click.echo(timing.describe_machine(result["machine"]))
        click.echo(f"copy bandwidth into an already-mapped buffer: {result['copy_gbps']:.1f} GB/s; "
                   f"median of {result['repeat']} runs (fewer where one run exceeds "
                   f"{MEASURE_BUDGET_S:.0f} s / repeat); 'x floor' = kernel time / (bytes / copy bandwidth)")
        for op, used in result["kernel_used"].items():
            click.echo(f"{op}: the kernel column runs the {used}")
        click.echo(timing.format_table(TABLE_HEADERS, table_rows(result)))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
        click.echo(f"\nwrote {json_path}")


@bench.command("conv")
@click.option("--resolutions", default=",".join(str(r) for r in CONV_RESOLUTIONS), show_default=True,
              help="Comma-separated resolutions (powers of two, 4-1024); the width at each is the official nf.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Minibatch.")
@click.option("--dtypes", default="fp32,bf16", show_default=True,
              help="Comma-separated dtypes, one row each: fp32, bf16, fp16 (fp16: CUDA only).")
@click.option("--layouts", default="nchw,channels_last", show_default=True,
              help="Comma-separated memory formats, one row each: nchw, channels_last.")
@click.option("--fmap-base", type=click.IntRange(min=1), default=FMAP_BASE, show_default=True,
              help="Network width budget (official).")
@click.option("--fmap-max", type=click.IntRange(min=1), default=FMAP_MAX, show_default=True,
              help="Most feature maps per layer (official).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the convolutions run.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed calls per measurement (the median is reported).")
@click.option("--malloc", type=click.Choice(["default", "tuned", "both"]), default="tuned", show_default=True,
              help="glibc allocator settings (one subprocess, one table each).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write every number to this JSON file.")
def conv_command(resolutions: str, batch: int, dtypes: str, layouts: str, fmap_base: int, fmap_max: int,
                 device: str, repeat: int, malloc: str, json_path: str) -> None:
    """3x3 convolution speed per resolution, dtype and memory format at the networks' widths: the ceiling of
    what --precision bf16|fp16 (and channels-last) can gain in a convolution-bound step on this machine."""
    from stylegan.benchmarks.conv import DTYPES, LAYOUTS, report
    from stylegan.precision import FP16_ON_CPU

    res = _power_of_two_list(resolutions, 4, 1024)
    dtype_list = _comma_list(dtypes, tuple(DTYPES), "--dtypes")
    layout_list = _comma_list(layouts, LAYOUTS, "--layouts")
    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available to torch on this machine", param_hint="--device")
    if device == "cpu" and "fp16" in dtype_list:
        raise click.BadParameter(FP16_ON_CPU, param_hint="--dtypes")
    args = ["--resolutions", ",".join(map(str, res)), "--dtypes", ",".join(dtype_list), "--layouts",
            ",".join(layout_list), "--batch", str(batch), "--fmap-base", str(fmap_base), "--fmap-max",
            str(fmap_max), "--device", device, "--repeat", str(repeat)]
    results: Dict[str, dict] = {}
    for setting in _malloc_settings(malloc):
        click.echo(f"measuring with malloc={setting} ...", err=True)
        try:
            results[setting] = timing.run_with_env("stylegan.benchmarks.conv", args, timing.env_for_malloc(setting))
        except timing.SubprocessError as exc:
            raise click.ClickException(f"the measurement with malloc={setting} failed: {exc}") from None
        click.echo("")
        click.echo(f"## bench conv, malloc={setting}")
        click.echo(report(results[setting]))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
        click.echo(f"\nwrote {json_path}")


def _power_of_two_list(text: str, lowest: int, highest: int) -> List[int]:
    """Comma-separated powers of two in [lowest, highest], or a BadParameter naming the text."""
    try:
        values = [int(r) for r in text.split(",")]
        if any(v < lowest or v > highest or v & (v - 1) for v in values):
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected comma-separated powers of two from {lowest} to {highest}",
                                 param_hint="--resolutions") from None
    return values


def _network_options(fn):
    """Options shared by `bench networks` and `bench train`."""
    options = [
        click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Timed iterations per point (the median is reported)."),
        click.option("--malloc", type=click.Choice(["default", "tuned", "both"]), default="default",
                     show_default=True, help="glibc allocator settings (each point runs in its own subprocess)."),
        click.option("--fmap-base", type=click.IntRange(min=1), default=FMAP_BASE, show_default=True,
                     help="Network width budget (official)."),
        click.option("--fmap-max", type=click.IntRange(min=1), default=FMAP_MAX, show_default=True,
                     help="Most feature maps per layer (official)."),
        click.option("--latent", "latent_size", type=click.IntRange(min=1), default=LATENT_SIZE, show_default=True,
                     help="Size of z and w (official)."),
        click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), default=None,
                     help="Also write every number to this JSON file."),
        click.option("--fused-scale", type=click.Choice(list(FUSED_SCALE_CHOICES)), default=None,
                     help="fused_scale of the networks (stylegan train --fused-scale) [default: the training "
                          "default]."),
        click.option("--precision", "precisions", default="fp32", show_default=True,
                     help="Comma-separated precisions, one row each (e.g. fp32,bf16; stylegan train --precision)."),
        click.option("--impls", default="auto,ref", show_default=True,
                     help="Comma-separated op implementations, one row each (auto: the kernels, ref: pure torch)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _comma_list(text: str, allowed, param_hint: str) -> List[str]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if not items or bad:
        raise click.BadParameter(f"{text!r}: expected a comma-separated list of {', '.join(allowed)}",
                                 param_hint=param_hint)
    return list(dict.fromkeys(items))


def _run_network_points(resolutions, batch, lod, train, repeat, malloc, fmap_base, fmap_max, latent_size,
                        json_path, fused_scale=None, precisions="fp32", impls="auto,ref", rosinality=None) -> None:
    from stylegan.benchmarks.networks import IMPLS, run_networks_bench

    precision_list = _cpu_precisions(precisions)
    impl_list = _comma_list(impls, IMPLS, "--impls")

    problem = mbstd_batch_problem(batch)  # the training step's own rule, checked before any subprocess starts
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--batch")
    if rosinality is not None:
        from stylegan.benchmarks.peer_rosinality import checkout_problem, step_for
        problem = checkout_problem(rosinality)
        if problem:
            raise click.BadParameter(problem, param_hint="--rosinality")
        for res in resolutions:
            try:
                step_for(res)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--resolutions") from None
    fused = None if fused_scale is None else FUSED_SCALE_CHOICES[fused_scale]
    results = {}
    for setting in _malloc_settings(malloc):
        click.echo(f"## malloc={setting}")
        try:
            results[setting] = run_networks_bench(resolutions, batch=batch, repeat=repeat, malloc=setting,
                                                  fmap_base=fmap_base, fmap_max=fmap_max, latent_size=latent_size,
                                                  train=train, lod=lod, fused_scale=fused,
                                                  precisions=precision_list, impls=impl_list,
                                                  rosinality=rosinality)
        except timing.SubprocessError as exc:
            raise click.ClickException(f"a measurement with malloc={setting} failed: {exc}") from None
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump({k: {"machine": v["machine"], "rows": v["rows"]} for k, v in results.items()}, f, indent=1)
        click.echo(f"wrote {json_path}")


def _cpu_precisions(text: str) -> List[str]:
    """--precision as a list; one this machine's CPU cannot run is refused here (not in a subprocess), and what
    each one runs is said on stderr."""
    from stylegan.precision import PRECISIONS, resolve_precision

    precision_list = _comma_list(text, PRECISIONS, "--precision")
    for name in precision_list:
        try:
            click.echo(resolve_precision(name, torch.device("cpu"), warn=False).describe(), err=True)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--precision") from None
    return precision_list


def _resolution_list(text: str) -> List[int]:
    try:
        return [int(r) for r in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of ints", param_hint="--resolutions")


@bench.command("networks")
@click.option("--resolutions", default="32,64,128,256", show_default=True, help="Comma-separated resolutions.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Minibatch.")
@click.option("--no-train", is_flag=True, help="Generation only: time G's forward, not the training step.")
@_network_options
def networks_command(resolutions: str, batch: int, no_train: bool, repeat: int, malloc: str, fmap_base: int,
                     fmap_max: int, latent_size: int, json_path: str, fused_scale: str, precisions: str,
                     impls: str) -> None:
    """G forward images/s and a full G+D WGAN-GP step images/s per resolution, impl auto vs ref, per precision,
    peak memory."""
    _run_network_points(_resolution_list(resolutions), batch, 0.0, not no_train, repeat, malloc, fmap_base, fmap_max, latent_size, json_path,
                        fused_scale, precisions, impls)


@bench.command("train")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Minibatch.")
@click.option("--resolutions", default="32,64", show_default=True,
              help="Comma-separated resolutions (the published baselines are at 32 and 64).")
@click.option("--rosinality", type=str, default=None,
              help="A checkout of github.com/rosinality/style-based-gan-pytorch: adds its fp32 WGAN-GP iteration "
                   "(official widths, alpha 0.5) per resolution, timed in the same run.")
@_network_options
def train_command(batch: int, resolutions: str, repeat: int, malloc: str, fmap_base: int, fmap_max: int,
                  latent_size: int, json_path: str, fused_scale: str, precisions: str, impls: str,
                  rosinality: str) -> None:
    """WGAN-GP training images/s and peak memory at 32 and 64 px mid-fade (alpha 0.5), impl auto vs ref, per
    precision (--precision fp32,bf16: side by side in one run), optionally against rosinality's step.

    Times the real training step (Trainer.step of `stylegan train`) with the training defaults."""
    _run_network_points(_resolution_list(resolutions), batch, 0.5, True, repeat, malloc, fmap_base, fmap_max,
                        latent_size, json_path, fused_scale, precisions, impls, rosinality)


@bench.command("serve")
@click.option("--clients", "client_counts", default="1,8", show_default=True,
              help="Comma-separated numbers of concurrent clients, one row (and one server) each.")
@click.option("--seconds", type=click.FloatRange(min=1, max=600), default=30.0, show_default=True,
              help="Duration of each row's load.")
@click.option("--resolution", type=click.IntRange(min=8), default=64, show_default=True,
              help="Resolution of the served (randomly initialised) network.")
@click.option("--fmap-base", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Width budget of the served network (official name).")
@click.option("--fmap-max", type=click.IntRange(min=1), default=128, show_default=True,
              help="Most feature maps per layer of the served network.")
@click.option("--latent", "latent_size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Size of z and w of the served network.")
@click.option("--threads", type=click.IntRange(min=1), default=max(1, torch.get_num_threads()), show_default=True,
              help="torch threads of the server process.")
def serve_command(client_counts: str, seconds: float, resolution: int, fmap_base: int, fmap_max: int,
                  latent_size: int, threads: int) -> None:
    """Loopback load test of `stylegan serve`: N concurrent clients for --seconds against a live server on
    127.0.0.1; requests/s, answers by status, p50/p99 latency, the server's peak RSS."""
    from stylegan.benchmarks.serve_load import TABLE_HEADERS, run_load, table_rows
    from stylegan.cli.serve import _serve_modules

    _serve_modules()
    try:
        counts = [int(c) for c in client_counts.split(",")]
        if not counts or min(counts) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{client_counts!r}: expected comma-separated client counts >= 1",
                                 param_hint="--clients") from None
    results = []
    for count in counts:
        click.echo(f"{count} client(s) for {seconds:g} s ...", err=True)
        results.append(run_load(count, seconds, resolution, fmap_base, fmap_max, latent_size, threads))
    info = timing.machine_info()
    info["torch_threads"] = threads
    click.echo("")
    click.echo(f"## bench serve: {resolution} px network (fmap_base {fmap_base}, fmap_max {fmap_max}, latent "
               f"{latent_size}), fp32, loopback, {seconds:g} s per row, a fresh server per row")
    click.echo(timing.describe_machine(info) + " (the server's threads)")
    click.echo("request mix per client, repeated: 6 seeds of a grid page one at a time, a psi drag (3 requests of one "
               "slot in flight at once), a 2x2 style mix")
    click.echo(timing.format_table(TABLE_HEADERS, table_rows(results)))


@bench.command("project")
@click.option("--resolutions", default="32,256", show_default=True, help="Comma-separated resolutions.")
@click.option("--spaces", default="w", show_default=True, help="Comma-separated latent spaces (w, wplus).")
@click.option("--steps", default="2,8", show_default=True,
              help="SHORT,LONG: a step's time is (t(LONG steps) - t(SHORT steps)) / (LONG - SHORT).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads.")
@click.option("--fmap-base", type=click.IntRange(min=1), default=FMAP_BASE, show_default=True,
              help="Network width budget (official).")
@click.option("--fmap-max", type=click.IntRange(min=1), default=FMAP_MAX, show_default=True,
              help="Most feature maps per layer (official).")
@click.option("--latent", "latent_size", type=click.IntRange(min=1), default=LATENT_SIZE, show_default=True,
              help="Size of z and w (official).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write every number to this JSON file.")
@click.option("--precision", "precisions", default="fp32", show_default=True,
              help="Comma-separated precisions, one row each (e.g. fp32,bf16; stylegan project --precision).")
def project_command(resolutions: str, spaces: str, steps: str, threads: int, fmap_base: int, fmap_max: int,
                    latent_size: int, json_path: str, precisions: str) -> None:
    """Time per step of `stylegan project` (one target, pixel loss, noise maps optimised) per resolution."""
    from stylegan.benchmarks.projection import TABLE_HEADERS, run_projection_bench, table_rows

    res = _power_of_two_list(resolutions, 4, 1024)
    space_list = _comma_list(spaces, ("w", "wplus"), "--spaces")
    try:
        short, long = (int(s) for s in steps.split(","))
        if not 1 <= short < long:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{steps!r}: expected SHORT,LONG with 1 <= SHORT < LONG", param_hint="--steps") \
            from None
    precision_list = _cpu_precisions(precisions)
    result = run_projection_bench(res, space_list, short, long, threads, precision_list, fmap_base=fmap_base,
                                  fmap_max=fmap_max, latent_size=latent_size)
    click.echo(f"## bench project: (t({long} steps) - t({short} steps)) / {long - short}, batch 1, pixel loss, "
               f"fmap_base {fmap_base}, fmap_max {fmap_max}, latent {latent_size}, random weights")
    click.echo(timing.describe_machine(result["machine"]))
    click.echo(timing.format_table(TABLE_HEADERS, table_rows(result)))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        click.echo(f"wrote {json_path}")
