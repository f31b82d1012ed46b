// cuda/upfirdn2d.cu compiled by g++ against the emulator (see kernels_bias_act.cpp).
#include "upfirdn2d.cu"

const char* emu_upfirdn2d_launch(const void* x, void* y, const void* g, int dtype, const upfirdn2d::Params& p) {
    return upfirdn2d::launch_cuda(x, y, g, static_cast<upfirdn2d::DType>(dtype), p, nullptr);
}

long long emu_set_tiled_min_outputs(long long n) {
    const long long before = upfirdn2d::tiled_min_outputs();
    upfirdn2d::tiled_min_outputs() = n;
    return before;
}
