// upfirdn2d CUDA kernels and their launcher. No torch headers: the launcher takes raw pointers, the Params
// struct (sizes and element strides, 64-bit) and a stream; upfirdn2d.cpp validates and dispatches to it.
//
// Two kernels, both built on the index math of upfirdn2d.h (the same functions the CPU kernel uses):
// - tiled: the common StyleGAN cases (up 2, down 2 or plain filtering, equal on both axes, filters of <= 8 taps
//   per axis). A block stages the input patch a tile of outputs reads, and the filter, in shared memory, then
//   each thread computes outputs from there.
// - generic: one thread per output pixel (grid-stride loop), reading global memory through upfirdn2d::pixel.
//   Also for planes too small to fill a block of the tiled kernel (the 4-16 px layers of a StyleGAN), and, with
//   the channel as the fastest index (ChannelsFastest), for inputs and outputs of channel stride 1, so the threads
//   of a warp read and write consecutive addresses (coalesced).
// Half types are loaded into and accumulated in float32; float64 accumulates in float64.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "common.h"
#include "common_cuda.h"
#include "upfirdn2d.h"

namespace upfirdn2d {
namespace {

template <typename T>
struct Acc {
    using type = float;
};
template <>
struct Acc<double> {
    using type = double;
};

// Element -> accumulation type.
struct Load {
    SG_HOST_DEVICE float operator()(float v) const { return v; }
    SG_HOST_DEVICE double operator()(double v) const { return v; }
    SG_HOST_DEVICE float operator()(__half v) const { return __half2float(v); }
    SG_HOST_DEVICE float operator()(__nv_bfloat16 v) const { return __bfloat162float(v); }
};

// Accumulation type -> element (round to nearest even).
template <typename T>
__device__ __forceinline__ T store_as(typename Acc<T>::type v) {
    return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half store_as<__half>(float v) {
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 store_as<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

constexpr int kThreads = 256;
constexpr int kMaxTaps = 8;             // per axis, for the tiled kernel
constexpr int64_t kMaxBlocks = 1 << 20;  // grid-stride loops cover the rest
constexpr size_t kMaxStaticShared = 48 * 1024;  // what every GPU gives a block without opting in

}  // namespace

// Fewest outputs one tile must have for the tiled kernel to be used (default: one per thread of the block). A
// variable only so that the emulation tests can send every eligible call to the tiled kernel (0); nothing else
// changes it.
inline int64_t& tiled_min_outputs() {
    static int64_t outputs = kThreads;
    return outputs;
}

namespace {

// The order of the generic kernel's flat output index: x fastest (consecutive threads along a row), or the channel
// fastest, so that for channel stride 1 (channels-last) consecutive threads touch consecutive elements of x and y.
struct XFastest {
    template <typename I>
    static __device__ __forceinline__ void split(I idx, I channels, I out_h, I out_w, I& n, I& c, I& oy, I& ox) {
        ox = idx % out_w;
        idx /= out_w;
        oy = idx % out_h;
        idx /= out_h;
        c = idx % channels;
        n = idx / channels;
    }
};
struct ChannelsFastest {
    template <typename I>
    static __device__ __forceinline__ void split(I idx, I channels, I out_h, I out_w, I& n, I& c, I& oy, I& ox) {
        c = idx % channels;
        idx /= channels;
        ox = idx % out_w;
        idx /= out_w;
        oy = idx % out_h;
        n = idx / out_h;
    }
};

// One thread per output pixel, in the order Order. I: the index type of the pixel decomposition and addressing,
// uint32_t when x and y both span fewer than sg_index32_limit() elements (32-bit divisions instead of 64-bit ones).
template <typename T, typename I, typename Order>
__global__ void generic_kernel(const T* __restrict__ x, T* __restrict__ y, const typename Acc<T>::type* __restrict__ g,
                               Params p) {
    using acc_t = typename Acc<T>::type;
    const I total = static_cast<I>(p.n * p.c * p.out_h * p.out_w);
    const I out_w = static_cast<I>(p.out_w), out_h = static_cast<I>(p.out_h), channels = static_cast<I>(p.c);
    const I stride = static_cast<I>(gridDim.x) * blockDim.x;
    for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        I n, c, oy, ox;
        Order::split(idx, channels, out_h, out_w, n, c, oy, ox);
        const T* plane = x + (n * static_cast<I>(p.in_sn) + c * static_cast<I>(p.in_sc));
        const acc_t v = pixel<acc_t>(plane, g, p, static_cast<int64_t>(oy), static_cast<int64_t>(ox), Load());
        y[n * static_cast<I>(p.out_sn) + c * static_cast<I>(p.out_sc) + oy * static_cast<I>(p.out_sy) +
          ox * static_cast<I>(p.out_sx)] = store_as<T>(v);
    }
}

// Elements of memory an array of these sizes and (non-negative) strides spans: its largest offset + 1.
int64_t extent(int64_t n, int64_t c, int64_t h, int64_t w, int64_t sn, int64_t sc, int64_t sh, int64_t sw) {
    if (n == 0 || c == 0 || h == 0 || w == 0) return 0;
    return 1 + (n - 1) * sn + (c - 1) * sc + (h - 1) * sh + (w - 1) * sw;
}

// Input extent (per axis) read by TILE consecutive outputs: see the bound in the comment of tiled_kernel.
template <int UP, int DOWN, int TILE>
struct TileExtent {
    static constexpr int value = ((TILE - 1) * DOWN + kMaxTaps - 1) / UP + 2;
};

// One block per tile (grid-stride over all tiles of all planes). For output o the taps read inputs
// [in0, in0 + count) with in0 >= floor((o*DOWN - pad0) / UP); over a tile starting at o0 the largest index read
// is at most floor(((o0 + TILE - 1)*DOWN - pad0 + f - 1) / UP), so the patch starting at
// floor((o0*DOWN - pad0) / UP) needs at most ((TILE-1)*DOWN + f - 1) / UP + 2 entries per axis.
template <typename T, int UP, int DOWN, int TILE>
__global__ void tiled_kernel(const T* __restrict__ x, T* __restrict__ y, const typename Acc<T>::type* __restrict__ g,
                             Params p, int64_t tiles_x, int64_t tiles_y) {
    using acc_t = typename Acc<T>::type;
    constexpr int IN = TileExtent<UP, DOWN, TILE>::value;
    __shared__ acc_t s_in[IN][IN + 1];  // +1: fewer bank conflicts on column-strided reads
    __shared__ acc_t s_g[kMaxTaps * kMaxTaps];
    static_assert(sizeof(s_in) + sizeof(s_g) <= kMaxStaticShared, "tiled_kernel: tile too large for shared memory");

    const int64_t n_g = p.separable ? p.f_w + p.f_h : p.f_w * p.f_h;
    for (int64_t i = threadIdx.x; i < n_g; i += blockDim.x) s_g[i] = g[i];

    const int64_t total_tiles = p.n * p.c * tiles_y * tiles_x;
    for (int64_t tile = blockIdx.x; tile < total_tiles; tile += gridDim.x) {
        const int64_t tx = tile % tiles_x;
        const int64_t ty = (tile / tiles_x) % tiles_y;
        const int64_t plane = tile / (tiles_x * tiles_y);
        const int64_t n = plane / p.c, c = plane % p.c;
        const int64_t ox0 = tx * TILE, oy0 = ty * TILE;
        const int64_t ix0 = floor_div(ox0 * DOWN - p.pad_x0, UP);
        const int64_t iy0 = floor_div(oy0 * DOWN - p.pad_y0, UP);
        const T* xp = x + n * p.in_sn + c * p.in_sc;

        __syncthreads();  // the previous tile is done with s_in (and s_g is loaded)
        for (int i = threadIdx.x; i < IN * IN; i += blockDim.x) {
            const int r = i / IN, col = i % IN;
            const int64_t iy = iy0 + r, ix = ix0 + col;
            const bool inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w;
            s_in[r][col] = inside ? Load()(xp[iy * p.in_sy + ix * p.in_sx]) : acc_t(0);
        }
        __syncthreads();

        for (int i = threadIdx.x; i < TILE * TILE; i += blockDim.x) {
            const int64_t oy = oy0 + i / TILE, ox = ox0 + i % TILE;
            if (oy >= p.out_h || ox >= p.out_w) continue;
            const AxisTaps ax = axis_taps_unclipped(ox, UP, DOWN, p.pad_x0, p.f_w);
            const AxisTaps ay = axis_taps_unclipped(oy, UP, DOWN, p.pad_y0, p.f_h);
            const int lx = static_cast<int>(ax.in0 - ix0), ly = static_cast<int>(ay.in0 - iy0);
            acc_t acc = acc_t(0);
            for (int j = 0; j < ay.count; ++j) {
                const int ky = static_cast<int>(ay.tap0) + j * UP;
                const acc_t* row = &s_in[ly + j][lx];
                if (p.separable) {
                    acc_t row_acc = acc_t(0);
                    for (int k = 0; k < ax.count; ++k) row_acc += s_g[ax.tap0 + k * UP] * row[k];
                    acc += s_g[p.f_w + ky] * row_acc;
                } else {
                    const acc_t* g_row = s_g + ky * p.f_w;
                    for (int k = 0; k < ax.count; ++k) acc += g_row[ax.tap0 + k * UP] * row[k];
                }
            }
            y[n * p.out_sn + c * p.out_sc + oy * p.out_sy + ox * p.out_sx] = store_as<T>(acc);
        }
    }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Whether one tile of this plane has at least tiled_min_outputs() outputs; on a smaller plane most threads of the
// block would idle, so the generic kernel (every thread busy) is used instead.
bool tile_fills_block(const Params& p, int64_t tile) {
    return min64(p.out_h, tile) * min64(p.out_w, tile) >= tiled_min_outputs();
}

template <typename T, int UP, int DOWN, int TILE>
const char* launch_tiled(const T* x, T* y, const typename Acc<T>::type* g, const Params& p, cudaStream_t stream) {
    const int64_t tiles_x = ceil_div(p.out_w, TILE), tiles_y = ceil_div(p.out_h, TILE);
    const int64_t tiles = p.n * p.c * tiles_x * tiles_y;
    const unsigned blocks = static_cast<unsigned>(tiles < kMaxBlocks ? tiles : kMaxBlocks);
    const char* err = sg_launch_begin("upfirdn2d tiled_kernel");
    if (err != nullptr) return err;
    SG_LAUNCH(blocks, kThreads, 0, stream, tiled_kernel<T, UP, DOWN, TILE>)(x, y, g, p, tiles_x, tiles_y);
    return sg_launch_end("upfirdn2d tiled_kernel", blocks, kThreads, 0, stream);
}

template <typename T>
const char* launch_typed(const void* xv, void* yv, const void* gv, const Params& p, cudaStream_t stream) {
    using acc_t = typename Acc<T>::type;
    const T* x = static_cast<const T*>(xv);
    T* y = static_cast<T*>(yv);
    const acc_t* g = static_cast<const acc_t*>(gv);
    const int64_t total = p.n * p.c * p.out_h * p.out_w;
    if (total == 0) return nullptr;

    const bool isotropic = p.up_x == p.up_y && p.down_x == p.down_y;
    const bool small = p.f_w <= kMaxTaps && p.f_h <= kMaxTaps;
    // Channel stride 1 in and out: the tiled kernel would stage each plane with loads C elements apart.
    const bool channels_last = p.in_sc == 1 && p.out_sc == 1 && p.c > 1;
    if (isotropic && small && !channels_last) {
        if (p.up_x == 2 && p.down_x == 1 && tile_fills_block(p, 32)) return launch_tiled<T, 2, 1, 32>(x, y, g, p, stream);
        if (p.up_x == 1 && p.down_x == 2 && tile_fills_block(p, 16)) return launch_tiled<T, 1, 2, 16>(x, y, g, p, stream);
        if (p.up_x == 1 && p.down_x == 1 && tile_fills_block(p, 32)) return launch_tiled<T, 1, 1, 32>(x, y, g, p, stream);
    }
    const int64_t blocks64 = ceil_div(total, kThreads);
    const unsigned blocks = static_cast<unsigned>(blocks64 < kMaxBlocks ? blocks64 : kMaxBlocks);
    const char* err = sg_launch_begin("upfirdn2d generic_kernel");
    if (err != nullptr) return err;
    const bool index32 =
        extent(p.n, p.c, p.in_h, p.in_w, p.in_sn, p.in_sc, p.in_sy, p.in_sx) < sg_index32_limit() &&
        extent(p.n, p.c, p.out_h, p.out_w, p.out_sn, p.out_sc, p.out_sy, p.out_sx) < sg_index32_limit();
    if (channels_last && index32)
        SG_LAUNCH(blocks, kThreads, 0, stream, generic_kernel<T, uint32_t, ChannelsFastest>)(x, y, g, p);
    else if (channels_last)
        SG_LAUNCH(blocks, kThreads, 0, stream, generic_kernel<T, int64_t, ChannelsFastest>)(x, y, g, p);
    else if (index32)
        SG_LAUNCH(blocks, kThreads, 0, stream, generic_kernel<T, uint32_t, XFastest>)(x, y, g, p);
    else
        SG_LAUNCH(blocks, kThreads, 0, stream, generic_kernel<T, int64_t, XFastest>)(x, y, g, p);
    return sg_launch_end("upfirdn2d generic_kernel", blocks, kThreads, 0, stream);
}

}  // namespace

// Returns nullptr on success, else a message naming the failed launch (see common_cuda.h).
const char* launch_cuda(const void* x, void* y, const void* g, DType dtype, const Params& p, cudaStream_t stream) {
    switch (dtype) {
        case kFloat16: return launch_typed<__half>(x, y, g, p, stream);
        case kBFloat16: return launch_typed<__nv_bfloat16>(x, y, g, p, stream);
        case kFloat32: return launch_typed<float>(x, y, g, p, stream);
        case kFloat64: return launch_typed<double>(x, y, g, p, stream);
    }
    return "upfirdn2d: unsupported dtype code";
}

}  // namespace upfirdn2d
