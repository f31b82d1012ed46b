// upfirdn2d extension: argument validation, the CPU kernel and the Python binding. Compiled alone for the CPU
// extension; compiled with -DSTYLEGAN_WITH_CUDA together with upfirdn2d.cu it also dispatches CUDA tensors to
// the raw-pointer launcher defined there. The index math lives in upfirdn2d.h, shared with the CUDA kernels.
//
// CPU kernel design (why it is fast without materialising the zero-stuffed image):
// - Parallel over the N*C planes (at::parallel_for); each thread owns scratch buffers allocated once per chunk.
// - A plane is first copied into a zero-padded buffer covering exactly the input range the outputs read, so the
//   inner loops have no bounds checks (the padding contributes exact zeros). Rows are stored de-interleaved by
//   the input step D = down/gcd(up, down) (column c at (c % D)*len + c/D), so every tap reads a contiguous run.
// - Along x, outputs split into phases (polyphase): outputs ox = r + (up/gcd)*q share one tap set. Each phase is
//   a short FIR `out[q] = sum_t w[t] * src[t][q]` over contiguous runs (fir_taps: register-blocked, vectorised);
//   with up > 1 the phases are computed into contiguous rows and then interleaved into the output row.
// - 2-D filters: each output row sums the taps of all its input rows in one pass. Separable (1-D) filters: a
//   width pass per input row into a scratch image, then a height pass over its rows (same fir_taps).
// - The output is contiguous NCHW. Channels-last inputs with >= 8 channels run a separate NHWC kernel (each output
//   pixel a weighted sum of whole input pixels: vectorised over channels, no transposes); others are read through
//   a contiguous copy. Either way the result is returned in the input's memory format.
// - bfloat16 runs the float32 kernel: loads are widened where they are copied into the padded buffers, outputs are
//   rounded to nearest even when stored (float32 accumulation; the filter taps are first rounded to bfloat16, as
//   the reference casts f to x's dtype).
#include <torch/extension.h>

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "upfirdn2d.h"

#ifdef STYLEGAN_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>

namespace upfirdn2d {
// Defined in upfirdn2d.cu. x, y: element pointers of dtype `dtype`; g: effective filter in float32 (float64 when
// dtype is kFloat64). Returns nullptr on success, else a message naming the failed launch.
const char* launch_cuda(const void* x, void* y, const void* g, DType dtype, const Params& p, cudaStream_t stream);
}  // namespace upfirdn2d
#endif

