// bias_act extension: input validation, the CPU kernel and the pybind bindings. Compiled alone for CPU; compiled
// with -DSTYLEGAN_WITH_CUDA together with bias_act.cu it also sends CUDA tensors to the launcher defined there.
// The per-element math lives in bias_act.h, shared with the CUDA kernel.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <limits>
#include <string>
#include <vector>

#include "bias_act.h"

#if defined(__AVX__)
#include <immintrin.h>
#endif

#if defined(STYLEGAN_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

// Defined in bias_act.cu. Returns nullptr on success, else the CUDA error string.
extern const char* bias_act_cuda_launch(const BiasActParams& p, int dtype_code, cudaStream_t stream);
#endif

namespace {

// ---------------------------------------------------------------------------------------------------------------
// CPU kernel. All arrays share one dense layout, so element i of each is the same logical element; the work is a
// flat loop over memory in which the bias is either constant over a span (`inner` >= kMinInner consecutive
// elements share it, e.g. NCHW with dim=1) or periodic (channels_last, last dim): both inner loops are plain
// contiguous loops the compiler vectorises.

constexpr long long kMinInner = 16;       // shorter constant-bias runs use the periodic form
constexpr long long kGrainElems = 32768;  // elements per parallel task (keeps tasks >> thread wake-up cost)
constexpr int kLanes = 16;                // independent accumulators for the fused bias-gradient sum
constexpr int kTileBytes = 1024;          // L1-resident staging tile for streaming stores
// Outputs at least this large are written with non-temporal (streaming) stores: they cannot stay in cache
// anyway, and a normal store first reads the line it writes ("read for ownership"), a third more memory traffic
// for the forward (read x, write y) and a quarter more for the backward.
constexpr size_t kStreamMinBytes = size_t(16) << 20;

#if defined(__AVX__)
inline void stream_store(float* dst, const float* src, int n) {  // dst 32-byte aligned, n multiple of 8
    for (int i = 0; i < n; i += 8) _mm256_stream_ps(dst + i, _mm256_load_ps(src + i));
}
inline void stream_store(double* dst, const double* src, int n) {  // dst 32-byte aligned, n multiple of 4
    for (int i = 0; i < n; i += 4) _mm256_stream_pd(dst + i, _mm256_load_pd(src + i));
}
inline void stream_store(c10::BFloat16* dst, const c10::BFloat16* src, int n) {  // 32-byte aligned, n % 16 == 0
    for (int i = 0; i < n; i += 16)
        _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_load_si256(reinterpret_cast<const __m256i*>(src + i)));
}
inline void stream_fence() { _mm_sfence(); }  // streaming stores are weakly ordered: publish before the join
constexpr bool kCanStream = true;
#else
template <typename T>
inline void stream_store(T* dst, const T* src, int n) { std::memcpy(dst, src, sizeof(T) * n); }
inline void stream_fence() {}
constexpr bool kCanStream = false;
#endif

// The type the per-element math runs in: the storage type itself, except bfloat16, whose loads are widened to
// float32 and whose stores are rounded (to nearest even) from float32.
template <typename T>
struct ComputeType {
    using type = T;
};
template <>
struct ComputeType<c10::BFloat16> {
    using type = float;
};

template <int MODE, int ACT, bool USE_Y, typename T>
struct Span {
    using S = typename ComputeType<T>::type;
    static constexpr bool kNeedsX = MODE == SG_MODE_GRAD2 || (MODE == SG_MODE_GRAD && ACT == SG_ACT_SWISH);
    static constexpr int kTile = kTileBytes / sizeof(T);

