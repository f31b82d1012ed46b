"""upfirdn2d: upsample by zero insertion, pad/crop, FIR filter, downsample by decimation, in one pass.

Same signature and semantics as NVlabs' `torch_utils.ops.upfirdn2d` (stylegan2-ada-pytorch). StyleGAN's blur,
nearest/filtered upsampling and box downsampling are all instances of it; its gradient is again an upfirdn2d
(up/down swapped, filter flipped, padding recomputed), so derivatives of any order stay on the fast path.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from . import build
from .args import int_pair

Scaling = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int]]


def parse_scaling(value: Scaling, name: str) -> Tuple[int, int]:
    """(x, y) factors from an int or an (x, y) pair; ValueError naming `name` for anything else or < 1."""
    return int_pair(value, "upfirdn2d", f"{name} factors", 1)


def parse_padding(value: Padding) -> Tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, an (x, y) pair or a 4-tuple; negative values crop."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value, value, value
    try:
        vals = [int(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"upfirdn2d: padding must be an int, (x, y) or (x0, x1, y0, y1), got {value!r}") from None
    if len(vals) == 2:
        return vals[0], vals[0], vals[1], vals[1]
    if len(vals) == 4:
        return vals[0], vals[1], vals[2], vals[3]
    raise ValueError(f"upfirdn2d: padding must have 1, 2 or 4 entries, got {value!r}")


def filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """(width, height) of a 1-D (separable) or 2-D filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: filter must be 1-D or 2-D, got shape {list(f.shape)}")
    return f.shape[-1], f.shape[0]


def setup_filter(f, device: torch.device = torch.device("cpu"), normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: Optional[bool] = None) -> torch.Tensor:
    """Returns a float32 FIR filter ready for upfirdn2d: 1-D when separable, else the 2-D outer product.

    `f` is a scalar, list or tensor; normalize makes it sum to 1; separable defaults to True for 1-D filters of
    8+ taps (as NVlabs). gain is spread over both axes (gain ** (ndim / 2)).
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: expected a non-empty scalar, 1-D or 2-D filter, got shape {list(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f"setup_filter: a separable filter must be 1-D, got shape {list(f.shape)}")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _check_inputs(x: torch.Tensor, f: Optional[torch.Tensor]) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"upfirdn2d: x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: x must be 4-D [N, C, H, W], got shape {list(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"upfirdn2d: x must be a floating-point tensor, got dtype {x.dtype}")
    if f is not None:
        if not isinstance(f, torch.Tensor):
            raise TypeError(f"upfirdn2d: f must be a torch.Tensor or None (see setup_filter), got {type(f).__name__}")
        if not f.is_floating_point():
            raise TypeError(f"upfirdn2d: f must be a floating-point tensor, got dtype {f.dtype}")
        if f.device != x.device:
            raise ValueError(f"upfirdn2d: f is on {f.device} but x is on {x.device}; expected the same device")
        filter_size(f)


def upfirdn2d_ref(x: torch.Tensor, f: Optional[torch.Tensor], up: Scaling = 1, down: Scaling = 1,
                  padding: Padding = 0, flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Pure-torch reference of `upfirdn2d` (zero-stuffing, pad/crop, depthwise conv, strided slice)."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    upx, upy = parse_scaling(up, "up")
    downx, downy = parse_scaling(down, "down")
    px0, px1, py0, py1 = parse_padding(padding)

    # Upsample: insert up-1 zeros after every sample.
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(n, c, h * upy, w * upx)
    # Pad (positive) then crop (negative).
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    # Filter: conv2d correlates, so flip unless flip_filter asks for correlation.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([c, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=c)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=c)  # along width
        x = F.conv2d(x, f.unsqueeze(3), groups=c)  # along height
    # Downsample: keep every down-th sample.
    return x[:, :, ::downy, ::downx]


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], up: Scaling = 1, down: Scaling = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Returns x upsampled (zero insertion), padded/cropped, FIR-filtered with f and downsampled, in one pass.

    x [N, C, H, W]; f 1-D (separable) or 2-D (see setup_filter), None = identity; up/down an int or (x, y);
    padding int, (x, y) or (x0, x1, y0, y1), negative crops. Output height =
    (H*up_y + pad_y0 + pad_y1 - f_h + down_y) // down_y (likewise width). Differentiable to any order in x; on
    the kernel path f is a constant (no gradient flows to it, as in NVlabs). The kernels take float32/float64 and
    bfloat16 on CPU, also float16 on CUDA; half types accumulate in float32 (TypeError for other dtypes; impl='ref'
    takes any float dtype).
    """
    _check_inputs(x, f)
    upx, upy = parse_scaling(up, "up")
    downx, downy = parse_scaling(down, "down")
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    out_w = (x.shape[3] * upx + px0 + px1 - fw + downx) // downx
    out_h = (x.shape[2] * upy + py0 + py1 - fh + downy) // downy
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d: padding {padding!r} crops the {x.shape[2]}x{x.shape[3]} input to nothing "
                         f"(output would be {out_h}x{out_w})")
    chosen, module = build.resolve_impl("upfirdn2d", impl, x.device, x.dtype)
    if chosen == "ref":
        return upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain)
    return _upfirdn2d_kernel(module, x, f, (upx, upy), (downx, downy), (px0, px1, py0, py1), flip_filter, gain,
                             chosen)


