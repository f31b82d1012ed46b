// cuda/bias_act.cu compiled by g++ against the emulator (the include path puts emulation/include first, so its
// <cuda_runtime.h> etc. are the shim). Nothing of the kernel is restated here.
#include "bias_act.cu"

const char* emu_bias_act_launch(const BiasActParams& p, int dtype_code) {
    return bias_act_cuda_launch(p, dtype_code, nullptr);
}