    // dst[k] = element j0 + k for k < cnt (dst is `out` itself or the staging tile), whose bias is bv[k] when
    // BVEC, else bscalar; adds the outputs to acc if SUM.
    // A plain counted loop over restrict pointers: this is the loop the compiler vectorises.
    template <bool SUM, bool BVEC>
    static inline void compute(const BiasActParams& p, const BiasActScalars<S>& s, long long j0, long long cnt,
                               S bscalar, const S* __restrict__ bv, T* __restrict__ dst, S* __restrict__ acc) {
        const T* __restrict__ in = static_cast<const T*>(p.x) + j0;
        const T* __restrict__ xr = kNeedsX ? static_cast<const T*>(p.xref) + j0 : nullptr;
        const T* __restrict__ yr = USE_Y ? static_cast<const T*>(p.yref) + j0 : nullptr;
        const T* __restrict__ dy = MODE == SG_MODE_GRAD2 ? static_cast<const T*>(p.dy) + j0 : nullptr;
        // The stored (rounded) value: the bias gradient sums exactly what is written.
        auto elem = [&](long long k) -> T {
            return T(bias_act_elem<MODE, ACT, S>(S(in[k]), BVEC ? bv[k] : bscalar, kNeedsX ? S(xr[k]) : S(0),
                                                 USE_Y ? S(yr[k]) : S(0), MODE == SG_MODE_GRAD2 ? S(dy[k]) : S(0),
                                                 s));
        };
        long long k = 0;
        if (SUM) {  // kLanes independent accumulators: vectorises without reassociation flags
            for (; k + kLanes <= cnt; k += kLanes) {
                for (int l = 0; l < kLanes; ++l) {
                    T v = elem(k + l);
                    dst[k + l] = v;
                    acc[l] += S(v);
                }
            }
            for (; k < cnt; ++k) {
                T v = elem(k);
                dst[k] = v;
                acc[0] += S(v);
            }
        } else {
            for (; k < cnt; ++k) dst[k] = elem(k);
        }
    }

    // Processes elements [base, base + n): bias bscalar, or bvec[j] for element base + j when BVEC. Returns the
    // sum of the outputs when SUM (the fused bias gradient). With `stream`, whole tiles are computed into an
    // L1-resident buffer and written out with streaming stores.
    template <bool SUM, bool BVEC>
    static inline double run(const BiasActParams& p, const BiasActScalars<S>& s, long long base, long long n,
                             S bscalar, const S* bvec, bool stream) {
        S acc[kLanes] = {};
        T* out = static_cast<T*>(p.out) + base;
        if (!stream || n < 2 * kTile) {
            compute<SUM, BVEC>(p, s, base, n, bscalar, bvec, out, acc);
        } else {
            alignas(64) T tile[kTile];
            const uintptr_t addr = reinterpret_cast<uintptr_t>(out);
            long long head = (long long)(((32 - addr % 32) % 32) / sizeof(T));  // elements up to 32-byte alignment
            if (addr % sizeof(T) != 0) head = n;  // misaligned element type: no streaming at all
            compute<SUM, BVEC>(p, s, base, head, bscalar, bvec, out, acc);
            long long j = head;
            for (; j + kTile <= n; j += kTile) {
                compute<SUM, BVEC>(p, s, base + j, kTile, bscalar, BVEC ? bvec + j : nullptr, tile, acc);
                stream_store(out + j, tile, kTile);
            }
            compute<SUM, BVEC>(p, s, base + j, n - j, bscalar, BVEC ? bvec + j : nullptr, out + j, acc);
        }
        double total = 0;
        if (SUM)
            for (int l = 0; l < kLanes; ++l) total += (double)acc[l];
        return total;
    }
};

