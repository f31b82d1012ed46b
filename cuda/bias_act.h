// bias_act: the per-element math, written once and compiled by both g++ (bias_act.cpp) and nvcc (bias_act.cu).
//
// Per element, with z = x + b (pre-activation), a = act(z), u = a * gain, y = clamp(u, -clamp, clamp):
//   mode 0 (forward):        out = y
//   mode 1 (first grad):     out = dy * gain * act'(z)  * mask       (dx given the incoming gradient dy)
//   mode 2 (second grad):    out = g * dy * gain * act''(z) * mask   (the x-dependent term of the double backward,
//                                                                     g = incoming gradient of dx)
// where mask = 0 where the forward output hit the clamp (|y| >= clamp), else 1. act'(z) is computed from y
// (a = y / gain) or from z, as `bias_act_grad_needs_x` says; act''(z) always from z. The Python spec table
// (ops/bias_act.py ACTIVATIONS) must agree with the codes and the x/y choices below; a test checks it.
#pragma once

#include "common.h"

#if !defined(__CUDACC__)
#include <cmath>
#endif

// Activation codes (the spec table's `kernel_index`).
#define SG_ACT_LINEAR 1
#define SG_ACT_RELU 2
#define SG_ACT_LRELU 3
#define SG_ACT_TANH 4
#define SG_ACT_SIGMOID 5
#define SG_ACT_ELU 6
#define SG_ACT_SELU 7
#define SG_ACT_SOFTPLUS 8
#define SG_ACT_SWISH 9
#define SG_ACT_FIRST 1
#define SG_ACT_LAST 9

// Element types understood by the CUDA launcher (the CPU kernel takes float32, float64 and bfloat16).
#define SG_DTYPE_F16 0
#define SG_DTYPE_BF16 1
#define SG_DTYPE_F32 2
#define SG_DTYPE_F64 3

#define SG_MODE_FORWARD 0
#define SG_MODE_GRAD 1
#define SG_MODE_GRAD2 2

// Everything a launch needs besides the data pointers' element type. Raw pointers (nullptr = absent), so the CUDA
// launcher needs no torch types. All tensors share one dense layout: element i of every array is the same
// logical element. `inner` = number of consecutive elements that share one bias value (the stride of `dim` in
// memory), `bias_size` = x.shape[dim]; the bias of element i is b[(i / inner) % bias_size].
struct BiasActParams {
    const void* x;     // mode 0: x; mode 1: dy; mode 2: g (the gradient flowing into dx)
    const void* b;     // bias [bias_size] or nullptr
    const void* xref;  // the forward input x (needed for grad_needs 'x' and for mode 2)
    const void* yref;  // the forward output y (needed for grad_needs 'y' and for the clamp mask)
    const void* dy;    // mode 2 only: the first backward's incoming gradient
    void* out;
    long long numel;
    long long inner;
    long long bias_size;
    int mode;
    int act;
    double alpha;
    double gain;
    double clamp;  // < 0: no clamp
};

// Scalars in the compute type, prepared once per launch.
template <typename S>
struct BiasActScalars {
    S alpha;
    S gain;
    S inv_gain;  // 1 / gain, or 0 when gain == 0 (then every gradient is 0 anyway)
    S clamp;     // < 0: no clamp
};

template <typename S>
SG_HOST_DEVICE BiasActScalars<S> bias_act_scalars(const BiasActParams& p) {
    BiasActScalars<S> s;
    s.alpha = (S)p.alpha;
    s.gain = (S)p.gain;
    s.inv_gain = p.gain != 0 ? (S)(1.0 / p.gain) : (S)0;
    s.clamp = (S)p.clamp;
    return s;
}

// Which tensor the first derivative reads (must match the spec table's grad_needs).
SG_HOST_DEVICE bool bias_act_grad_needs_x(int act) { return act == SG_ACT_SWISH; }
SG_HOST_DEVICE bool bias_act_grad_needs_y(int act) { return act != SG_ACT_SWISH && act != SG_ACT_LINEAR; }
// Whether act'' is non-zero (mode 2 exists and the double backward has an x-dependent term).
SG_HOST_DEVICE bool bias_act_has_2nd_grad(int act) { return act >= SG_ACT_TANH && act <= SG_ACT_SWISH; }

// Elementary functions for float and double on host and device.
SG_HOST_DEVICE float sg_exp(float v) {
#if defined(__CUDA_ARCH__)
    return expf(v);
#else
    return std::exp(v);
#endif
}
SG_HOST_DEVICE double sg_exp(double v) {
#if defined(__CUDA_ARCH__)
    return ::exp(v);
#else
    return std::exp(v);
#endif
}
SG_HOST_DEVICE float sg_expm1(float v) {
#if defined(__CUDA_ARCH__)
    return expm1f(v);
#else
    return std::expm1(v);
#endif
}
SG_HOST_DEVICE double sg_expm1(double v) {
#if defined(__CUDA_ARCH__)
    return ::expm1(v);
#else
    return std::expm1(v);
#endif
}
SG_HOST_DEVICE float sg_log1p(float v) {
#if defined(__CUDA_ARCH__)
    return log1pf(v);
#else
    return std::log1p(v);
#endif
}
SG_HOST_DEVICE double sg_log1p(double v) {
#if defined(__CUDA_ARCH__)
    return ::log1p(v);
#else
    return std::log1p(v);
#endif
}
SG_HOST_DEVICE float sg_tanh(float v) {
#if defined(__CUDA_ARCH__)
    return tanhf(v);
#else
    return std::tanh(v);
#endif
}
SG_HOST_DEVICE double sg_tanh(double v) {
#if defined(__CUDA_ARCH__)
    return ::tanh(v);
#else
    return std::tanh(v);
#endif
}

