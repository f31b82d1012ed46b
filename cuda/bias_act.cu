// bias_act CUDA kernel and its launcher. No torch headers: the launcher takes raw pointers (in BiasActParams) and a
// cudaStream_t, and bias_act.cpp (built with -DSTYLEGAN_WITH_CUDA) calls it. The per-element math is bias_act.h,
// the same code the CPU kernel runs. Half types load and store in their own format and compute in float32.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "common.h"
#include "common_cuda.h"
#include "bias_act.h"

namespace {

template <typename T>
struct Compute {
    typedef T type;
    static __device__ __forceinline__ T load(T v) { return v; }
    static __device__ __forceinline__ T store(T v) { return v; }
};
template <>
struct Compute<__half> {
    typedef float type;
    static __device__ __forceinline__ float load(__half v) { return __half2float(v); }
    static __device__ __forceinline__ __half store(float v) { return __float2half_rn(v); }
};
template <>
struct Compute<__nv_bfloat16> {
    typedef float type;
    static __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
    static __device__ __forceinline__ __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

constexpr int kBlock = 256;
constexpr int kItemsPerThread = 4;

// Grid-stride loop over the flat, densely laid out arrays (see BiasActParams). I: the index type, uint32_t when
// every array has fewer than sg_index32_limit() elements (the common case: one 32-bit division per element
// instead of a 64-bit one), else long long.
template <typename T, int MODE, int ACT, bool USE_Y, typename I>
__global__ void bias_act_kernel(BiasActParams p) {
    typedef typename Compute<T>::type S;
    BiasActScalars<S> s = bias_act_scalars<S>(p);
    // Clamp to a value T can hold: y is stored as T, and the backward's mask (|y| < clamp) must see the clamped
    // outputs as clamped. (bfloat16 rounds 0.7 down to 0.69921875, which the mask would let through.)
    if (s.clamp >= (S)0) s.clamp = Compute<T>::load(Compute<T>::store(s.clamp));
    constexpr bool needs_x = MODE == SG_MODE_GRAD2 || (MODE == SG_MODE_GRAD && ACT == SG_ACT_SWISH);
    const T* in = static_cast<const T*>(p.x);
    const T* b = static_cast<const T*>(p.b);
    const T* xr = static_cast<const T*>(p.xref);
    const T* yr = static_cast<const T*>(p.yref);
    const T* dy = static_cast<const T*>(p.dy);
    T* out = static_cast<T*>(p.out);
    const I numel = (I)p.numel, inner = (I)p.inner, bias_size = (I)p.bias_size;
    const I stride = (I)gridDim.x * blockDim.x;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < numel; i += stride) {
        S bias = b ? Compute<T>::load(b[(i / inner) % bias_size]) : (S)0;
        S xv = needs_x ? Compute<T>::load(xr[i]) : (S)0;
        S yv = USE_Y ? Compute<T>::load(yr[i]) : (S)0;
        S dv = MODE == SG_MODE_GRAD2 ? Compute<T>::load(dy[i]) : (S)0;
        out[i] = Compute<T>::store(bias_act_elem<MODE, ACT, S>(Compute<T>::load(in[i]), bias, xv, yv, dv, s));
    }
}

template <typename T, int MODE, int ACT, bool USE_Y>
const char* launch(const BiasActParams& p, cudaStream_t stream) {
    long long blocks = (p.numel + (long long)kBlock * kItemsPerThread - 1) / ((long long)kBlock * kItemsPerThread);
    if (blocks < 1) blocks = 1;
    if (blocks > 65535LL * 16) blocks = 65535LL * 16;  // grid-stride loop covers the rest
    const char* err = sg_launch_begin("bias_act_kernel");
    if (err != nullptr) return err;
    if (p.numel < sg_index32_limit())
        SG_LAUNCH((unsigned)blocks, kBlock, 0, stream, bias_act_kernel<T, MODE, ACT, USE_Y, uint32_t>)(p);
    else
        SG_LAUNCH((unsigned)blocks, kBlock, 0, stream, bias_act_kernel<T, MODE, ACT, USE_Y, long long>)(p);
    return sg_launch_end("bias_act_kernel", (unsigned)blocks, kBlock, 0, stream);
}

const char* const kNoKernel = "bias_act: no CUDA kernel for this mode / act / references combination";

template <typename T, int ACT>
const char* dispatch_mode(const BiasActParams& p, cudaStream_t stream) {
    const bool use_y = p.yref != nullptr;
    if (p.mode == SG_MODE_FORWARD) return launch<T, SG_MODE_FORWARD, ACT, false>(p, stream);
    if (p.mode == SG_MODE_GRAD) {
        if (use_y) return launch<T, SG_MODE_GRAD, ACT, true>(p, stream);
        if (!bias_act_grad_needs_y(ACT)) return launch<T, SG_MODE_GRAD, ACT, false>(p, stream);
        return kNoKernel;  // grad_needs y but none given (bias_act.cpp checks this first)
    }
    if (p.mode == SG_MODE_GRAD2 && bias_act_has_2nd_grad(ACT)) {
        if (use_y) return launch<T, SG_MODE_GRAD2, ACT, true>(p, stream);
        return launch<T, SG_MODE_GRAD2, ACT, false>(p, stream);
    }
    return kNoKernel;
}

template <typename T>
const char* dispatch_act(const BiasActParams& p, cudaStream_t stream) {
    switch (p.act) {
        case SG_ACT_LINEAR: return dispatch_mode<T, SG_ACT_LINEAR>(p, stream);
        case SG_ACT_RELU: return dispatch_mode<T, SG_ACT_RELU>(p, stream);
        case SG_ACT_LRELU: return dispatch_mode<T, SG_ACT_LRELU>(p, stream);
        case SG_ACT_TANH: return dispatch_mode<T, SG_ACT_TANH>(p, stream);
        case SG_ACT_SIGMOID: return dispatch_mode<T, SG_ACT_SIGMOID>(p, stream);
        case SG_ACT_ELU: return dispatch_mode<T, SG_ACT_ELU>(p, stream);
        case SG_ACT_SELU: return dispatch_mode<T, SG_ACT_SELU>(p, stream);
        case SG_ACT_SOFTPLUS: return dispatch_mode<T, SG_ACT_SOFTPLUS>(p, stream);
        case SG_ACT_SWISH: return dispatch_mode<T, SG_ACT_SWISH>(p, stream);
        default: return "bias_act: unknown act code";
    }
}

}  // namespace

// Runs one bias_act mode on `stream`. dtype_code: SG_DTYPE_*. Returns nullptr on success, else why it failed.
const char* bias_act_cuda_launch(const BiasActParams& p, int dtype_code, cudaStream_t stream) {
    if (p.numel <= 0) return nullptr;
    switch (dtype_code) {
        case SG_DTYPE_F16: return dispatch_act<__half>(p, stream);
        case SG_DTYPE_BF16: return dispatch_act<__nv_bfloat16>(p, stream);
        case SG_DTYPE_F32: return dispatch_act<float>(p, stream);
        case SG_DTYPE_F64: return dispatch_act<double>(p, stream);
        default: return "bias_act: unsupported dtype code";
    }
}
