// Shared by the .cu files only: the one way a kernel is launched, and the launch-error checks.
//
// SG_LAUNCH(grid, block, smem, stream, kernel)(args...) is `kernel<<<grid, block, smem, stream>>>(args...)` under
// nvcc. Under the CPU emulator (tests/ops/emulation, which defines SG_CUDA_EMULATION) it hands the same kernel and
// arguments to the emulator's launcher, so the kernels the tests run are byte for byte the source nvcc compiles.
// The kernel comes last because a template-id such as `k<T, 2, 1>` contains commas.
//
// Errors: cudaGetLastError() returns whatever error is pending, including one left by an earlier, unrelated
// launch. sg_launch_begin() therefore collects a pending error BEFORE the launch (reported as earlier, never
// blamed on this kernel, never dropped), and sg_launch_end() reports the error of this launch only, naming the
// kernel and its configuration. Errors raised while a kernel runs (e.g. an illegal address) surface at a later
// synchronisation; with STYLEGAN_CUDA_SYNC=1 every launch is followed by a stream synchronisation, so such an error
// too is attributed to the kernel that caused it (slow; for debugging).
#pragma once

#include <cstdio>
#include <cstdlib>

#if defined(SG_CUDA_EMULATION)
#define SG_LAUNCH(grid, block, smem, stream, ...) \
    ::sg_emu::Launch(#__VA_ARGS__, (grid), (block), (smem), (stream)).kernel(__VA_ARGS__)
#else
#define SG_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#endif

// Arrays (counted by the extent of their elements in memory) below this size are indexed with 32-bit unsigned
// arithmetic, which GPUs divide and multiply several times faster than 64-bit; larger ones keep 64-bit indices.
// 2^31 leaves room for `i + grid-stride` in 32 bits. A variable only so that the emulation tests can force the
// 64-bit path on small arrays (tests/ops/emulation); nothing else changes it.
inline long long& sg_index32_limit() {
    static long long limit = 1LL << 31;
    return limit;
}

// Message buffer of the last failed launch on this host thread (valid until the next failure).
inline char* sg_launch_message() {
    static thread_local char buf[512];
    return buf;
}

// nullptr when no CUDA error is pending; else a message saying that the error predates this launch.
inline const char* sg_launch_begin(const char* kernel) {
    const cudaError_t pending = cudaGetLastError();
    if (pending == cudaSuccess) return nullptr;
    std::snprintf(sg_launch_message(), 512,
                  "a CUDA error was already pending before launching %s (raised by an earlier kernel or CUDA call, "
                  "not by this one): %s",
                  kernel, cudaGetErrorString(pending));
    return sg_launch_message();
}

inline bool sg_sync_after_launch() {
    static const bool on = [] {
        const char* v = std::getenv("STYLEGAN_CUDA_SYNC");
        return v != nullptr && v[0] != '\0' && v[0] != '0';
    }();
    return on;
}

// nullptr when the launch just made succeeded; else a message naming the kernel and its launch configuration.
inline const char* sg_launch_end(const char* kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t stream) {
    cudaError_t err = cudaGetLastError();
    const char* when = "launching";
    if (err == cudaSuccess && sg_sync_after_launch()) {
        err = cudaStreamSynchronize(stream);
        when = "running (STYLEGAN_CUDA_SYNC=1)";
    }
    if (err == cudaSuccess) return nullptr;
    std::snprintf(sg_launch_message(), 512, "%s %s (grid %ux%ux%u, block %ux%ux%u, %zu B dynamic shared) failed: %s",
                  when, kernel, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem, cudaGetErrorString(err));
    return sg_launch_message();
}
