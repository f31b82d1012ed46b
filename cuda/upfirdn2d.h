// upfirdn2d: the parameters and the per-output-pixel index math, shared by the CPU kernel (upfirdn2d.cpp, g++)
// and the CUDA kernels (upfirdn2d.cu, nvcc), so the polyphase arithmetic is written exactly once.
//
// Semantics (NVlabs upfirdn2d): the input is upsampled by inserting up-1 zeros after every sample, padded by
// (pad0, pad1) (negative = crop), correlated with the effective filter g, and every down-th sample is kept.
// The kernels always CORRELATE with g: the host code prepares g = flip(f) * gain**(f.ndim/2) (or f itself when
// flip_filter), so no kernel has to know about flipping or gain.
//
// Along one axis, output o reads the upsampled/padded signal at s + k for taps k = 0..f_size-1, where
// s = o*down - pad0. Upsampled position s + k holds a real input sample only when (s + k) % up == 0, namely
// input (s + k) / up. So only the taps k = tap0, tap0 + up, tap0 + 2*up, ... are visited (polyphase); they hit the
// consecutive inputs in0, in0 + 1, ... The zero-stuffed image is never materialised.
#pragma once

#include <stdint.h>

#include "common.h"

namespace upfirdn2d {

// Element type codes understood by the CUDA launcher (the CPU kernel dispatches on the torch dtype instead).
enum DType : int { kFloat16 = 0, kBFloat16 = 1, kFloat32 = 2, kFloat64 = 3 };

struct Params {
    // Input [N, C, in_h, in_w] and output [N, C, out_h, out_w], both with arbitrary element strides.
    int64_t n, c, in_h, in_w, out_h, out_w;
    int64_t in_sn, in_sc, in_sy, in_sx;
    int64_t out_sn, out_sc, out_sy, out_sx;
    int64_t up_x, up_y, down_x, down_y;
    int64_t pad_x0, pad_x1, pad_y0, pad_y1;
    // Effective correlation filter g: when separable, f_w taps along x followed by f_h taps along y (a 1-D
    // filter is stored twice; an exactly rank-1 2-D filter as its two factors); else [f_h, f_w] row-major.
    int64_t f_w, f_h;
    bool separable;
};

// The taps of one output coordinate along one axis: taps tap0 + j*up read input in0 + j, for j < count.
struct AxisTaps {
    int64_t in0;
    int64_t tap0;
    int64_t count;
};

SG_HOST_DEVICE int64_t floor_div(int64_t a, int64_t b) {  // b > 0
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

SG_HOST_DEVICE int64_t floor_mod(int64_t a, int64_t b) {  // b > 0, result in [0, b)
    return a - floor_div(a, b) * b;
}

// Output length along one axis: (in*up + pad0 + pad1 - f + down) / down (floor), as in the reference.
SG_HOST_DEVICE int64_t out_size(int64_t in, int64_t up, int64_t down, int64_t pad0, int64_t pad1, int64_t f) {
    return floor_div(in * up + pad0 + pad1 - f + down, down);
}

// Taps of output `o` that land on real (non-stuffed) samples, ignoring the input's extent: input indices may
// be < 0 or >= in_size (they read zero padding). Used where the input lies in a zero-padded buffer.
SG_HOST_DEVICE AxisTaps axis_taps_unclipped(int64_t o, int64_t up, int64_t down, int64_t pad0, int64_t f_size) {
    const int64_t s = o * down - pad0;  // upsampled position under tap 0
    AxisTaps t;
    t.tap0 = floor_mod(-s, up);  // first tap on the sample grid
    t.in0 = floor_div(s + t.tap0, up);  // exact: s + tap0 is a multiple of up
    t.count = t.tap0 < f_size ? (f_size - t.tap0 + up - 1) / up : 0;
    return t;
}

// Same, clipped to the real input [0, in_size): the taps that hit actual input samples.
SG_HOST_DEVICE AxisTaps axis_taps(int64_t o, int64_t up, int64_t down, int64_t pad0, int64_t in_size,
                                  int64_t f_size) {
    AxisTaps t = axis_taps_unclipped(o, up, down, pad0, f_size);
    if (t.in0 < 0) {  // skip the taps that read the left/top padding
        const int64_t skip = -t.in0;
        if (skip >= t.count) {
            t.count = 0;
        } else {
            t.count -= skip;
            t.tap0 += skip * up;
            t.in0 = 0;
        }
    }
    if (t.in0 + t.count > in_size) t.count = in_size - t.in0;  // taps past the right/bottom edge
    if (t.count < 0) t.count = 0;
    return t;
}

// One output pixel: sum over the real input samples under the filter. `plane` points at input (n, c, 0, 0);
// `load` converts one element to the accumulation type. Rows are summed first, then weighted by the row's tap,
// so a separable filter is a width pass followed by a height pass, as in the reference.
template <typename acc_t, typename in_t, typename Load>
SG_HOST_DEVICE acc_t pixel(const in_t* plane, const acc_t* g, const Params& p, int64_t oy, int64_t ox,
                           Load load) {
    const AxisTaps tx = axis_taps(ox, p.up_x, p.down_x, p.pad_x0, p.in_w, p.f_w);
    const AxisTaps ty = axis_taps(oy, p.up_y, p.down_y, p.pad_y0, p.in_h, p.f_h);
    acc_t acc = acc_t(0);
    for (int64_t j = 0; j < ty.count; ++j) {
        const int64_t ky = ty.tap0 + j * p.up_y;
        const in_t* row = plane + (ty.in0 + j) * p.in_sy + tx.in0 * p.in_sx;
        if (p.separable) {
            acc_t row_acc = acc_t(0);
            for (int64_t i = 0; i < tx.count; ++i) row_acc += g[tx.tap0 + i * p.up_x] * load(row[i * p.in_sx]);
            acc += g[p.f_w + ky] * row_acc;
        } else {
            const acc_t* g_row = g + ky * p.f_w;
            for (int64_t i = 0; i < tx.count; ++i) acc += g_row[tx.tap0 + i * p.up_x] * load(row[i * p.in_sx]);
        }
    }
    return acc;
}

}  // namespace upfirdn2d
