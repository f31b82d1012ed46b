// Small kernels that test the emulator itself (tests/ops/test_cuda_emulation.py): a shared-memory reduction that
// needs its barriers, barriers only part of a block reaches, and launches a GPU would refuse.
#include <cuda_runtime.h>

#include "common_cuda.h"

namespace {

constexpr unsigned kMaxThreads = 1024;

// out[block] = sum of the block's inputs by a tree in shared memory; every step needs the barrier before it.
__global__ void block_sum(const float* in, float* out, bool first_barrier) {
    __shared__ float s[kMaxThreads];
    const unsigned t = threadIdx.x;
    s[t] = in[blockIdx.x * blockDim.x + t];
    if (first_barrier) __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

__global__ void divergent_barrier(float* out) {
    if (threadIdx.x % 2 == 0) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

__global__ void early_return(float* out) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

__global__ void fill(float* out) {
    out[blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z)] = 1;
}

}  // namespace

const char* emu_selftest_block_sum(const float* in, float* out, unsigned blocks, unsigned threads,
                                   bool first_barrier) {
    const char* err = sg_launch_begin("block_sum");
    if (err != nullptr) return err;
    SG_LAUNCH(blocks, threads, 0, nullptr, block_sum)(in, out, first_barrier);
    return sg_launch_end("block_sum", blocks, threads, 0, nullptr);
}

// which: 0 divergent barrier, 1 early return before a barrier, 2 fill with the given configuration.
const char* emu_selftest_launch(int which, dim3 grid, dim3 block, size_t smem, float* out) {
    const char* err = sg_launch_begin("selftest");
    if (err != nullptr) return err;
    if (which == 0) SG_LAUNCH(grid, block, smem, nullptr, divergent_barrier)(out);
    if (which == 1) SG_LAUNCH(grid, block, smem, nullptr, early_return)(out);
    if (which == 2) SG_LAUNCH(grid, block, smem, nullptr, fill)(out);
    return sg_launch_end("selftest", grid, block, smem, nullptr);
}

const char* emu_selftest_launch_dims(int which, const unsigned* grid, const unsigned* block, size_t smem,
                                     float* out) {
    return emu_selftest_launch(which, dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]), smem,
                               out);
}
