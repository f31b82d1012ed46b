// CPU emulation of the small part of CUDA that cuda/*.cu use, so those files compile unchanged with g++ and
// their kernels run on the CPU (tests/ops/test_cuda_emulation.py). Written for this project; see docs/GPU.md.
//
// What it models, and why each piece matters for catching kernel bugs:
// - A launch runs its blocks one after another; the threads of a block are fibers (ucontext) with their own
//   stacks, switched only at __syncthreads(). The barrier is real: a fiber that reaches it waits until every
//   thread of the block has, so a missing barrier lets one thread read shared memory the others have not written
//   yet (a wrong result), and a barrier that only part of the block reaches is reported as an error.
// - threadIdx/blockIdx/blockDim/gridDim are set by the scheduler before each fiber resumes.
// - __shared__ variables are function-local statics of the one host thread that runs the launch: shared by all
//   fibers of the block, kept from block to block (as nothing guarantees their contents on a GPU either).
// - Every launch is checked against what a GPU rejects (threads per block <= 1024, block and grid dimensions,
//   dynamic shared memory <= 48 KiB); a bad launch does not run and sets the error cudaGetLastError() returns,
//   as on a GPU. Static shared memory is checked at compile time by the kernels themselves (static_assert).
// - __half and __nv_bfloat16 are 16-bit storage types (the memory layout torch and the GPU use) whose
//   conversions from float round to nearest even, computed through float like the CUDA intrinsics.
// Test-only controls (max blocks per launch, fiber order, the launch log) are in sg_emu:: below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#ifndef SG_CUDA_EMULATION
#define SG_CUDA_EMULATION 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __syncthreads() ::sg_emu::sync_threads(__LINE__)

// ------------------------------------------------------------------------------------------------ runtime types
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct uint3 {
    unsigned x, y, z;
};

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorLaunchFailure = 719,
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

// ------------------------------------------------------------------------------------------------ half types
namespace sg_emu {

inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// IEEE binary16 -> float (exact).
inline float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf, NaN (payload kept)
    if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0) return bits_float(sign);
    // Subnormal half: value = mant * 2^-24, exactly representable as a normal float.
    float v = float(mant) * bits_float(0x33800000u);  // 2^-24
    return (sign != 0) ? -v : v;
}

// float -> IEEE binary16, round to nearest, ties to even; overflow -> inf, NaN stays NaN.
inline uint16_t float_to_half_rn(float f) {
    const uint32_t u = float_bits(f);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN (quiet)
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf (and inf itself)
    if (abs < 0x38800000u) {  // below the smallest normal half 2^-14: subnormal or zero, step 2^-24
        // mant = round_even(|f| / 2^-24); done in integer arithmetic on the float's significand.
        const uint32_t e = abs >> 23;
        if (e < 102) return sign;  // < 2^-25: rounds to zero (2^-25 itself is a tie to even 0)
        const uint32_t sig = (abs & 0x7fffffu) | 0x800000u;  // value = sig * 2^(e - 150)
        const uint32_t shift = 126 - e;                      // value / 2^-24 = sig >> (126 - e)
        uint32_t mant = sig >> shift;
        const uint32_t rem = sig & ((1u << shift) - 1u), half_way = 1u << (shift - 1);
        if (rem > half_way || (rem == half_way && (mant & 1u))) ++mant;
        return uint16_t(sign | mant);
    }
    // Normal: rebias the exponent, round the 13 dropped mantissa bits to even (a carry may bump the exponent).
    uint32_t h = ((abs >> 13) - (112u << 10));
    const uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return uint16_t(sign | h);
}

inline float bf16_to_float(uint16_t b) { return bits_float(uint32_t(b) << 16); }

// float -> bfloat16, round to nearest, ties to even; NaN stays NaN.
inline uint16_t float_to_bf16_rn(float f) {
    const uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // NaN (quiet)
    const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(rounded >> 16);
}

}  // namespace sg_emu

struct __half {
    uint16_t bits;
};
struct __nv_bfloat16 {
    uint16_t bits;
};
static_assert(sizeof(__half) == 2 && sizeof(__nv_bfloat16) == 2, "16-bit storage types");

inline float __half2float(__half h) { return sg_emu::half_to_float(h.bits); }
inline __half __float2half_rn(float f) { return __half{sg_emu::float_to_half_rn(f)}; }
inline float __bfloat162float(__nv_bfloat16 b) { return sg_emu::bf16_to_float(b.bits); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{sg_emu::float_to_bf16_rn(f)}; }

// ------------------------------------------------------------------------------------------------ the launcher
namespace sg_emu {

// One launch as the kernel saw it (what the tests inspect after a run).
struct LaunchRecord {
    std::string kernel;
    dim3 grid, block;     // as requested
    unsigned blocks_run;  // blocks actually run (fewer when the test caps blocks per launch)
    size_t smem;
    std::string error;  // empty when the launch was valid and every block completed
};

// Runs grid x block threads of `body` (the kernel call with its arguments bound); defined in runtime.cpp.
void run_launch(const char* kernel, dim3 grid, dim3 block, size_t smem, void (*body)(void*), void* ctx);
void sync_threads(int line);

// Test controls and the log of every launch (process-wide).
void set_max_blocks(unsigned n);  // 0 = no cap; else a launch runs at most n blocks (gridDim says so too)
void set_reverse_order(bool on);  // run the fibers of a block from the last thread to the first
std::vector<LaunchRecord> launch_log();
void set_last_error(cudaError_t err);  // as if an earlier, unrelated CUDA call had failed
void clear_launch_log();

inline dim3 to_dim3(dim3 d) { return d; }
inline dim3 to_dim3(unsigned v) { return dim3(v); }
inline dim3 to_dim3(int v) { return dim3(static_cast<unsigned>(v)); }
inline dim3 to_dim3(long long v) { return dim3(static_cast<unsigned>(v)); }

// Launch(name, grid, block, smem, stream).kernel(k)(args...): what SG_LAUNCH expands to (cuda/common_cuda.h).
class Launch {
  public:
    template <typename G, typename B>
    Launch(const char* name, G grid, B block, size_t smem, cudaStream_t)
        : name_(name), grid_(to_dim3(grid)), block_(to_dim3(block)), smem_(smem) {}

    template <typename... P>
    struct Bound {
        const Launch* launch;
        void (*kernel)(P...);
        template <typename... A>
        void operator()(A&&... args) const {
            struct Call {
                void (*k)(P...);
                std::tuple<P...> args;
            } call{kernel, std::tuple<P...>(std::forward<A>(args)...)};
            run_launch(launch->name_, launch->grid_, launch->block_, launch->smem_,
                       [](void* c) {
                           Call* cl = static_cast<Call*>(c);
                           std::tuple<P...> copy = cl->args;  // each thread gets its own copy of the arguments
                           std::apply(cl->k, copy);
                       },
                       &call);
        }
    };

    template <typename... P>
    Bound<P...> kernel(void (*k)(P...)) const {
        return Bound<P...>{this, k};
    }

  private:
    const char* name_;
    dim3 grid_, block_;
    size_t smem_;
};

}  // namespace sg_emu
