"""Discriminator augmentation: the ADA pipeline (`--augment ada`) and DiffAugment (`--augment diffaug`).

Why: with a few hundred to a few thousand images D memorises the reals within a few kimg and G collapses. Both
methods show D only augmented images -- reals, fakes and the penalties' inputs alike -- through differentiable ops,
so G learns the un-augmented distribution as long as the augmentations do not leak (Karras et al. 2020, "Training
Generative Adversarial Networks with Limited Data"; Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training").

ADA (`AdaPipeline`): the facts of NVlabs stylegan2-ada-pytorch `training/augment.py` (AugmentPipe) and `train.py`
(augpipe_specs): each op is applied to a sample with probability p x its multiplier (all multipliers 1 in the
official pipes), with the official parameter distributions (AdaOp constants below). Our execution differs in one
way: the blit ops (x-flip, 90-degree rotation, integer translation) are exact pixel permutations here instead of
being folded into the geometric matrix, so they are bit-exact; the geometric ops (isotropic scaling, pre-rotation,
anisotropic scaling, post-rotation, fractional translation) are composed into one matrix per sample and resampled
once, as official: reflect padding, 2x upsampling with the sym6 wavelet low-pass, bilinear sampling, 2x
downsampling with the same filter. Colour ops are one 4x4 matrix per sample, as official.

DiffAugment (`DiffAugment`): its fixed policy 'color,translation,cutout' (data-efficient-gans DiffAugment_pytorch.py
facts: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5), integer translation up to 1/8 of
the size with zero fill, one zeroed square of half the size per sample).

Random parameters: drawn from the pipeline's own CPU generator (seeded from the run's seed, saved in checkpoints:
exact resume) for the GLOBAL batch of the step and each rank keeps its rows, so K ranks equal one process (the
contract of training/distributed.py). Images are float [N, C, H, W] in [-1, 1] (C = 1 or 3 for the colour ops).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F

from ..ops import downsample2d, setup_filter, upsample2d

Rows = Callable[[torch.Tensor], torch.Tensor]

BLIT_OPS = ("xflip", "rotate90", "xint")
GEOM_OPS = ("scale", "rotate", "aniso", "xfrac")
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
# Official augpipe_specs (stylegan2-ada-pytorch train.py): op -> probability multiplier.
AUGPIPES: Dict[str, Dict[str, float]] = {
    "blit": {op: 1.0 for op in BLIT_OPS},
    "geom": {op: 1.0 for op in GEOM_OPS},
    "color": {op: 1.0 for op in COLOR_OPS},
    "bg": {op: 1.0 for op in BLIT_OPS + GEOM_OPS},
    "bgc": {op: 1.0 for op in BLIT_OPS + GEOM_OPS + COLOR_OPS},
}

# Official AugmentPipe defaults: ranges and standard deviations of the ops' parameters.
XINT_MAX = 0.125         # integer translation, relative to the image size
SCALE_STD = 0.2          # log2 std of isotropic scaling
ROTATE_MAX = 1.0         # arbitrary rotation range, 1 = full circle
ANISO_STD = 0.2          # log2 std of anisotropic scaling
XFRAC_STD = 0.125        # std of fractional translation, relative to the image size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5       # log2 std
HUE_MAX = 1.0            # 1 = full circle
SATURATION_STD = 1.0     # log2 std

# The sym6 wavelet low-pass (official Hz_geom = setup_filter(wavelets['sym6'])): orthogonal, so 2x up- then
# downsampling with it is the identity and the geometric resampling adds no aliasing of its own.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466,
        0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578,
        0.0017677118642428036, -0.007800708325034148)

# The luma axis of RGB (official v = [1, 1, 1, 0] / sqrt(3)), around which hue rotates and luma flips.
LUMA_AXIS = (1 / math.sqrt(3),) * 3

DIFFAUG_TRANSLATION = 0.125  # DiffAugment rand_translation ratio
DIFFAUG_CUTOUT = 0.5         # DiffAugment rand_cutout ratio


class Draws:
    """Random tensors for the global batch from one generator; this rank's rows, on the images' device/dtype."""

    def __init__(self, generator: torch.Generator, global_batch: int, rows: Rows, like: torch.Tensor) -> None:
        self.generator = generator
        self.n = global_batch
        self.rows = rows
        self.like = like

    def _out(self, t: torch.Tensor) -> torch.Tensor:
        return self.rows(t).to(device=self.like.device, dtype=self.like.dtype)

    def uniform(self, *shape: int) -> torch.Tensor:
        return self._out(torch.rand((self.n, *shape), generator=self.generator))

    def normal(self, *shape: int) -> torch.Tensor:
        return self._out(torch.randn((self.n, *shape), generator=self.generator))

    def integers(self, low: int, high: int, *shape: int) -> torch.Tensor:
        return self.rows(torch.randint(low, high, (self.n, *shape), generator=self.generator)).to(self.like.device)


# ---------------------------------------------------------------------------------------------------------------
# Matrices (homogeneous, batched [N, 3, 3] for pixel coordinates, [N, 4, 4] for colours).

def _matrix(rows: Tuple[Tuple[Any, ...], ...], like: torch.Tensor) -> torch.Tensor:
    """A batched matrix from rows of scalars and [N] tensors."""
    n = like.shape[0]
    elems = [e if isinstance(e, torch.Tensor) else torch.full((n,), float(e), dtype=like.dtype, device=like.device)
             for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(n, len(rows), len(rows[0]))


def translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return _matrix(((1, 0, tx), (0, 1, ty), (0, 0, 1)), tx)


def scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return _matrix(((sx, 0, 0), (0, sy, 0), (0, 0, 1)), sx)


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    """Counter-clockwise rotation by theta (radians) in (x right, y down) pixel coordinates' matrix convention."""
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix(((c, -s, 0), (s, c, 0), (0, 0, 1)), theta)