# dtypes each kernel takes (half types accumulate in float32).
KERNEL_DTYPES = {
    "cpu": (torch.float32, torch.float64, torch.bfloat16),
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


def grad_padding(in_hw: Tuple[int, int], out_hw: Tuple[int, int], f_wh: Tuple[int, int], up: Tuple[int, int],
                 down: Tuple[int, int], padding: Tuple[int, int, int, int]) -> Tuple[int, int, int, int]:
    """Padding of the upfirdn2d (up/down swapped, filter flipped) that computes the gradient wrt x.

    For input (H, W) and output (oh, ow) it is [fw-px0-1, W*upx - ow*downx + px0 - upx + 1, fh-py0-1, ...], which
    makes the gradient exactly (H, W) and aligns every output sample with the inputs it was computed from.
    """
    (h, w), (oh, ow), (fw, fh) = in_hw, out_hw, f_wh
    (upx, upy), (downx, downy) = up, down
    px0, _, py0, _ = padding
    return (fw - px0 - 1, w * upx - ow * downx + px0 - upx + 1,
            fh - py0 - 1, h * upy - oh * downy + py0 - upy + 1)


class _Upfirdn2d(torch.autograd.Function):
    """upfirdn2d in the compiled kernel; its backward applies this same Function to the gradient.

    Because the backward is itself a differentiable call of this Function, derivatives of any order (the
    gradient penalty's double backward included) run in the kernel and never touch the reference.
    The filter is a constant: no gradient is computed for f (callers pass it detached).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, f: torch.Tensor, module, up: Tuple[int, int], down: Tuple[int, int],
                padding: Tuple[int, int, int, int], flip_filter: bool, gain: float) -> torch.Tensor:
        y = module.upfirdn2d(x, f, up[0], up[1], down[0], down[1], padding[0], padding[1], padding[2], padding[3],
                             bool(flip_filter), float(gain))
        ctx.save_for_backward(f)
        ctx.module, ctx.up, ctx.down, ctx.padding = module, up, down, padding
        ctx.flip_filter, ctx.gain = flip_filter, gain
        ctx.in_hw, ctx.out_hw = (x.shape[2], x.shape[3]), (y.shape[2], y.shape[3])
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        (f,) = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            gp = grad_padding(ctx.in_hw, ctx.out_hw, filter_size(f), ctx.up, ctx.down, ctx.padding)
            dx = _Upfirdn2d.apply(dy, f, ctx.module, ctx.down, ctx.up, gp, not ctx.flip_filter, ctx.gain)
        return dx, None, None, None, None, None, None, None


def _upfirdn2d_kernel(module, x: torch.Tensor, f: Optional[torch.Tensor], up: Tuple[int, int],
                      down: Tuple[int, int], padding: Tuple[int, int, int, int], flip_filter: bool,
                      gain: float, device_type: str) -> torch.Tensor:
    """Runs the compiled kernel through the autograd Function (dtype checked here, everything else in C++)."""
    if x.dtype not in KERNEL_DTYPES[device_type]:
        names = ", ".join(str(d).replace("torch.", "") for d in KERNEL_DTYPES[device_type])
        raise TypeError(f"upfirdn2d: the {device_type} kernel supports x dtypes {names}; got {x.dtype} "
                        f"(cast x, or use impl='ref')")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    return _Upfirdn2d.apply(x, f.detach(), module, up, down, padding, flip_filter, gain)


def _resample_padding(f, up, down, padding, mode):
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    if mode == "up":
        (sx, sy) = up
        return [px0 + (fw + sx - 1) // 2, px1 + (fw - sx) // 2, py0 + (fh + sy - 1) // 2, py1 + (fh - sy) // 2]
    if mode == "down":
        (sx, sy) = down
        return [px0 + (fw - sx + 1) // 2, px1 + (fw - sx) // 2, py0 + (fh - sy + 1) // 2, py1 + (fh - sy) // 2]
    return [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]


def filter2d(x: torch.Tensor, f: Optional[torch.Tensor], padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Returns x filtered with f at the same resolution ('same' padding for odd and even filters)."""
    p = _resample_padding(f, (1, 1), (1, 1), padding, "filter")
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def filter2d_adjoint(g: torch.Tensor, f: Optional[torch.Tensor], padding: Padding = 0, flip_filter: bool = False,
                     gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Returns the adjoint of filter2d (same arguments) applied to g: the gradient of filter2d wrt its input.

    It is the upfirdn2d that filter2d's backward runs (filter flipped, padding from grad_padding), for callers that
    recompute a filter2d output in their own backward instead of keeping it (stylegan.ops.conv2d's `pre`).
    """
    p = tuple(_resample_padding(f, (1, 1), (1, 1), padding, "filter"))
    fw, fh = filter_size(f)
    out_hw = (g.shape[2], g.shape[3])
    in_hw = (out_hw[0] - p[2] - p[3] + fh - 1, out_hw[1] - p[0] - p[1] + fw - 1)  # filter2d's input size
    gp = grad_padding(in_hw, out_hw, (fw, fh), (1, 1), (1, 1), p)  # type: ignore[arg-type]
    return upfirdn2d(g, f, padding=gp, flip_filter=not flip_filter, gain=gain, impl=impl)


def upsample2d(x: torch.Tensor, f: Optional[torch.Tensor], up: Scaling = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Returns x upsampled by `up` with interpolation filter f (gain scaled by up_x*up_y to keep the mean)."""
    upx, upy = parse_scaling(up, "up")
    p = _resample_padding(f, (upx, upy), (1, 1), padding, "up")
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x: torch.Tensor, f: Optional[torch.Tensor], down: Scaling = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Returns x low-pass filtered with f and decimated by `down`."""
    downx, downy = parse_scaling(down, "down")
    p = _resample_padding(f, (1, 1), (downx, downy), padding, "down")
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
