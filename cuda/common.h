// Shared by the C++ (CPU) and CUDA kernels: the per-element math headers are compiled by both g++ and nvcc.
#pragma once

#if defined(__CUDACC__)
#define SG_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SG_HOST_DEVICE inline
#endif