template <int MODE, int ACT, bool USE_Y, typename T>
bool cpu_kernel(const BiasActParams& p, double* bias_grad) {  // true when it filled bias_grad
    using Sp = Span<MODE, ACT, USE_Y, T>;
    using S = typename Sp::S;
    const BiasActScalars<S> s = bias_act_scalars<S>(p);
    const T* b = static_cast<const T*>(p.b);
    const long long numel = p.numel;
    const long long inner = p.inner;
    const long long C = p.bias_size;
    const long long blocks = b ? numel / inner : 0;
    const int threads = at::get_num_threads();
    const bool stream = kCanStream && size_t(numel) * sizeof(T) >= kStreamMinBytes;

    if (b && inner >= kMinInner && blocks >= 2LL * threads) {
        // Constant-bias blocks (e.g. NCHW, dim=1): one task = whole blocks, so per-block sums need no atomics.
        std::vector<double> block_sums(bias_grad ? blocks : 0);
        const long long grain = std::max<long long>(1, kGrainElems / inner);
        at::parallel_for(0, blocks, grain, [&](long long begin, long long end) {
            for (long long blk = begin; blk < end; ++blk) {
                const S bias = S(b[blk % C]);
                if (bias_grad)
                    block_sums[blk] = Sp::template run<true, false>(p, s, blk * inner, inner, bias, nullptr, stream);
                else
                    Sp::template run<false, false>(p, s, blk * inner, inner, bias, nullptr, stream);
            }
            if (stream) stream_fence();
        });
        if (bias_grad) {
            for (long long c = 0; c < C; ++c) bias_grad[c] = 0;
            for (long long blk = 0; blk < blocks; ++blk) bias_grad[blk % C] += block_sums[blk];
        }
        return bias_grad != nullptr;
    }
    if (!b || inner >= kMinInner) {
        // No bias, or a few very long constant-bias blocks: split the flat range, cut spans at block boundaries.
        at::parallel_for(0, numel, kGrainElems, [&](long long begin, long long end) {
            long long pos = begin;
            while (pos < end) {
                long long stop = b ? std::min(end, (pos / inner + 1) * inner) : end;
                S bias = b ? S(b[(pos / inner) % C]) : S(0);
                Sp::template run<false, false>(p, s, pos, stop - pos, bias, nullptr, stream);
                pos = stop;
            }
            if (stream) stream_fence();
        });
        return false;
    }
    // Periodic bias (channels_last with dim=1, the last dim, ...): expand the bias pattern once into a row whose
    // length is a multiple of the period, then walk the flat array row by row (the last row may be partial).
    const long long period = inner * C;
    const long long row = period * std::max<long long>(1, (4096 + period - 1) / period);
    std::vector<S> bexp(row);
    for (long long j = 0; j < row; ++j) bexp[j] = S(b[(j / inner) % C]);
    const long long rows = (numel + row - 1) / row;
    at::parallel_for(0, rows, std::max<long long>(1, kGrainElems / row), [&](long long begin, long long end) {
        for (long long r = begin; r < end; ++r) {
            long long n = std::min(row, numel - r * row);
            Sp::template run<false, true>(p, s, r * row, n, S(0), bexp.data(), stream);
        }
        if (stream) stream_fence();
    });
    return false;
}