def translate3d(t: torch.Tensor) -> torch.Tensor:
    return _matrix(((1, 0, 0, t), (0, 1, 0, t), (0, 0, 1, t), (0, 0, 0, 1)), t)


def scale3d(s: torch.Tensor) -> torch.Tensor:
    return _matrix(((s, 0, 0, 0), (0, s, 0, 0), (0, 0, s, 0), (0, 0, 0, 1)), s)


def _luma_projector(like: torch.Tensor) -> torch.Tensor:
    """v v^T for the luma axis v = [1, 1, 1, 0] / sqrt(3), [4, 4]."""
    v = torch.tensor(LUMA_AXIS + (0.0,), dtype=like.dtype, device=like.device)
    return torch.outer(v, v)


def luma_flip3d(flip: torch.Tensor) -> torch.Tensor:
    """Householder reflection I - 2 v v^T through the plane orthogonal to the luma axis where flip = 1."""
    eye = torch.eye(4, dtype=flip.dtype, device=flip.device)
    return eye - 2 * _luma_projector(flip) * flip.view(-1, 1, 1)


def hue_rotate3d(theta: torch.Tensor) -> torch.Tensor:
    """Rotation by theta around the luma axis (Rodrigues' formula)."""
    vx = vy = vz = LUMA_AXIS[0]
    c, s = torch.cos(theta), torch.sin(theta)
    cc = 1 - c
    return _matrix(((vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0),
                    (vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0),
                    (vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0),
                    (0, 0, 0, 1)), theta)


def saturation3d(s: torch.Tensor) -> torch.Tensor:
    """Keeps the luma component and scales the chroma by s: v v^T + (I - v v^T) s."""
    eye = torch.eye(4, dtype=s.dtype, device=s.device)
    return eye + (eye - _luma_projector(s)) * (s - 1).view(-1, 1, 1)  # written so that s = 1 is exactly I


# ---------------------------------------------------------------------------------------------------------------
# Execution of the three groups.

