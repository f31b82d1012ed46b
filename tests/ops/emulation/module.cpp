// Python bindings of the emulated CUDA kernels: the same entry points as the real extensions (bias_act,
// upfirdn2d), taking CPU tensors of every dtype the CUDA kernels support, plus the emulator's test controls.
//
// The host code below restates the small CUDA branch of cuda/bias_act.cpp and cuda/upfirdn2d.cpp (which layout
// each array gets, the Params, the effective filter) because those files need a real CUDA runtime; the kernels and
// launchers themselves are the .cu files, unchanged. Keep the two in step.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "bias_act.h"
#include "upfirdn2d.h"

// Defined in kernels_*.cpp (torch-free translation units, like nvcc's).
const char* emu_bias_act_launch(const BiasActParams& p, int dtype_code);
const char* emu_upfirdn2d_launch(const void* x, void* y, const void* g, int dtype, const upfirdn2d::Params& p);
long long emu_set_tiled_min_outputs(long long n);
// Defined in selftest.cpp (kernels that test the emulator itself).
const char* emu_selftest_block_sum(const float* in, float* out, unsigned blocks, unsigned threads,
                                   bool first_barrier);
const char* emu_selftest_launch_dims(int which, const unsigned* grid, const unsigned* block, size_t smem,
                                     float* out);
// Defined in controls.cpp (the emulator's state lives with the shim).
void emu_set_max_blocks(unsigned n);
void emu_set_reverse_order(bool on);
long long emu_set_index32_limit(long long n);
std::vector<std::tuple<std::string, std::vector<unsigned>, std::vector<unsigned>, unsigned, size_t, std::string>>
emu_launch_log();
void emu_clear_launch_log();
void emu_inject_pending_error();
uint16_t emu_float_to_half(float f);
uint16_t emu_float_to_bf16(float f);
float emu_half_to_float(uint16_t h);
float emu_bf16_to_float(uint16_t b);