namespace upfirdn2d {
namespace {

// Polyphase plan along x: phase r covers outputs r, r + out_step, ... and reads inputs in0 + q*in_step + i.
struct Phase {
    int64_t first_out;  // r
    int64_t n_out;      // number of outputs in the phase
    int64_t in0;        // input index under the phase's first tap for its first output
    int64_t tap0;       // first tap (later taps: tap0 + i*up)
    int64_t n_taps;     // taps that land on real samples
};

struct AxisPlan {
    int64_t out_step = 1, in_step = 1;
    std::vector<Phase> phases;
    int64_t lo = 0, hi = 0;  // input range [lo, hi) read by any output (may extend past the input: zeros)
};

AxisPlan plan_axis(int64_t out_len, int64_t up, int64_t down, int64_t pad0, int64_t f_size) {
    AxisPlan plan;
    const int64_t g = std::gcd(up, down);
    plan.out_step = up / g;
    plan.in_step = down / g;
    bool any = false;
    for (int64_t r = 0; r < std::min(plan.out_step, out_len); ++r) {
        const AxisTaps t = axis_taps_unclipped(r, up, down, pad0, f_size);
        Phase ph{r, (out_len - r + plan.out_step - 1) / plan.out_step, t.in0, t.tap0, t.count};
        plan.phases.push_back(ph);
        if (ph.n_taps > 0 && ph.n_out > 0) {
            const int64_t lo = ph.in0, hi = ph.in0 + (ph.n_out - 1) * plan.in_step + ph.n_taps;
            plan.lo = any ? std::min(plan.lo, lo) : lo;
            plan.hi = any ? std::max(plan.hi, hi) : hi;
            any = true;
        }
    }
    return plan;
}

// Input row range [lo, hi) read by the output rows (vertical taps are computed per row with axis_taps_unclipped).
void row_range(int64_t out_h, int64_t up, int64_t down, int64_t pad0, int64_t f_h, int64_t& lo, int64_t& hi) {
    bool any = false;
    lo = hi = 0;
    for (int64_t oy = 0; oy < out_h; ++oy) {
        const AxisTaps t = axis_taps_unclipped(oy, up, down, pad0, f_h);
        if (t.count == 0) continue;
        lo = any ? std::min(lo, t.in0) : t.in0;
        hi = any ? std::max(hi, t.in0 + t.count) : t.in0 + t.count;
        any = true;
    }
}

// out[q] = sum_t w[t] * src[t][q] for q < n: every tap reads a contiguous run, so this vectorises whatever the
// up/down factors are (the padded rows are stored de-interleaved by the input step, see CpuKernel::copy_row).
// Register-blocked: a block of outputs stays in vector registers while all taps stream through it, so each
// output is stored once.
#if defined(__GNUC__)
template <typename T>
void fir_taps(T* __restrict out, int64_t n, const T* const* src, const T* w, int64_t ntaps) {
    typedef T Vec __attribute__((vector_size(64)));  // 16 floats / 8 doubles; split by the compiler if needed
    constexpr int64_t B = 64 / sizeof(T);
    int64_t q0 = 0;
    for (; q0 + 2 * B <= n; q0 += 2 * B) {
        Vec a0 = Vec{}, a1 = Vec{};
        for (int64_t t = 0; t < ntaps; ++t) {
            Vec v0, v1;
            std::memcpy(&v0, src[t] + q0, sizeof(Vec));
            std::memcpy(&v1, src[t] + q0 + B, sizeof(Vec));
            a0 += w[t] * v0;
            a1 += w[t] * v1;
        }
        std::memcpy(out + q0, &a0, sizeof(Vec));
        std::memcpy(out + q0 + B, &a1, sizeof(Vec));
    }
    for (; q0 + B <= n; q0 += B) {
        Vec a0 = Vec{};
        for (int64_t t = 0; t < ntaps; ++t) {
            Vec v0;
            std::memcpy(&v0, src[t] + q0, sizeof(Vec));
            a0 += w[t] * v0;
        }
        std::memcpy(out + q0, &a0, sizeof(Vec));
    }
    for (; q0 < n; ++q0) {
        T acc = T(0);
        for (int64_t t = 0; t < ntaps; ++t) acc += w[t] * src[t][q0];
        out[q0] = acc;
    }
}
#else
template <typename T>
void fir_taps(T* __restrict out, int64_t n, const T* const* src, const T* w, int64_t ntaps) {
    for (int64_t q = 0; q < n; ++q) out[q] = T(0);
    for (int64_t t = 0; t < ntaps; ++t) {
        const T wt = w[t];
        const T* s = src[t];
        for (int64_t q = 0; q < n; ++q) out[q] += wt * s[q];
    }
}
#endif

// Per-thread scratch for one chunk of planes.
template <typename T>
struct Scratch {
    std::vector<T> pad;     // zero-padded input (whole plane for 2-D filters, one row for separable ones)
    std::vector<T> tmp;     // separable: width-pass result, rows [row_lo, row_hi) x out_w
    std::vector<T> phase;   // phase rows before interleaving (only when out_step > 1)
    std::vector<T> w;       // tap weights of the current (row, phase)
    std::vector<const T*> src;   // tap sources of the current (row, phase)
    std::vector<const T*> rows;  // padded input rows of the current output row
    std::vector<int64_t> ky;     // their filter rows
    std::vector<T> out;          // one output plane in T, when the stored type E differs (rounded when stored)
};

// T: the type the kernel computes in; E: the stored element type of x and y (bfloat16 is computed in float32:
// loads widened into the padded buffers, outputs rounded to nearest even when stored).
template <typename T, typename E = T>
class CpuKernel {
   public:
    CpuKernel(const Params& p, const T* g) : p_(p), g_(g) {
        xplan_ = plan_axis(p.out_w, p.up_x, p.down_x, p.pad_x0, p.f_w);
        row_range(p.out_h, p.up_y, p.down_y, p.pad_y0, p.f_h, row_lo_, row_hi_);
        // A padded row holds input columns [xplan_.lo, xplan_.hi) de-interleaved by the input step D: column
        // lo + c lives at (c % D) * sub_len + c / D, so a tap reading every D-th column reads a contiguous run.
        step_ = xplan_.in_step;
        sub_len_ = (xplan_.hi - xplan_.lo + step_ - 1) / step_;
        row_len_ = sub_len_ * step_;
        pad_h_ = row_hi_ - row_lo_;
        // Real input overlapping the padded buffer.
        copy_x0_ = std::max<int64_t>(xplan_.lo, 0);
        copy_x1_ = std::min<int64_t>(xplan_.hi, p.in_w);
        copy_y0_ = std::max<int64_t>(row_lo_, 0);
        copy_y1_ = std::min<int64_t>(row_hi_, p.in_h);
        phase_len_ = (p.out_w + xplan_.out_step - 1) / xplan_.out_step;
        // Vertical taps of every output row, computed once (keeps integer divisions out of the row loops).
        for (int64_t oy = 0; oy < p.out_h; ++oy)
            ytaps_.push_back(axis_taps_unclipped(oy, p.up_y, p.down_y, p.pad_y0, p.f_h));
        // Per phase and tap: the filter column and the offset of its run in a padded row (same for every row).
        for (const Phase& ph : xplan_.phases) {
            std::vector<int64_t> kx, off;
            for (int64_t i = 0; i < ph.n_taps; ++i) {
                const int64_t c = ph.in0 - xplan_.lo + i;  // padded column read for the phase's first output
                kx.push_back(ph.tap0 + i * p.up_x);
                off.push_back((c % step_) * sub_len_ + c / step_);
            }
            tap_kx_.push_back(kx);
            tap_off_.push_back(off);
        }
    }