template <typename T>
bool cpu_dispatch(const BiasActParams& p, bool use_y, double* bias_grad) {
#define SG_CASE(ACT)                                                                                      \
    case ACT:                                                                                             \
        if (p.mode == SG_MODE_FORWARD) return cpu_kernel<SG_MODE_FORWARD, ACT, false, T>(p, bias_grad);    \
        if (p.mode == SG_MODE_GRAD) {                                                                     \
            if (use_y) return cpu_kernel<SG_MODE_GRAD, ACT, true, T>(p, bias_grad);                       \
            if (!bias_act_grad_needs_y(ACT)) return cpu_kernel<SG_MODE_GRAD, ACT, false, T>(p, bias_grad); \
        }                                                                                                 \
        if (p.mode == SG_MODE_GRAD2 && bias_act_has_2nd_grad(ACT)) {                                      \
            if (use_y) return cpu_kernel<SG_MODE_GRAD2, ACT, true, T>(p, bias_grad);                      \
            return cpu_kernel<SG_MODE_GRAD2, ACT, false, T>(p, bias_grad);                                \
        }                                                                                                 \
        break;
    switch (p.act) {
        SG_CASE(SG_ACT_LINEAR)
        SG_CASE(SG_ACT_RELU)
        SG_CASE(SG_ACT_LRELU)
        SG_CASE(SG_ACT_TANH)
        SG_CASE(SG_ACT_SIGMOID)
        SG_CASE(SG_ACT_ELU)
        SG_CASE(SG_ACT_SELU)
        SG_CASE(SG_ACT_SOFTPLUS)
        SG_CASE(SG_ACT_SWISH)
    }
#undef SG_CASE
    TORCH_CHECK(false, "bias_act: internal error: no CPU kernel for mode ", p.mode, ", act ", p.act);
    return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Output pool (CPU). With glibc's default settings every large fresh tensor is a fresh mmap whose pages fault on
// first write (costs measured in docs/PERFORMANCE.md §2.1), so a bias_act whose output is freshly allocated runs
// at page-fault speed. Outputs of at least kPoolMinBytes are carved from blocks this pool
// keeps mapped: when such a tensor dies its block returns here and the next output of the same size reuses it.
// Idle blocks are bounded (STYLEGAN_OPS_POOL_MB, default 256; 0 disables the pool) and can be dropped with
// trim_pool(); the pool never touches the process-wide allocator settings.

constexpr size_t kPoolMinBytes = size_t(1) << 20;
constexpr size_t kPoolAlign = 4096;

class OutputPool {
  public:
    static OutputPool& instance() {
        static OutputPool* pool = new OutputPool();  // leaked on purpose: tensors may die during interpreter exit
        return *pool;
    }

    void* acquire(size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = idle_blocks_.find(bytes);
            if (it != idle_blocks_.end() && !it->second.empty()) {
                void* p = it->second.back();
                it->second.pop_back();
                idle_bytes_ -= bytes;
                ++hits_;
                return p;
            }
            ++misses_;
        }
        void* p = nullptr;
        if (posix_memalign(&p, kPoolAlign, bytes) != 0 || p == nullptr) throw std::bad_alloc();
        return p;
    }

    void release(void* p, size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (idle_bytes_ + bytes <= limit_) {
                idle_blocks_[bytes].push_back(p);
                idle_bytes_ += bytes;
                return;
            }
        }
        std::free(p);
    }

    void set_limit(size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            limit_ = bytes;
        }
        trim(bytes);
    }

    // Frees idle blocks until at most `keep` bytes stay idle.
    void trim(size_t keep = 0) {
        std::vector<void*> drop;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (auto& kv : idle_blocks_) {
                while (idle_bytes_ > keep && !kv.second.empty()) {
                    drop.push_back(kv.second.back());
                    kv.second.pop_back();
                    idle_bytes_ -= kv.first;
                }
            }
        }
        for (void* p : drop) std::free(p);
    }

    pybind11::dict stats() {
        std::lock_guard<std::mutex> lock(mutex_);
        pybind11::dict d;
        d["limit_bytes"] = limit_;
        d["idle_bytes"] = idle_bytes_;
        d["hits"] = hits_;
        d["misses"] = misses_;
        return d;
    }

    size_t limit() {
        std::lock_guard<std::mutex> lock(mutex_);
        return limit_;
    }

  private:
    OutputPool() {
        const char* env = std::getenv("STYLEGAN_OPS_POOL_MB");
        long long mb = 256;
        if (env && *env) {
            char* end = nullptr;
            long long v = std::strtoll(env, &end, 10);
            if (end && *end == '\0' && v >= 0) mb = v;
        }
        limit_ = size_t(mb) << 20;
    }

    std::mutex mutex_;
    std::unordered_map<size_t, std::vector<void*>> idle_blocks_;
    size_t idle_bytes_ = 0;
    size_t limit_ = 0;
    long long hits_ = 0;
    long long misses_ = 0;
};