namespace {

int dtype_code(const torch::Tensor& x) {
    switch (x.scalar_type()) {
        case torch::kFloat16: return 0;
        case torch::kBFloat16: return 1;
        case torch::kFloat32: return 2;
        case torch::kFloat64: return 3;
        default: TORCH_CHECK_TYPE(false, "emulated CUDA kernel: unsupported dtype ", x.scalar_type());
    }
    return -1;
}

void check_launch(const char* err, const char* op) {
    if (err == nullptr) return;
    std::string detail;
    const auto log = emu_launch_log();
    if (!log.empty() && !std::get<5>(log.back()).empty()) detail = " [emulator: " + std::get<5>(log.back()) + "]";
    TORCH_CHECK(false, op, ": CUDA kernel failed: ", err, detail);
}

// Every array a kernel sees lives inside a larger buffer whose other bytes are all 0xFF (a NaN in each of the four
// dtypes): kGuard elements before and after it, and the gaps of a strided view. A read outside the array's elements
// brings a NaN into the result; a write outside them is found by check_guards() after the launch.
constexpr int64_t kGuard = 4096;

struct Guarded {
    torch::Tensor buffer;  // the whole allocation
    torch::Tensor view;    // what the kernel is given
    int64_t extent;        // elements of buffer spanned by the view
    const char* what;
};

Guarded guarded_empty(at::IntArrayRef sizes, at::IntArrayRef strides, const torch::TensorOptions& options,
                      const char* what) {
    int64_t extent = 1;
    for (size_t i = 0; i < sizes.size(); ++i) {
        TORCH_CHECK_VALUE(strides[i] >= 0, "emulator: negative strides are not supported");
        if (sizes[i] == 0) extent = 0;
        if (extent) extent += (sizes[i] - 1) * strides[i];
    }
    torch::Tensor buffer = torch::empty({extent + 2 * kGuard}, options);
    std::memset(buffer.data_ptr(), 0xFF, buffer.numel() * buffer.element_size());
    return Guarded{buffer, buffer.as_strided(sizes, strides, kGuard), extent, what};
}

Guarded guarded_copy(const torch::Tensor& t, at::IntArrayRef strides, const char* what) {
    Guarded g = guarded_empty(t.sizes(), strides, t.options(), what);
    g.view.copy_(t);
    return g;
}

// Fails naming the array when a byte of a guard zone is no longer 0xFF.
void check_guards(const std::vector<const Guarded*>& arrays) {
    for (const Guarded* g : arrays) {
        const size_t elem = g->buffer.element_size();
        const unsigned char* bytes = static_cast<const unsigned char*>(g->buffer.data_ptr());
        const size_t front = kGuard * elem, back_start = (kGuard + g->extent) * elem;
        const size_t total = g->buffer.numel() * elem;
        for (size_t i = 0; i < total; i = (i + 1 == front ? back_start : i + 1)) {
            TORCH_CHECK(bytes[i] == 0xFF, "emulated kernel wrote outside ", g->what, " (",
                        i < front ? "before its first" : "after its last", " element, byte ",
                        i < front ? (long long)(front - i) : (long long)(i - back_start + 1), ")");
        }
    }
}

torch::Tensor sum_all_but(const torch::Tensor& t, int64_t keep) {
    std::vector<int64_t> dims;
    for (int64_t i = 0; i < t.dim(); ++i)
        if (i != keep) dims.push_back(i);
    return dims.empty() ? t.clone() : t.sum(dims);
}

// As cuda/bias_act.cpp's bias_act() for a CUDA tensor (validation left to the real extension and ops/bias_act.py).
std::vector<torch::Tensor> bias_act(torch::Tensor x, c10::optional<torch::Tensor> b_opt,
                                    c10::optional<torch::Tensor> xref_opt, c10::optional<torch::Tensor> yref_opt,
                                    c10::optional<torch::Tensor> dy_opt, int64_t mode, int64_t dim, int64_t act,
                                    double alpha, double gain, double clamp, bool want_bias_grad) {
    TORCH_CHECK_VALUE(x.device().is_cpu(), "emulated kernels take CPU tensors, got ", x.device());
    TORCH_CHECK_VALUE(x.dim() >= 1 && dim >= 0 && dim < x.dim(), "bias_act: bad dim ", dim);
    const bool needs_x = mode == SG_MODE_GRAD2 || (mode == SG_MODE_GRAD && bias_act_grad_needs_x((int)act));
    const bool needs_y = mode == SG_MODE_GRAD && bias_act_grad_needs_y((int)act);
    const bool use_clamp = clamp >= 0;
    torch::Tensor b, xref, yref, dy;
    if (b_opt.has_value()) b = b_opt->contiguous();
    if (xref_opt.has_value() && needs_x) xref = *xref_opt;
    if (yref_opt.has_value() && mode != SG_MODE_FORWARD && (needs_y || use_clamp)) yref = *yref_opt;
    if (dy_opt.has_value() && mode == SG_MODE_GRAD2) dy = *dy_opt;
    TORCH_CHECK_VALUE(!needs_x || xref.defined(), "bias_act: needs xref");
    TORCH_CHECK_VALUE(!(needs_y || (mode != SG_MODE_FORWARD && use_clamp)) || yref.defined(), "bias_act: needs yref");

    torch::Tensor lead = yref.defined() ? yref : (xref.defined() ? xref : x);
    if (!lead.is_non_overlapping_and_dense()) lead = torch::empty_like(lead).copy_(lead);
    // One dense layout for all (lead's), each array in its own guarded buffer (see guarded_empty).
    const Guarded gx = guarded_copy(x, lead.strides(), "x");
    const Guarded gb = b.defined() ? guarded_copy(b, b.strides(), "b") : Guarded{};
    const Guarded gxref = xref.defined() ? guarded_copy(xref, lead.strides(), "xref") : Guarded{};
    const Guarded gyref = yref.defined() ? guarded_copy(yref, lead.strides(), "yref") : Guarded{};
    const Guarded gdy = dy.defined() ? guarded_copy(dy, lead.strides(), "dy") : Guarded{};
    const Guarded gout = guarded_empty(lead.sizes(), lead.strides(), lead.options(), "out");
    x = gx.view;
    if (b.defined()) b = gb.view;
    if (xref.defined()) xref = gxref.view;
    if (yref.defined()) yref = gyref.view;
    if (dy.defined()) dy = gdy.view;
    torch::Tensor out = gout.view;
    torch::Tensor bias_grad;
    if (x.numel() == 0) {
        if (want_bias_grad) bias_grad = torch::zeros({x.size(dim)}, x.options());
        return {out, bias_grad};
    }
    BiasActParams p;
    p.x = x.data_ptr();
    p.b = b.defined() ? b.data_ptr() : nullptr;
    p.xref = xref.defined() ? xref.data_ptr() : nullptr;
    p.yref = yref.defined() ? yref.data_ptr() : nullptr;
    p.dy = dy.defined() ? dy.data_ptr() : nullptr;
    p.out = out.data_ptr();
    p.numel = x.numel();
    p.bias_size = x.size(dim);
    p.inner = x.size(dim) > 1 ? lead.stride(dim) : p.numel;
    p.mode = (int)mode;
    p.act = (int)act;
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;
    check_launch(emu_bias_act_launch(p, dtype_code(x)), "bias_act");
    std::vector<const Guarded*> guards{&gx, &gout};
    for (const Guarded* g : {&gb, &gxref, &gyref, &gdy})
        if (g->buffer.defined()) guards.push_back(g);
    check_guards(guards);
    if (want_bias_grad) bias_grad = sum_all_but(out, dim);
    return {out, bias_grad};
}

// As cuda/upfirdn2d.cpp's upfirdn2d() + forward_cuda() for a CUDA tensor.
torch::Tensor upfirdn2d_op(const torch::Tensor& x, const torch::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x,
                        int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1,
                        bool flip_filter, double gain) {
    TORCH_CHECK_VALUE(x.device().is_cpu() && x.dim() == 4, "emulated upfirdn2d takes a 4-D CPU tensor");
    upfirdn2d::Params p{};
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
    p.out_w = upfirdn2d::out_size(p.in_w, up_x, down_x, pad_x0, pad_x1, p.f_w);
    p.out_h = upfirdn2d::out_size(p.in_h, up_y, down_y, pad_y0, pad_y1, p.f_h);
    TORCH_CHECK_VALUE(p.out_w >= 1 && p.out_h >= 1, "upfirdn2d: empty output");
    torch::Tensor g = (f * std::pow(gain, f.dim() / 2.0)).to(x.scalar_type());
    if (!flip_filter) g = p.separable ? g.flip({0}) : g.flip({0, 1});
    g = g.to(x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat).contiguous();
    if (p.separable) g = torch::cat({g, g});

    const torch::Tensor y_like =
        torch::empty({p.n, p.c, p.out_h, p.out_w}, x.options().memory_format(x.suggest_memory_format()));
    const Guarded gx = guarded_copy(x, x.strides(), "x");
    const Guarded gg = guarded_copy(g, g.strides(), "the filter");
    const Guarded gy = guarded_empty(y_like.sizes(), y_like.strides(), y_like.options(), "y");
    const torch::Tensor& xv = gx.view;
    const torch::Tensor& y = gy.view;
    p.in_sn = xv.stride(0);
    p.in_sc = xv.stride(1);
    p.in_sy = xv.stride(2);
    p.in_sx = xv.stride(3);
    p.out_sn = y.stride(0);
    p.out_sc = y.stride(1);
    p.out_sy = y.stride(2);
    p.out_sx = y.stride(3);
    if (y.numel() == 0) return y;
    check_launch(emu_upfirdn2d_launch(xv.data_ptr(), y.data_ptr(), gg.view.data_ptr(), dtype_code(x), p),
                 "upfirdn2d");
    check_guards({&gx, &gg, &gy});
    return y;
}

// Elementwise through the shim's conversions (tests compare them with torch's round-to-nearest-even casts).
torch::Tensor to_16bit_bits(const torch::Tensor& v, bool bf16) {
    torch::Tensor src = v.to(torch::kFloat).contiguous();
    torch::Tensor out = torch::empty(src.sizes(), torch::TensorOptions().dtype(torch::kInt16));
    const float* s = src.data_ptr<float>();
    int16_t* o = out.data_ptr<int16_t>();
    for (int64_t i = 0; i < src.numel(); ++i)
        o[i] = static_cast<int16_t>(bf16 ? emu_float_to_bf16(s[i]) : emu_float_to_half(s[i]));
    return out;
}

torch::Tensor from_16bit_bits(const torch::Tensor& bits, bool bf16) {
    torch::Tensor src = bits.to(torch::kInt16).contiguous();
    torch::Tensor out = torch::empty(src.sizes(), torch::TensorOptions().dtype(torch::kFloat));
    const int16_t* s = src.data_ptr<int16_t>();
    float* o = out.data_ptr<float>();
    for (int64_t i = 0; i < src.numel(); ++i) {
        const uint16_t u = static_cast<uint16_t>(s[i]);
        o[i] = bf16 ? emu_bf16_to_float(u) : emu_half_to_float(u);
    }
    return out;
}

// A reduction over blocks of `threads` inputs; first_barrier=False drops the barrier after the shared-memory store.
torch::Tensor selftest_block_sum(const torch::Tensor& in, int64_t threads, bool first_barrier) {
    TORCH_CHECK_VALUE(in.scalar_type() == torch::kFloat && in.dim() == 1 && in.numel() % threads == 0,
                      "selftest_block_sum: a 1-D float32 tensor of whole blocks");
    torch::Tensor x = in.contiguous();
    torch::Tensor out = torch::full({in.numel() / threads}, -1.0f);
    check_launch(emu_selftest_block_sum(x.data_ptr<float>(), out.data_ptr<float>(), (unsigned)(in.numel() / threads),
                                        (unsigned)threads, first_barrier),
                 "selftest_block_sum");
    return out;
}

// Launches selftest kernel `which` with the given configuration; returns None or the error message.
c10::optional<std::string> selftest_launch(int64_t which, std::vector<unsigned> grid, std::vector<unsigned> block,
                                           int64_t smem) {
    TORCH_CHECK_VALUE(grid.size() == 3 && block.size() == 3, "selftest_launch: grid and block are 3 numbers");
    const size_t n = (size_t)grid[0] * grid[1] * grid[2] * block[0] * block[1] * block[2];
    std::vector<float> out(std::min<size_t>(std::max<size_t>(n, 1), 1 << 24));
    const char* err = emu_selftest_launch_dims((int)which, grid.data(), block.data(), (size_t)smem, out.data());
    if (err == nullptr) return c10::nullopt;
    std::string msg = err;
    const auto log = emu_launch_log();
    if (!log.empty() && !std::get<5>(log.back()).empty()) msg += " [emulator: " + std::get<5>(log.back()) + "]";
    return msg;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "cuda/*.cu kernels run on the CPU by the emulator in tests/ops/emulation (tests only)";
    m.def("bias_act", &bias_act);
    m.def("upfirdn2d", &upfirdn2d_op);
    m.def("set_max_blocks", &emu_set_max_blocks, "0 = no cap; else each launch runs at most this many blocks");
    m.def("set_reverse_order", &emu_set_reverse_order, "run each block's threads from the last to the first");
    m.def("set_index32_limit", &emu_set_index32_limit,
          "arrays below this many elements use 32-bit indices (default 2^31; 0 forces 64-bit); returns the old limit");
    m.def("set_tiled_min_outputs", &emu_set_tiled_min_outputs,
          "fewest outputs per tile for upfirdn2d's tiled kernel (default 256; 0: every eligible call); returns the old value");
    m.def("launch_log", &emu_launch_log, "(kernel, grid, block, blocks_run, smem, error) per launch");
    m.def("clear_launch_log", &emu_clear_launch_log);
    m.def("inject_pending_error", &emu_inject_pending_error, "as if an earlier CUDA call had failed");
    m.def("to_16bit_bits", &to_16bit_bits, "float -> half (bf16=False) or bfloat16 bit patterns, as int16");
    m.def("from_16bit_bits", &from_16bit_bits, "half or bfloat16 bit patterns (int16) -> float");
    m.def("selftest_block_sum", &selftest_block_sum);
    m.def("selftest_launch", &selftest_launch, "which: 0 divergent barrier, 1 early return, 2 fill");
    m.attr("with_cuda") = true;  // the ops treat it as the CUDA extension
}