// SELU constants (Klambauer et al. 2017), as torch.nn.functional.selu.
#define SG_SELU_SCALE 1.0507009873554804934193349852946
#define SG_SELU_ALPHA 1.6732632423543772848170429916717
// torch.nn.functional.softplus (beta = 1) switches to the identity above this input.
#define SG_SOFTPLUS_THRESHOLD 20

template <typename S>
SG_HOST_DEVICE S sg_sigmoid(S z) {
    return (S)1 / ((S)1 + sg_exp(-z));
}

// act(z). Comparisons are written so that NaN propagates like in torch.
template <int ACT, typename S>
SG_HOST_DEVICE S bias_act_f(S z, S alpha) {
    if (ACT == SG_ACT_RELU) return z < (S)0 ? (S)0 : z;
    if (ACT == SG_ACT_LRELU) return z < (S)0 ? z * alpha : z;
    if (ACT == SG_ACT_TANH) return sg_tanh(z);
    if (ACT == SG_ACT_SIGMOID) return sg_sigmoid(z);
    if (ACT == SG_ACT_ELU) return z > (S)0 ? z : sg_expm1(z);
    if (ACT == SG_ACT_SELU) return z > (S)0 ? (S)SG_SELU_SCALE * z : (S)(SG_SELU_SCALE * SG_SELU_ALPHA) * sg_expm1(z);
    if (ACT == SG_ACT_SOFTPLUS) return z > (S)SG_SOFTPLUS_THRESHOLD ? z : sg_log1p(sg_exp(z));
    if (ACT == SG_ACT_SWISH) return z * sg_sigmoid(z);
    return z;  // linear
}

// act'(z), from a = act(z) (recovered as y / gain) or from z itself, as bias_act_grad_needs_x/_y say.
template <int ACT, typename S>
SG_HOST_DEVICE S bias_act_df(S z, S a, S alpha) {
    if (ACT == SG_ACT_RELU) return a > (S)0 ? (S)1 : (S)0;
    if (ACT == SG_ACT_LRELU) return a > (S)0 ? (S)1 : alpha;
    if (ACT == SG_ACT_TANH) return (S)1 - a * a;
    if (ACT == SG_ACT_SIGMOID) return a * ((S)1 - a);
    if (ACT == SG_ACT_ELU) return a > (S)0 ? (S)1 : a + (S)1;
    if (ACT == SG_ACT_SELU) return a > (S)0 ? (S)SG_SELU_SCALE : a + (S)(SG_SELU_SCALE * SG_SELU_ALPHA);
    if (ACT == SG_ACT_SOFTPLUS) return (S)1 - sg_exp(-a);  // sigmoid(z) = 1 - exp(-softplus(z))
    if (ACT == SG_ACT_SWISH) {
        S s = sg_sigmoid(z);
        return s * ((S)1 + z * ((S)1 - s));
    }
    return (S)1;  // linear
}

// act''(z), always from z.
template <int ACT, typename S>
SG_HOST_DEVICE S bias_act_d2f(S z) {
    if (ACT == SG_ACT_TANH) {
        S t = sg_tanh(z);
        return (S)-2 * t * ((S)1 - t * t);
    }
    if (ACT == SG_ACT_SIGMOID) {
        S s = sg_sigmoid(z);
        return s * ((S)1 - s) * ((S)1 - (S)2 * s);
    }
    if (ACT == SG_ACT_ELU) return z > (S)0 ? (S)0 : sg_exp(z);
    if (ACT == SG_ACT_SELU) return z > (S)0 ? (S)0 : (S)(SG_SELU_SCALE * SG_SELU_ALPHA) * sg_exp(z);
    if (ACT == SG_ACT_SOFTPLUS) {
        S s = sg_sigmoid(z);
        return s * ((S)1 - s);
    }
    if (ACT == SG_ACT_SWISH) {
        S s = sg_sigmoid(z);
        return s * ((S)1 - s) * ((S)2 + z * ((S)1 - (S)2 * s));
    }
    return (S)0;  // linear, relu, lrelu
}

// One element of one mode. `in` is x (mode 0), dy (mode 1) or g (mode 2); `bias` is b for this element (0 when
// absent); xref/yref/dy are the reference values (anything when unused by this ACT/MODE).
template <int MODE, int ACT, typename S>
SG_HOST_DEVICE S bias_act_elem(S in, S bias, S xref, S yref, S dy, const BiasActScalars<S>& s) {
    if (MODE == SG_MODE_FORWARD) {
        S u = bias_act_f<ACT>(in + bias, s.alpha) * s.gain;
        if (s.clamp >= (S)0) u = u > s.clamp ? s.clamp : (u < -s.clamp ? -s.clamp : u);
        return u;
    }
    S z = xref + bias;
    S d = (MODE == SG_MODE_GRAD) ? in * s.gain * bias_act_df<ACT>(z, yref * s.inv_gain, s.alpha)
                                 : in * dy * s.gain * bias_act_d2f<ACT>(z);
    if (s.clamp >= (S)0 && !(yref > -s.clamp && yref < s.clamp)) d = (S)0;
    return d;
}