    void run(const E* x, E* y, int64_t plane_begin, int64_t plane_end) const {
        constexpr bool kSame = std::is_same<T, E>::value;
        Scratch<T> s;
        if (!kSame) s.out.resize(p_.out_h * p_.out_w);
        s.pad.assign(std::max<int64_t>(p_.separable ? row_len_ : row_len_ * pad_h_, 1), T(0));
        if (p_.separable) s.tmp.assign(std::max<int64_t>(pad_h_ * p_.out_w, 1), T(0));
        if (xplan_.out_step > 1) s.phase.assign(xplan_.out_step * phase_len_, T(0));
        s.w.resize(p_.f_w * p_.f_h + 1);
        s.src.resize(p_.f_w * p_.f_h + 1);
        s.rows.resize(p_.f_h + 1);
        s.ky.resize(p_.f_h + 1);
        for (int64_t plane = plane_begin; plane < plane_end; ++plane) {
            const E* xp = x + (plane / p_.c) * p_.in_sn + (plane % p_.c) * p_.in_sc;
            E* ye = y + plane * p_.out_h * p_.out_w;  // the CPU output is contiguous NCHW
            T* yp = kSame ? reinterpret_cast<T*>(ye) : s.out.data();
            if (p_.separable)
                plane_separable(xp, yp, s);
            else
                plane_2d(xp, yp, s);
            if (!kSame)
                for (int64_t i = 0; i < p_.out_h * p_.out_w; ++i) ye[i] = E(yp[i]);
        }
    }

