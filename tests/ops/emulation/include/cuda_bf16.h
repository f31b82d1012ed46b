// Emulation stand-in for <cuda_bf16.h>: everything the kernels use is in the shim.
#pragma once
#include "../cuda_shim.h"