def blit(images: torch.Tensor, xflip: torch.Tensor, rot90: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Exact pixel permutations per sample: x-flip where xflip = 1, then rot90 quarter turns (torch.rot90 on
    (H, W)), then an integer translation by shift [N, 2] = (dx, dy) pixels, the uncovered border filled by
    reflection (as official: it pads with reflect). The parameters may live on the CPU (the pipeline keeps them
    there, so deciding what runs reads no device tensor)."""
    dev = images.device
    x = images
    if bool((xflip != 0).any()):
        x = torch.where(xflip.to(dev).view(-1, 1, 1, 1) > 0, x.flip(3), x)
    if bool((rot90 != 0).any()):
        k = rot90.to(dev).view(-1, 1, 1, 1)
        x = sum(torch.where(k == q, torch.rot90(x, q, dims=(2, 3)), torch.zeros_like(x)) for q in range(4))
    if bool((shift != 0).any()):
        n, _, h, w = x.shape
        m = int(shift.abs().max())
        if m >= min(h, w):
            raise ValueError(f"integer translation by {m} px does not fit a {h}x{w} image")
        padded = F.pad(x, [m, m, m, m], mode="reflect")
        dx, dy = shift[:, 0].long().to(dev), shift[:, 1].long().to(dev)
        iy = torch.arange(h, device=x.device).view(1, h) - dy.view(n, 1) + m       # out(y, x) = in(y - dy, x - dx)
        ix = torch.arange(w, device=x.device).view(1, w) - dx.view(n, 1) + m
        b = torch.arange(n, device=x.device).view(n, 1, 1)
        x = padded.permute(0, 2, 3, 1)[b, iy.view(n, h, 1), ix.view(n, 1, w)].permute(0, 3, 1, 2)
    return x


def geometric_warp(images: torch.Tensor, G_inv: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """out(p) = in(G_inv p) for pixel coordinates p relative to the image centre (x right, y down), with the
    official anti-aliased resampling: reflect-pad to cover where the output looks, 2x upsample with sym6,
    bilinear sampling on the 2x grid, 2x downsample with the flipped filter and crop. The padding is computed from
    G_inv on the CPU (the pipeline keeps its matrices there: no device read)."""
    n, c, h, w = images.shape
    dev, dt = images.device, images.dtype
    f = setup_filter(list(SYM6), device=dev).to(dt)
    fpad = f.shape[0] // 4                                   # filter margin in input pixels (official Hz_pad)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    G_cpu = G_inv.detach().cpu().double()
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dtype=torch.float64)
    seen = G_cpu @ corners.t()                                # [N, 3, 4]: where the output's corners look
    reach = seen[:, :2, :].permute(1, 0, 2).flatten(1)        # [xy, N * 4]
    reach = torch.cat([-reach, reach]).max(dim=1).values      # [x0, y0, x1, y1] furthest reach from the centre
    limit = torch.tensor([w - 1, h - 1] * 2, dtype=torch.float64)
    margin = (reach + torch.tensor([2 * fpad - cx, 2 * fpad - cy] * 2, dtype=torch.float64)).clamp(min=0)
    mx0, my0, mx1, my1 = (int(v) for v in torch.minimum(margin, limit).ceil().tolist())
    G_inv = G_inv.to(device=dev, dtype=dt)
    x = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
    one = torch.ones(n, dtype=dt, device=dev)
    G = translate2d(one * (mx0 - mx1) / 2, one * (my0 - my1) / 2) @ G_inv    # coordinates of the padded image
    x = upsample2d(x, f, up=2, impl=impl)
    G = scale2d(one * 2, one * 2) @ G @ scale2d(one / 2, one / 2)            # ... of the 2x image
    G = translate2d(-one / 2, -one / 2) @ G @ translate2d(one / 2, one / 2)  # (upsample2d's half-pixel offset)
    out_h, out_w = (h + 2 * fpad) * 2, (w + 2 * fpad) * 2
    # To affine_grid's normalised [-1, 1] coordinates (align_corners=False) of the sampled and the sampling grid.
    G = scale2d(one * 2 / x.shape[3], one * 2 / x.shape[2]) @ G @ scale2d(one * out_w / 2, one * out_h / 2)
    grid = F.affine_grid(G[:, :2, :], [n, c, out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return downsample2d(x, f, down=2, padding=-2 * fpad, flip_filter=True, impl=impl)


def apply_color(images: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Colour matrix C [N, 4, 4] (homogeneous RGB) on RGB images; on 1-channel images its mean luma response
    (official: the mean of C's RGB rows)."""
    n, ch, h, w = images.shape
    flat = images.reshape(n, ch, h * w)
    if ch == 3:
        out = C[:, :3, :3] @ flat + C[:, :3, 3:]
    elif ch == 1:
        Cm = C[:, :3, :].mean(dim=1, keepdim=True)
        out = flat * Cm[:, :, :3].sum(dim=2, keepdim=True) + Cm[:, :, 3:]
    else:
        raise ValueError(f"colour augmentation needs RGB or grayscale images, got {ch} channels")
    return out.reshape(n, ch, h, w)


# ---------------------------------------------------------------------------------------------------------------

@dataclass
class AdaParams:
    """One call's drawn parameters (this rank's rows, on the CPU): the blit ops, the geometric and the colour
    matrix."""

    xflip: torch.Tensor      # [N] 0/1
    rot90: torch.Tensor      # [N] quarter turns 0..3
    shift: torch.Tensor      # [N, 2] integer (dx, dy) pixels
    G_inv: torch.Tensor      # [N, 3, 3] output -> input pixel coordinates
    C: torch.Tensor          # [N, 4, 4] colour transform
    geom_active: torch.Tensor   # [N] bool: a geometric op was drawn for the sample
    color_active: torch.Tensor  # [N] bool: a colour op was drawn for the sample


class AdaPipeline:
    """The ADA pipeline at probability p (`self.p`, set by training/ada.py's controller or fixed by --aug-p).

    `multipliers`: op -> probability multiplier (an AUGPIPES entry). Every op's parameters are drawn for every
    sample (so the random stream does not depend on p), then kept with probability p x multiplier.
    """

    def __init__(self, multipliers: Mapping[str, float], p: float = 0.0, seed: int = 0,
                 rows: Rows = lambda t: t, world_size: int = 1, impl: str = "auto") -> None:
        unknown = sorted(set(multipliers) - set(BLIT_OPS + GEOM_OPS + COLOR_OPS))
        if unknown:
            raise ValueError(f"unknown augmentation op(s) {unknown}")
        self.multipliers = {op: float(multipliers.get(op, 0.0)) for op in BLIT_OPS + GEOM_OPS + COLOR_OPS}
        self.p = float(p)
        self.generator = torch.Generator().manual_seed(seed)
        self.rows = rows
        self.world_size = world_size
        self.impl = impl

    # -- parameters ---------------------------------------------------------------------------------------------
    def _gate(self, d: Draws, op: str, value: torch.Tensor, identity: float, prob: Optional[float] = None
              ) -> torch.Tensor:
        """value where a uniform draw < p x multiplier (or `prob`), else the identity value."""
        keep = d.uniform() < (self.multipliers[op] * self.p if prob is None else prob)
        keep = keep.view(-1, *([1] * (value.ndim - 1)))
        return torch.where(keep, value, torch.full_like(value, identity))

    def draw(self, images: torch.Tensor) -> AdaParams:
        """Parameters for this rank's `images` (drawn for the global batch, in the official order)."""
        n, ch, h, w = images.shape
        cpu = torch.empty(0, dtype=images.dtype)  # parameters stay on the CPU: decisions read no device tensor
        d = Draws(self.generator, n * self.world_size, self.rows, cpu)
        m = self.multipliers
        zeros = torch.zeros(n, dtype=images.dtype)
        xflip, rot90, shift = zeros, zeros, torch.zeros(n, 2, dtype=images.dtype)
        if m["xflip"] > 0:
            xflip = self._gate(d, "xflip", torch.floor(d.uniform() * 2), 0.0)
        if m["rotate90"] > 0:
            rot90 = self._gate(d, "rotate90", torch.floor(d.uniform() * 4), 0.0)
        if m["xint"] > 0:
            t = self._gate(d, "xint", (d.uniform(2) * 2 - 1) * XINT_MAX, 0.0)
            shift = torch.stack([torch.round(t[:, 0] * w), torch.round(t[:, 1] * h)], dim=1)

        G_inv = torch.eye(3, dtype=images.dtype).expand(n, 3, 3)
        if m["scale"] > 0:
            s = self._gate(d, "scale", torch.exp2(d.normal() * SCALE_STD), 1.0)
            G_inv = G_inv @ scale2d(1 / s, 1 / s)
        # Rotation runs before and after the anisotropic scaling, each with p_rot, so P(either) = p x multiplier.
        p_rot = 1 - math.sqrt(min(max(1 - m["rotate"] * self.p, 0.0), 1.0))
        if m["rotate"] > 0:
            theta = self._gate(d, "rotate", (d.uniform() * 2 - 1) * math.pi * ROTATE_MAX, 0.0,
                               prob=p_rot)
            G_inv = G_inv @ rotate2d(theta)     # the inverse of a rotation by -theta
        if m["aniso"] > 0:
            s = self._gate(d, "aniso", torch.exp2(d.normal() * ANISO_STD), 1.0)
            G_inv = G_inv @ scale2d(1 / s, s)
        if m["rotate"] > 0:
            theta = self._gate(d, "rotate", (d.uniform() * 2 - 1) * math.pi * ROTATE_MAX, 0.0,
                               prob=p_rot)
            G_inv = G_inv @ rotate2d(theta)
        if m["xfrac"] > 0:
            t = self._gate(d, "xfrac", d.normal(2) * XFRAC_STD, 0.0)
            G_inv = G_inv @ translate2d(-t[:, 0] * w, -t[:, 1] * h)
        eye3 = torch.eye(3, dtype=images.dtype)
        geom_active = (G_inv != eye3).flatten(1).any(dim=1)

        C = torch.eye(4, dtype=images.dtype).expand(n, 4, 4)
        if m["brightness"] > 0:
            C = translate3d(self._gate(d, "brightness", d.normal() * BRIGHTNESS_STD, 0.0)) @ C
        if m["contrast"] > 0:
            C = scale3d(self._gate(d, "contrast", torch.exp2(d.normal() * CONTRAST_STD), 1.0)) @ C
        if m["lumaflip"] > 0:
            C = luma_flip3d(self._gate(d, "lumaflip", torch.floor(d.uniform() * 2), 0.0)) @ C
        if m["hue"] > 0 and ch > 1:
            C = hue_rotate3d(self._gate(d, "hue", (d.uniform() * 2 - 1) * math.pi * HUE_MAX, 0.0)) @ C
        if m["saturation"] > 0 and ch > 1:
            C = saturation3d(self._gate(d, "saturation", torch.exp2(d.normal() * SATURATION_STD), 1.0)) @ C
        eye4 = torch.eye(4, dtype=images.dtype)
        color_active = (C != eye4).flatten(1).any(dim=1)
        return AdaParams(xflip, rot90, shift, G_inv, C, geom_active, color_active)

    # -- execution ----------------------------------------------------------------------------------------------
    def apply(self, images: torch.Tensor, params: AdaParams) -> torch.Tensor:
        """The augmented images; samples without a drawn op come back bit-identical."""
        x = blit(images, params.xflip, params.rot90, params.shift)
        idx = params.geom_active.nonzero().flatten()  # decided on the CPU
        if idx.numel() > 0:  # only the samples that drew a geometric op are resampled
            on_dev = idx.to(x.device)
            x = x.index_copy(0, on_dev, geometric_warp(x.index_select(0, on_dev), params.G_inv.index_select(0, idx),
                                                       self.impl))
        if bool(params.color_active.any()):
            active = params.color_active.to(x.device).view(-1, 1, 1, 1)
            x = torch.where(active, apply_color(x, params.C.to(device=x.device, dtype=x.dtype)), x)
        return x

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.apply(images, self.draw(images))

    def check_channels(self, num_channels: int) -> None:
        """The colour ops work on RGB and grayscale images (official): ValueError for other channel counts."""
        if num_channels not in (1, 3) and any(self.multipliers[op] > 0 for op in COLOR_OPS):
            raise ValueError(f"--augpipe with colour ops needs RGB or grayscale data, but it has {num_channels} "
                             f"channels; use --augpipe bg (or convert the images)")

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"p": self.p, "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.p = float(state["p"])
        self.generator.set_state(state["generator"])


class DiffAugment:
    """DiffAugment's 'color,translation,cutout' policy on every sample (fixed, no p)."""

    def __init__(self, seed: int = 0, rows: Rows = lambda t: t, world_size: int = 1) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.rows = rows
        self.world_size = world_size

    def state_dict(self) -> Dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        d = Draws(self.generator, n * self.world_size, self.rows, images)
        brightness, saturation, contrast = d.uniform(1, 1, 1), d.uniform(1, 1, 1), d.uniform(1, 1, 1)
        sy, sx = int(h * DIFFAUG_TRANSLATION + 0.5), int(w * DIFFAUG_TRANSLATION + 0.5)
        shift = torch.stack([d.integers(-sx, sx + 1), d.integers(-sy, sy + 1)], dim=1)
        ch, cw = int(h * DIFFAUG_CUTOUT + 0.5), int(w * DIFFAUG_CUTOUT + 0.5)
        centre = torch.stack([d.integers(0, w + (1 - cw % 2)), d.integers(0, h + (1 - ch % 2))], dim=1)
        return diffaug_apply(images, brightness, saturation, contrast, shift, centre, (cw, ch))


def diffaug_apply(images: torch.Tensor, brightness: torch.Tensor, saturation: torch.Tensor, contrast: torch.Tensor,
                  shift: torch.Tensor, centre: torch.Tensor, cut: Tuple[int, int]) -> torch.Tensor:
    """DiffAugment with given parameters ([N, 1, 1, 1] uniforms; shift/centre [N, 2] integer (x, y); cut (w, h)):
    colour, then translation (zero fill), then cutout."""
    x = images + (brightness - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (saturation * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (contrast + 0.5) + mean
    n, _, h, w = x.shape
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    src_y = ys - shift[:, 1].view(n, 1, 1)
    src_x = xs - shift[:, 0].view(n, 1, 1)
    inside = (src_y >= 0) & (src_y < h) & (src_x >= 0) & (src_x < w)
    b = torch.arange(n, device=x.device).view(n, 1, 1)
    moved = x.permute(0, 2, 3, 1)[b, src_y.clamp(0, h - 1), src_x.clamp(0, w - 1)].permute(0, 3, 1, 2)
    x = moved * inside.unsqueeze(1).to(x.dtype)
    cw, ch = cut
    y0 = centre[:, 1].view(n, 1, 1) - ch // 2
    x0 = centre[:, 0].view(n, 1, 1) - cw // 2
    hole = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def make_pipeline(kind: str, augpipe: str, p: float, seed: int, rows: Rows, world_size: int, impl: str):
    """The pipeline of `--augment` (None for 'none')."""
    if kind == "none":
        return None
    if kind == "ada":
        return AdaPipeline(AUGPIPES[augpipe], p=p, seed=seed, rows=rows, world_size=world_size, impl=impl)
    if kind == "diffaug":
        return DiffAugment(seed=seed, rows=rows, world_size=world_size)
    raise ValueError(f"unknown augmentation {kind!r}; expected none, ada or diffaug")


__all__ = ["AUGPIPES", "AdaPipeline", "AdaParams", "DiffAugment", "Draws", "apply_color", "blit", "diffaug_apply",
           "geometric_warp", "hue_rotate3d", "luma_flip3d", "make_pipeline", "rotate2d", "saturation3d", "scale2d",
           "scale3d", "translate2d", "translate3d"]