   private:
    // Copies the real part of input row iy into a padded row (de-interleaved by the input step).
    void copy_row(const E* xp, int64_t iy, T* dst) const {
        const E* src = xp + iy * p_.in_sy;
        if (step_ == 1 && p_.in_sx == 1) {
            if (copy_x1_ <= copy_x0_) return;
            if (std::is_same<T, E>::value) {
                std::memcpy(dst + (copy_x0_ - xplan_.lo), src + copy_x0_, (copy_x1_ - copy_x0_) * sizeof(T));
            } else {
                T* d = dst + (copy_x0_ - xplan_.lo);
                for (int64_t k = 0; k < copy_x1_ - copy_x0_; ++k) d[k] = T(src[copy_x0_ + k]);
            }
            return;
        }
        // Sub-row r holds the padded columns c = r (mod step): a strided read and a contiguous write each.
        const int64_t c0 = copy_x0_ - xplan_.lo, c1 = copy_x1_ - xplan_.lo, sx = p_.in_sx;
        for (int64_t r = 0; r < step_; ++r) {
            const int64_t first = c0 + floor_mod(r - c0, step_);  // first column >= c0 in sub-row r
            if (first >= c1) continue;
            const int64_t count = (c1 - first + step_ - 1) / step_;
            const E* s = src + (first + xplan_.lo) * sx;
            T* d = dst + r * sub_len_ + first / step_;
            const int64_t stride = step_ * sx;
            if (stride == 2) {  // downsampling by 2: a constant stride lets the compiler vectorise the gather
                for (int64_t k = 0; k < count; ++k) d[k] = T(s[2 * k]);
            } else {
                for (int64_t k = 0; k < count; ++k) d[k] = T(s[k * stride]);
            }
        }
    }

    // Padded input rows -> one output row: for every x phase, the FIR over the `ny` rows in_rows[j] with the 2-D
    // filter rows ky[j] (2-D filters), or over the single row with the 1-D taps (separable width pass).
    void horizontal(const T* const* in_rows, int64_t ny, const int64_t* ky, T* out_row, Scratch<T>& s) const {
        const int64_t out_step = xplan_.out_step;
        for (size_t r = 0; r < xplan_.phases.size(); ++r) {
            const Phase& ph = xplan_.phases[r];
            if (ph.n_out == 0) continue;
            T* dst = out_step == 1 ? out_row : s.phase.data() + ph.first_out * phase_len_;
            const int64_t* kx = tap_kx_[r].data();
            const int64_t* off = tap_off_[r].data();
            int64_t nt = 0;
            for (int64_t j = 0; j < ny; ++j) {
                const T* g_row = p_.separable ? g_ : g_ + ky[j] * p_.f_w;
                for (int64_t i = 0; i < ph.n_taps; ++i, ++nt) {
                    s.w[nt] = g_row[kx[i]];
                    s.src[nt] = in_rows[j] + off[i];
                }
            }
            fir_taps<T>(dst, ph.n_out, s.src.data(), s.w.data(), nt);  // nt == 0 writes zeros
        }
        if (out_step == 1) return;
        const T* a0 = s.phase.data();
        if (out_step == 2) {  // the common upsample-by-2 case: a vectorisable two-way interleave
            const T* a1 = a0 + phase_len_;
            const int64_t n1 = xplan_.phases.size() > 1 ? xplan_.phases[1].n_out : 0;
            for (int64_t q = 0; q < n1; ++q) {
                out_row[2 * q] = a0[q];
                out_row[2 * q + 1] = a1[q];
            }
            if (xplan_.phases[0].n_out > n1) out_row[2 * n1] = a0[n1];
            return;
        }
        for (const Phase& ph : xplan_.phases) {
            const T* a = a0 + ph.first_out * phase_len_;
            for (int64_t q = 0; q < ph.n_out; ++q) out_row[ph.first_out + q * out_step] = a[q];
        }
    }

    void plane_2d(const E* xp, T* yp, Scratch<T>& s) const {
        T* pad = s.pad.data();
        for (int64_t iy = copy_y0_; iy < copy_y1_; ++iy) copy_row(xp, iy, pad + (iy - row_lo_) * row_len_);
        for (int64_t oy = 0; oy < p_.out_h; ++oy) {
            T* out_row = yp + oy * p_.out_w;
            const AxisTaps& t = ytaps_[oy];
            if (t.count == 0) {
                std::fill(out_row, out_row + p_.out_w, T(0));
                continue;
            }
            for (int64_t j = 0; j < t.count; ++j) {
                s.rows[j] = pad + (t.in0 + j - row_lo_) * row_len_;
                s.ky[j] = t.tap0 + j * p_.up_y;
            }
            horizontal(s.rows.data(), t.count, s.ky.data(), out_row, s);
        }
    }

