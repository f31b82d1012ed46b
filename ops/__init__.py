"""Fused ops with CPU/CUDA kernels (JIT-built on first use) and pure-torch references behind one function each."""
from .bias_act import ACTIVATIONS, bias_act, bias_act_ref
from .build import OpBuildError
from .upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upfirdn2d_ref, upsample2d

__all__ = ["ACTIVATIONS", "OpBuildError", "bias_act", "bias_act_ref", "downsample2d", "filter2d", "setup_filter",
           "upfirdn2d", "upfirdn2d_ref", "upsample2d"]