// torch::empty_like(like) for a dense `like` (same sizes, strides and options), served from the pool on CPU.
// The storage is an ordinary resizable one backed by the CPU allocator (unlike torch::from_blob's), so resize_(),
// out= and storage resizes work on a pooled output: a resize allocates anew and the old block returns here.
torch::Tensor empty_like_dense(const torch::Tensor& like) {
    const size_t bytes = size_t(like.numel()) * like.element_size();
    OutputPool& pool = OutputPool::instance();
    if (!like.device().is_cpu() || bytes < kPoolMinBytes || pool.limit() == 0 ||
        !like.is_non_overlapping_and_dense())
        return torch::empty_like(like);
    const size_t rounded = (bytes + kPoolAlign - 1) / kPoolAlign * kPoolAlign;
    void* p = pool.acquire(rounded);
    c10::DataPtr data = c10::InefficientStdFunctionContext::makeDataPtr(
        p, [rounded](void* q) { OutputPool::instance().release(q, rounded); }, like.device());
    c10::Storage storage(c10::Storage::use_byte_size_t(), bytes, std::move(data), c10::GetCPUAllocator(),
                         /*resizable=*/true);
    // A dense tensor's storage starts at its lowest address: with negative-free dense strides that is offset 0.
    return torch::empty({0}, like.options()).set_(std::move(storage), 0, like.sizes(), like.strides());
}

// ---------------------------------------------------------------------------------------------------------------
// Validation and layout.

void check_same(const torch::Tensor& t, const char* name, const torch::Tensor& x, const char* xname) {
    TORCH_CHECK_VALUE(t.device() == x.device(), "bias_act: ", name, " is on ", t.device(), " but ", xname,
                      " is on ", x.device(), "; expected the same device");
    TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type(), "bias_act: ", name, " has dtype ", t.scalar_type(),
                     " but ", xname, " has ", x.scalar_type(), "; expected the same dtype");
    TORCH_CHECK_VALUE(t.sizes() == x.sizes(), "bias_act: ", name, " has shape ", t.sizes(), " but ", xname,
                      " has ", x.sizes(), "; expected the same shape");
}

// Sum of t over every dim but `keep` (a copy when there is no other dim: torch's sum over [] means all dims).
torch::Tensor sum_all_but(const torch::Tensor& t, int64_t keep) {
    std::vector<int64_t> dims;
    for (int64_t i = 0; i < t.dim(); ++i)
        if (i != keep) dims.push_back(i);
    return dims.empty() ? t.clone() : t.sum(dims);
}

// Returns t with exactly the strides of `like` (a dense tensor), copying only when they differ.
torch::Tensor match_layout(const torch::Tensor& t, const torch::Tensor& like) {
    if (t.strides() == like.strides()) return t;
    return empty_like_dense(like).copy_(t);
}