    void plane_separable(const E* xp, T* yp, Scratch<T>& s) const {
        // Width pass: every real input row the height pass reads -> tmp (rows outside the input stay zero).
        const int64_t zero_ky = 0;
        for (int64_t iy = copy_y0_; iy < copy_y1_; ++iy) {
            copy_row(xp, iy, s.pad.data());
            const T* row = s.pad.data();
            horizontal(&row, 1, &zero_ky, s.tmp.data() + (iy - row_lo_) * p_.out_w, s);
        }
        // Height pass: out row = sum_j g[tap0 + j*up_y] * tmp row (in0 + j).
        for (int64_t oy = 0; oy < p_.out_h; ++oy) {
            T* out_row = yp + oy * p_.out_w;
            const AxisTaps& t = ytaps_[oy];
            for (int64_t j = 0; j < t.count; ++j) {
                s.src[j] = s.tmp.data() + (t.in0 + j - row_lo_) * p_.out_w;
                s.w[j] = g_[p_.f_w + t.tap0 + j * p_.up_y];  // the y taps follow the x taps
            }
            fir_taps<T>(out_row, p_.out_w, s.src.data(), s.w.data(), t.count);
        }
    }

    Params p_;
    const T* g_;
    AxisPlan xplan_;
    std::vector<std::vector<int64_t>> tap_kx_, tap_off_;  // [phase][tap]
    std::vector<AxisTaps> ytaps_;                         // [output row]
    int64_t step_ = 1, sub_len_ = 0, row_len_ = 0;
    int64_t row_lo_ = 0, row_hi_ = 0, pad_h_ = 0, phase_len_ = 0;
    int64_t copy_x0_ = 0, copy_x1_ = 0, copy_y0_ = 0, copy_y1_ = 0;
};

// If the 2-D correlation filter g [f_h, f_w] (CPU, contiguous, float32/float64) is an outer product gy (x) gx to
// within rounding, returns [gx | gy] (the separable layout of Params) so the CPU kernel can run two 1-D passes
// (faster than the 2-D loops for StyleGAN's filters, docs/PERFORMANCE.md §3.2); else an undefined tensor. The split is
// balanced (both factors scaled by sqrt|pivot|), which reproduces the 1-D taps exactly for setup_filter's
// outer(f, f) filters; it is accepted only if every reconstructed tap is within 2 ulp of the original.
at::Tensor split_rank1(const at::Tensor& g) {
    const at::Tensor gd = g.to(at::kDouble).contiguous();
    const double* a = gd.data_ptr<double>();
    const int64_t fh = g.size(0), fw = g.size(1);
    int64_t pi = 0, pj = 0;
    double amax = 0;
    for (int64_t i = 0; i < fh; ++i)
        for (int64_t j = 0; j < fw; ++j)
            if (std::abs(a[i * fw + j]) > amax) amax = std::abs(a[i * fw + j]), pi = i, pj = j;
    if (amax == 0 || !std::isfinite(amax)) return at::Tensor();
    const double pivot = a[pi * fw + pj], scale = std::sqrt(amax);
    at::Tensor out = at::empty({fw + fh}, at::kDouble);
    double* o = out.data_ptr<double>();
    for (int64_t j = 0; j < fw; ++j) o[j] = a[pi * fw + j] / scale * (pivot < 0 ? -1.0 : 1.0);  // gx
    for (int64_t i = 0; i < fh; ++i) o[fw + i] = a[i * fw + pj] / scale;                        // gy
    out = out.to(g.scalar_type());  // round the factors to the compute type, then check them
    const at::Tensor r = out.to(at::kDouble);
    const double* f = r.data_ptr<double>();
    const double eps = g.scalar_type() == at::kDouble ? 2.3e-16 : 1.2e-7;
    for (int64_t i = 0; i < fh; ++i)
        for (int64_t j = 0; j < fw; ++j)
            if (std::abs(f[fw + i] * f[j] - a[i * fw + j]) > 2 * eps * amax) return at::Tensor();
    return out;
}

// Channels-last (NHWC) kernel: every output pixel is the weighted sum of whole input pixels, i.e. of contiguous
// runs of C values, so the inner loop is a plain vectorisable axpy over channels and no transpose is needed.
// g: the effective 2-D correlation filter [f_h, f_w] (a separable filter arrives expanded to its outer product).
// Parallel over output rows; each task keeps one C-float accumulator.
template <typename T, typename E = T>
void nhwc_kernel(const E* x, E* y, const T* g, const Params& p, int64_t row_begin, int64_t row_end) {
    const int64_t C = p.c;
    std::vector<AxisTaps> xt(p.out_w);
    for (int64_t ox = 0; ox < p.out_w; ++ox) xt[ox] = axis_taps(ox, p.up_x, p.down_x, p.pad_x0, p.in_w, p.f_w);
    std::vector<T> acc_buf(C);
    T* __restrict acc = acc_buf.data();
    for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t n = row / p.out_h, oy = row % p.out_h;
        const AxisTaps ty = axis_taps(oy, p.up_y, p.down_y, p.pad_y0, p.in_h, p.f_h);
        const E* xn = x + n * p.in_sn;
        E* yrow = y + n * p.out_sn + oy * p.out_sy;
        for (int64_t ox = 0; ox < p.out_w; ++ox) {
            const AxisTaps& tx = xt[ox];
            E* __restrict out = yrow + ox * p.out_sx;
            if (ty.count == 0 || tx.count == 0) {
                std::fill(out, out + C, E(0));
                continue;
            }
            bool first = true;
            for (int64_t j = 0; j < ty.count; ++j) {
                const T* g_row = g + (ty.tap0 + j * p.up_y) * p.f_w;
                const E* src_row = xn + (ty.in0 + j) * p.in_sy;
                for (int64_t i = 0; i < tx.count; ++i) {
                    const T w = g_row[tx.tap0 + i * p.up_x];
                    const E* __restrict src = src_row + (tx.in0 + i) * p.in_sx;
                    if (first) {
                        for (int64_t c = 0; c < C; ++c) acc[c] = w * T(src[c]);
                        first = false;
                    } else {
                        for (int64_t c = 0; c < C; ++c) acc[c] += w * T(src[c]);
                    }
                }
            }
            if (std::is_same<T, E>::value)
                std::memcpy(out, acc, C * sizeof(T));
            else
                for (int64_t c = 0; c < C; ++c) out[c] = E(acc[c]);
        }
    }
}

// Element strides of x and y into p, so the kernels index any dense layout (NCHW, channels-last, views).
void set_strides(Params& p, const at::Tensor& x, const at::Tensor& y) {
    p.in_sn = x.stride(0);
    p.in_sc = x.stride(1);
    p.in_sy = x.stride(2);
    p.in_sx = x.stride(3);
    p.out_sn = y.stride(0);
    p.out_sc = y.stride(1);
    p.out_sy = y.stride(2);
    p.out_sx = y.stride(3);
}

// Channels-last dense input with enough channels to fill vectors: run the NHWC kernel (output channels-last).
constexpr int64_t kNhwcMinChannels = 8;

bool use_nhwc(const at::Tensor& x) {
    return x.size(1) >= kNhwcMinChannels && x.size(2) * x.size(3) > 1 &&
           x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
}

at::Tensor forward_cpu_nhwc(const at::Tensor& x, const at::Tensor& g_in, Params p) {
    // A separable filter [gx | gy] becomes its outer product, so there is one code path.
    at::Tensor g = g_in;
    if (p.separable) g = at::outer(g_in.narrow(0, p.f_w, p.f_h), g_in.narrow(0, 0, p.f_w)).contiguous();
    at::Tensor y = at::empty({p.n, p.c, p.out_h, p.out_w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
    set_strides(p, x, y);
    const int64_t rows = p.n * p.out_h;
    if (rows > 0 && p.out_w > 0 && p.c > 0) {
        AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "upfirdn2d_cpu_nhwc", [&] {
            using acc_t = at::opmath_type<scalar_t>;  // float32 for bfloat16
            const acc_t* gd = g.data_ptr<acc_t>();
            const scalar_t* xd = x.data_ptr<scalar_t>();
            scalar_t* yd = y.data_ptr<scalar_t>();
            const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, p.out_w * p.c));
            at::parallel_for(0, rows, grain,
                             [&](int64_t b, int64_t e) { nhwc_kernel<acc_t, scalar_t>(xd, yd, gd, p, b, e); });
        });
    }
    return y;
}

