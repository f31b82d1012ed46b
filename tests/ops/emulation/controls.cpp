// The emulator's test controls for module.cpp, in a torch-free translation unit next to the shim.
#include "cuda_shim.h"

#include "common_cuda.h"

void emu_set_max_blocks(unsigned n) { sg_emu::set_max_blocks(n); }
void emu_set_reverse_order(bool on) { sg_emu::set_reverse_order(on); }
long long emu_set_index32_limit(long long n) {
    const long long before = sg_index32_limit();
    sg_index32_limit() = n;
    return before;
}
void emu_clear_launch_log() { sg_emu::clear_launch_log(); }
void emu_inject_pending_error() { sg_emu::set_last_error(cudaErrorLaunchFailure); }
uint16_t emu_float_to_half(float f) { return sg_emu::float_to_half_rn(f); }
uint16_t emu_float_to_bf16(float f) { return sg_emu::float_to_bf16_rn(f); }
float emu_half_to_float(uint16_t h) { return sg_emu::half_to_float(h); }
float emu_bf16_to_float(uint16_t b) { return sg_emu::bf16_to_float(b); }

std::vector<std::tuple<std::string, std::vector<unsigned>, std::vector<unsigned>, unsigned, size_t, std::string>>
emu_launch_log() {
    std::vector<std::tuple<std::string, std::vector<unsigned>, std::vector<unsigned>, unsigned, size_t, std::string>>
        out;
    for (const sg_emu::LaunchRecord& r : sg_emu::launch_log())
        out.emplace_back(r.kernel, std::vector<unsigned>{r.grid.x, r.grid.y, r.grid.z},
                         std::vector<unsigned>{r.block.x, r.block.y, r.block.z}, r.blocks_run, r.smem, r.error);
    return out;
}