// The kernel entry point. Returns {out, bias_grad}; bias_grad (the sum of `out` over every dim but `dim`) is
// computed only when want_bias_grad, fused into the CPU loop where the layout allows, else by a torch sum.
std::vector<torch::Tensor> bias_act(torch::Tensor x, c10::optional<torch::Tensor> b_opt,
                                    c10::optional<torch::Tensor> xref_opt, c10::optional<torch::Tensor> yref_opt,
                                    c10::optional<torch::Tensor> dy_opt, int64_t mode, int64_t dim, int64_t act,
                                    double alpha, double gain, double clamp, bool want_bias_grad) {
    TORCH_CHECK_VALUE(mode >= SG_MODE_FORWARD && mode <= SG_MODE_GRAD2, "bias_act: mode must be 0, 1 or 2, got ",
                      mode);
    TORCH_CHECK_VALUE(act >= SG_ACT_FIRST && act <= SG_ACT_LAST, "bias_act: act code must be in [", SG_ACT_FIRST,
                      ", ", SG_ACT_LAST, "], got ", act);
    TORCH_CHECK_VALUE(mode != SG_MODE_GRAD2 || bias_act_has_2nd_grad((int)act), "bias_act: act code ", act,
                      " has no second derivative (mode 2)");
    TORCH_CHECK_VALUE(x.dim() >= 1, "bias_act: x must have at least one dimension, got a scalar");
    TORCH_CHECK_VALUE(dim >= 0 && dim < x.dim(), "bias_act: dim=", dim, " is out of range for x of rank ", x.dim());
    const bool is_cuda = x.device().is_cuda();
    const auto dtype = x.scalar_type();
    if (is_cuda) {
        TORCH_CHECK_TYPE(dtype == torch::kFloat16 || dtype == torch::kBFloat16 || dtype == torch::kFloat32 ||
                             dtype == torch::kFloat64,
                         "bias_act: CUDA kernel supports float16, bfloat16, float32 and float64, got dtype ", dtype);
    } else {
        TORCH_CHECK_VALUE(x.device().is_cpu(), "bias_act: x must be a CPU or CUDA tensor, got device ", x.device());
        TORCH_CHECK_TYPE(dtype == torch::kFloat32 || dtype == torch::kFloat64 || dtype == torch::kBFloat16,
                         "bias_act: CPU kernel supports float32, float64 and bfloat16, got dtype ", dtype);
    }
    const bool needs_x = mode == SG_MODE_GRAD2 || (mode == SG_MODE_GRAD && bias_act_grad_needs_x((int)act));
    const bool needs_y = mode == SG_MODE_GRAD && bias_act_grad_needs_y((int)act);
    const bool use_clamp = clamp >= 0;
    TORCH_CHECK_VALUE(!needs_x || xref_opt.has_value(), "bias_act: mode ", mode, " with act code ", act,
                      " needs the forward input x (xref)");
    TORCH_CHECK_VALUE(!(needs_y || (mode != SG_MODE_FORWARD && use_clamp)) || yref_opt.has_value(),
                      "bias_act: mode ", mode, " with act code ", act, use_clamp ? " and a clamp" : "",
                      " needs the forward output y (yref)");
    TORCH_CHECK_VALUE(mode != SG_MODE_GRAD2 || dy_opt.has_value(), "bias_act: mode 2 needs dy");

    torch::Tensor b, xref, yref, dy;
    if (b_opt.has_value()) {
        b = *b_opt;
        TORCH_CHECK_VALUE(b.device() == x.device(), "bias_act: b is on ", b.device(), " but x is on ", x.device(),
                          "; expected the same device");
        TORCH_CHECK_TYPE(b.scalar_type() == dtype, "bias_act: b has dtype ", b.scalar_type(), " but x has ", dtype,
                         "; expected the same dtype");
        TORCH_CHECK_VALUE(b.dim() == 1 && b.size(0) == x.size(dim), "bias_act: b must have shape [", x.size(dim),
                          "] (x.shape[", dim, "]), got ", b.sizes());
        b = b.contiguous();
    }
    // Only the references this mode reads are kept (a caller may pass more).
    if (xref_opt.has_value() && needs_x) check_same(*xref_opt, "xref", x, "x"), xref = *xref_opt;
    if (yref_opt.has_value() && mode != SG_MODE_FORWARD && (needs_y || use_clamp))
        check_same(*yref_opt, "yref", x, "x"), yref = *yref_opt;
    if (dy_opt.has_value() && mode == SG_MODE_GRAD2) check_same(*dy_opt, "dy", x, "x"), dy = *dy_opt;

    // One dense layout for every array: that of the forward input (or output), so the result keeps x's memory
    // format (channels_last stays channels_last); a non-dense lead tensor is first copied into a dense one.
    torch::Tensor lead = yref.defined() ? yref : (xref.defined() ? xref : x);
    if (!lead.is_non_overlapping_and_dense()) lead = torch::empty_like(lead).copy_(lead);
    x = match_layout(x, lead);
    if (xref.defined()) xref = match_layout(xref, lead);
    if (yref.defined()) yref = match_layout(yref, lead);
    if (dy.defined()) dy = match_layout(dy, lead);
    torch::Tensor out = empty_like_dense(lead);
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
    p.inner = x.size(dim) > 1 ? lead.stride(dim) : p.numel;  // a size-1 dim's stride says nothing
    p.mode = (int)mode;
    p.act = (int)act;
    p.alpha = alpha;
    p.gain = gain;
    // A half type stores clamp rounded to itself (bfloat16(0.7) = 0.69921875): clamp to that stored value, so the
    // backward's mask (|y| >= clamp where the forward clamped) sees exactly the values the forward wrote.
    p.clamp = clamp < 0 ? clamp
              : dtype == torch::kBFloat16 ? (double)(float)c10::BFloat16((float)clamp)
              : dtype == torch::kFloat16  ? (double)(float)c10::Half((float)clamp)
                                          : clamp;

    if (is_cuda) {
#if defined(STYLEGAN_WITH_CUDA)
        const c10::cuda::CUDAGuard guard(x.device());
        const int code = dtype == torch::kFloat16 ? SG_DTYPE_F16 : dtype == torch::kBFloat16 ? SG_DTYPE_BF16
                         : dtype == torch::kFloat32 ? SG_DTYPE_F32 : SG_DTYPE_F64;
        const char* err = bias_act_cuda_launch(p, code, c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
        TORCH_CHECK(err == nullptr, "bias_act: CUDA kernel launch failed: ", err ? err : "");
#else
        TORCH_CHECK(false, "bias_act: this extension was built without CUDA support; x is on ", x.device());
#endif
        if (want_bias_grad) bias_grad = sum_all_but(out, dim);
        return {out, bias_grad};
    }

    // The bias gradient is fused into the loop where the layout has constant-bias blocks; else a torch sum.
    std::vector<double> sums(want_bias_grad ? p.bias_size : 0);
    double* sums_ptr = want_bias_grad ? sums.data() : nullptr;
    const bool use_y = yref.defined();
    const bool fused = dtype == torch::kFloat32    ? cpu_dispatch<float>(p, use_y, sums_ptr)
                       : dtype == torch::kBFloat16 ? cpu_dispatch<c10::BFloat16>(p, use_y, sums_ptr)
                                                   : cpu_dispatch<double>(p, use_y, sums_ptr);
    if (want_bias_grad) {
        if (fused) {
            bias_grad = torch::empty({p.bias_size}, torch::TensorOptions().dtype(torch::kFloat64));
            std::copy(sums.begin(), sums.end(), bias_grad.data_ptr<double>());
            bias_grad = bias_grad.to(dtype);
        } else {
            bias_grad = sum_all_but(out, dim);
        }
    }
    return {out, bias_grad};
}

// Lets the Python side check that its spec table agrees with the codes compiled here.
pybind11::dict act_table() {
    pybind11::dict d;
    for (int a = SG_ACT_FIRST; a <= SG_ACT_LAST; ++a) {
        std::string needs = bias_act_grad_needs_x(a) ? "x" : (bias_act_grad_needs_y(a) ? "y" : "");
        d[pybind11::int_(a)] = pybind11::make_tuple(needs, bias_act_has_2nd_grad(a));
    }
    return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "stylegan bias_act kernels (CPU, and CUDA when built with it)";
    m.def("bias_act", &bias_act, "Fused bias + activation + gain + clamp: mode 0 forward, 1 grad, 2 second grad",
          pybind11::arg("x"), pybind11::arg("b"), pybind11::arg("xref"), pybind11::arg("yref"), pybind11::arg("dy"),
          pybind11::arg("mode"), pybind11::arg("dim"), pybind11::arg("act"), pybind11::arg("alpha"),
          pybind11::arg("gain"), pybind11::arg("clamp"), pybind11::arg("want_bias_grad"));
    m.def("pool_stats", []() { return OutputPool::instance().stats(); },
          "Output pool of the CPU kernel: limit_bytes, idle_bytes, hits, misses");
    m.def("set_pool_limit", [](size_t bytes) { OutputPool::instance().set_limit(bytes); },
          "Most idle bytes the CPU output pool keeps mapped (0 disables it); trims at once", pybind11::arg("bytes"));
    m.def("trim_pool", []() { OutputPool::instance().trim(0); }, "Frees every idle block of the CPU output pool");
    m.def("act_table", &act_table, "act code -> (grad_needs, has_2nd_grad) as compiled into the kernel");
#if defined(STYLEGAN_WITH_CUDA)
    m.attr("with_cuda") = true;
#else
    m.attr("with_cuda") = false;
#endif
}