at::Tensor forward_cpu(const at::Tensor& x_in, const at::Tensor& g, Params p) {
    if (use_nhwc(x_in)) return forward_cpu_nhwc(x_in, g, p);
    // The planes are read row by row: rows must be contiguous (stride_x == 1) for speed. Other layouts with a
    // non-unit x stride (few-channel channels-last, ...) are made contiguous first (one fast transpose by torch).
    at::Tensor x = x_in.stride(3) == 1 ? x_in : x_in.contiguous();
    at::Tensor y = at::empty({p.n, p.c, p.out_h, p.out_w}, x.options());
    set_strides(p, x, y);
    const int64_t planes = p.n * p.c;
    if (planes > 0) {
        AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "upfirdn2d_cpu", [&] {
            using acc_t = at::opmath_type<scalar_t>;  // float32 for bfloat16
            const CpuKernel<acc_t, scalar_t> kernel(p, g.data_ptr<acc_t>());
            const scalar_t* xd = x.data_ptr<scalar_t>();
            scalar_t* yd = y.data_ptr<scalar_t>();
            // Tasks of >= ~32k outputs: small calls stay on one thread (a parallel region costs more than the
            // work, and far more on a busy machine).
            const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, p.out_h * p.out_w));
            at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) { kernel.run(xd, yd, begin, end); });
        });
    }
    if (x_in.suggest_memory_format() == at::MemoryFormat::ChannelsLast)
        y = y.contiguous(at::MemoryFormat::ChannelsLast);
    return y;
}

#ifdef STYLEGAN_WITH_CUDA
at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& g, Params p) {
    const c10::cuda::CUDAGuard guard(x.device());
    DType dtype;
    switch (x.scalar_type()) {
        case at::kHalf: dtype = kFloat16; break;
        case at::kBFloat16: dtype = kBFloat16; break;
        case at::kFloat: dtype = kFloat32; break;
        case at::kDouble: dtype = kFloat64; break;
        default: TORCH_CHECK_TYPE(false, "upfirdn2d (CUDA kernel): unsupported dtype ", x.scalar_type());
    }
    at::Tensor y = at::empty({p.n, p.c, p.out_h, p.out_w}, x.options().memory_format(x.suggest_memory_format()));
    set_strides(p, x, y);
    if (y.numel() == 0) return y;
    const char* err =
        launch_cuda(x.data_ptr(), y.data_ptr(), g.data_ptr(), dtype, p, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == nullptr, "upfirdn2d: CUDA kernel failed: ", err ? err : "");
    return y;
}
#endif

}  // namespace

// y = upfirdn2d(x, f, up, down, padding, flip_filter, gain). f: 1-D (separable) or 2-D float filter on x's
// device; it is scaled by gain**(f.dim()/2), cast to x's dtype (as the reference does), and flipped unless
// flip_filter, so that the kernels only ever correlate.
at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x,
                     int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, bool flip_filter,
                     double gain) {
    TORCH_CHECK_VALUE(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W], got shape ", x.sizes());
    TORCH_CHECK_VALUE(f.dim() == 1 || f.dim() == 2, "upfirdn2d: f must be 1-D or 2-D, got shape ", f.sizes());
    TORCH_CHECK_VALUE(f.numel() > 0, "upfirdn2d: f must not be empty, got shape ", f.sizes());
    TORCH_CHECK_TYPE(f.is_floating_point(), "upfirdn2d: f must be floating point, got ", f.scalar_type());
    TORCH_CHECK_VALUE(f.device() == x.device(), "upfirdn2d: f is on ", f.device(), " but x is on ", x.device());
    TORCH_CHECK_VALUE(up_x >= 1 && up_y >= 1, "upfirdn2d: up must be >= 1, got (", up_x, ", ", up_y, ")");
    TORCH_CHECK_VALUE(down_x >= 1 && down_y >= 1, "upfirdn2d: down must be >= 1, got (", down_x, ", ", down_y, ")");
    const bool cuda = x.is_cuda();
    if (!cuda) {
        TORCH_CHECK_VALUE(x.device().is_cpu(), "upfirdn2d: no kernel for device ", x.device());
        TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble ||
                             x.scalar_type() == at::kBFloat16,
                         "upfirdn2d (CPU kernel): x must be float32, float64 or bfloat16, got ", x.scalar_type());
    }
#ifndef STYLEGAN_WITH_CUDA
    TORCH_CHECK(!cuda, "upfirdn2d: this extension was built without CUDA support");
#endif

    Params p{};
    p.n = x.size(0);
    p.c = x.size(1);
    p.in_h = x.size(2);
    p.in_w = x.size(3);
    p.up_x = up_x;
    p.up_y = up_y;
    p.down_x = down_x;
    p.down_y = down_y;
    p.pad_x0 = pad_x0;
    p.pad_x1 = pad_x1;
    p.pad_y0 = pad_y0;
    p.pad_y1 = pad_y1;
    p.separable = f.dim() == 1;
    p.f_w = f.size(-1);
    p.f_h = f.size(0);
    p.out_w = out_size(p.in_w, up_x, down_x, pad_x0, pad_x1, p.f_w);
    p.out_h = out_size(p.in_h, up_y, down_y, pad_y0, pad_y1, p.f_h);
    TORCH_CHECK_VALUE(p.out_w >= 1 && p.out_h >= 1, "upfirdn2d: padding (", pad_x0, ", ", pad_x1, ", ", pad_y0,
                      ", ", pad_y1, ") crops the ", p.in_h, "x", p.in_w, " input to nothing (output ", p.out_h,
                      "x", p.out_w, ")");

    // Effective correlation filter, in the accumulation type (float32 for half types).
    at::Tensor g = (f * std::pow(gain, f.dim() / 2.0)).to(x.scalar_type());
    if (!flip_filter) g = p.separable ? g.flip({0}) : g.flip({0, 1});
    const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    g = g.to(acc_type).contiguous();
    if (p.separable) {
        g = at::cat({g, g});  // the same taps along x and y
    } else if (!cuda && !use_nhwc(x)) {  // the NHWC kernel takes the 2-D filter as it is
        const at::Tensor split = split_rank1(g);
        if (split.defined()) {
            g = split;
            p.separable = true;
        }
    }

#ifdef STYLEGAN_WITH_CUDA
    if (cuda) return forward_cuda(x, g, p);
#endif
    return forward_cpu(x, g, p);
}

}  // namespace upfirdn2d

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "stylegan upfirdn2d kernels (CPU, and CUDA when built with it)";
    m.def("upfirdn2d", &upfirdn2d::upfirdn2d, "upsample, pad, FIR filter, downsample (see stylegan.ops.upfirdn2d)",
          pybind11::arg("x"), pybind11::arg("f"), pybind11::arg("up_x"), pybind11::arg("up_y"),
          pybind11::arg("down_x"), pybind11::arg("down_y"), pybind11::arg("pad_x0"), pybind11::arg("pad_x1"),
          pybind11::arg("pad_y0"), pybind11::arg("pad_y1"), pybind11::arg("flip_filter"), pybind11::arg("gain"));
    m.def(
        "split_rank1",
        [](const at::Tensor& g) -> std::optional<at::Tensor> {
            TORCH_CHECK_VALUE(g.dim() == 2 && g.device().is_cpu() &&
                                  (g.scalar_type() == at::kFloat || g.scalar_type() == at::kDouble),
                              "split_rank1: expected a 2-D float32/float64 CPU tensor, got ", g.sizes());
            at::Tensor r = upfirdn2d::split_rank1(g.contiguous());
            return r.defined() ? std::optional<at::Tensor>(r) : std::nullopt;
        },
        "[gx | gy] if the 2-D correlation filter g is an outer product gy (x) gx to within 2 ulp, else None "
        "(the CPU kernel then runs it as two 1-D passes)",
        pybind11::arg("g"));
    m.attr("with_cuda") =
#ifdef STYLEGAN_WITH_CUDA
        true;
#else
        false;
#endif
}
