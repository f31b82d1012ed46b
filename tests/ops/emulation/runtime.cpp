// The emulator's runtime (see cuda_shim.h): launch checks, the block scheduler with one fiber per CUDA thread, the
// barrier, and the CUDA error state. One host thread runs a launch from start to end; all state is thread-local.
#include "cuda_shim.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>

thread_local uint3 threadIdx{0, 0, 0};
thread_local uint3 blockIdx{0, 0, 0};
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace sg_emu {
namespace {

// Limits of every GPU from compute capability 7.0 on (without opting in to more dynamic shared memory).
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockDimXY = 1024, kMaxBlockDimZ = 64;
constexpr unsigned long long kMaxGridDimX = 2147483647ULL;
constexpr unsigned kMaxGridDimYZ = 65535;
constexpr size_t kMaxSharedBytes = 48 * 1024;
constexpr size_t kStackBytes = 64 * 1024;  // per fiber; the kernels keep a few scalars on the stack

enum class State { kReady, kAtBarrier, kDone };

// Switching between fibers. ucontext's swapcontext makes a signal-mask system call at every switch, which
// dominated the emulation tests' time; on x86-64 a switch only has to save the callee-saved registers and the
// floating-point control words on the old stack and restore them from the new one (System V ABI), done below.
// Elsewhere (or with -DSG_EMU_UCONTEXT) ucontext is used.
#if defined(__x86_64__) && !defined(SG_EMU_UCONTEXT)
extern "C" void sg_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl sg_emu_switch
    .type sg_emu_switch, @function
sg_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size sg_emu_switch, .-sg_emu_switch
)");

struct Context {
    void* sp = nullptr;
};

// Prepares `c` to start `entry` (which must never return) on the stack [lo, lo + size).
void start_context(Context& c, char* lo, size_t size, void (*entry)()) {
    void** sp = reinterpret_cast<void**>((reinterpret_cast<uintptr_t>(lo) + size) & ~uintptr_t(15));
    *--sp = nullptr;                          // where `entry` would return to: it never does
    *--sp = reinterpret_cast<void*>(entry);   // popped by `ret`; entry then sees rsp = 8 (mod 16), as after a call
    for (int i = 0; i < 6; ++i) *--sp = nullptr;  // rbp rbx r12-r15
    uint64_t csr = 0x1F80u | (uint64_t(0x037Fu) << 32);  // default MXCSR and x87 control word
    *--sp = reinterpret_cast<void*>(csr);
    c.sp = sp;
}

inline void switch_context(Context& from, Context& to) { sg_emu_switch(&from.sp, to.sp); }
#else
struct Context {
    Context() { getcontext(&uc); }
    ucontext_t uc;
};

void start_context(Context& c, char* lo, size_t size, void (*entry)()) {
    c.uc.uc_stack.ss_sp = lo;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;  // entry never returns
    makecontext(&c.uc, entry, 0);
}

inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// A fiber's stack: mmap'ed with an inaccessible guard page below it, so an overflow faults instead of corrupting.
class Stack {
  public:
    Stack() {
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        size_ = kStackBytes + page;
        base_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base_ == MAP_FAILED) throw std::runtime_error("cuda emulator: cannot map a fiber stack");
        mprotect(base_, page, PROT_NONE);
        top_ = static_cast<char*>(base_) + page;
    }
    ~Stack() { munmap(base_, size_); }
    Stack(const Stack&) = delete;
    Stack& operator=(const Stack&) = delete;
    char* usable() const { return top_; }

  private:
    void* base_;
    char* top_;
    size_t size_;
};

struct Fiber {
    Context ctx;
    Stack stack;
    State state = State::kReady;
    int barrier_line = 0;
    uint3 tid{0, 0, 0};
};

// Test controls and the launch log: process-wide (autograd may run a backward on another host thread).
struct Controls {
    std::mutex mutex;
    unsigned max_blocks = 0;
    bool reverse = false;
    std::vector<LaunchRecord> log;
};

Controls& controls() {
    static Controls c;
    return c;
}

// The state of the launch a host thread is running.
struct Emulator {
    cudaError_t last_error = cudaSuccess;
    std::vector<std::unique_ptr<Fiber>> fibers;  // pool, grown to the largest block seen
    Context scheduler;
    Fiber* current = nullptr;
    void (*body)(void*) = nullptr;
    void* body_ctx = nullptr;
    bool reverse = false;  // copied from the controls at the start of each launch
};

Emulator& emu() {
    static thread_local Emulator e;
    return e;
}

void fiber_main() {
    Emulator& e = emu();
    e.body(e.body_ctx);
    e.current->state = State::kDone;
    switch_context(e.current->ctx, e.scheduler);  // never resumed: the scheduler restarts or drops this fiber
    std::abort();
}

std::string dims(dim3 d) {
    return std::to_string(d.x) + "x" + std::to_string(d.y) + "x" + std::to_string(d.z);
}

// Why a GPU would refuse this launch configuration ("" when it would not).
std::string check_config(dim3 grid, dim3 block, size_t smem) {
    const unsigned long long threads = 1ULL * block.x * block.y * block.z;
    if (threads == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0)
        return "a zero grid or block dimension (grid " + dims(grid) + ", block " + dims(block) + ")";
    if (threads > kMaxThreadsPerBlock)
        return "block " + dims(block) + " has " + std::to_string(threads) + " threads, more than " +
               std::to_string(kMaxThreadsPerBlock);
    if (block.x > kMaxBlockDimXY || block.y > kMaxBlockDimXY || block.z > kMaxBlockDimZ)
        return "block " + dims(block) + " exceeds the per-dimension limits 1024x1024x64";
    if (grid.x > kMaxGridDimX || grid.y > kMaxGridDimYZ || grid.z > kMaxGridDimYZ)
        return "grid " + dims(grid) + " exceeds the limits 2147483647x65535x65535";
    if (smem > kMaxSharedBytes)
        return std::to_string(smem) + " B of dynamic shared memory, more than " + std::to_string(kMaxSharedBytes);
    return "";
}

// Runs the threads of the current block as fibers until all are done. Returns "" or why the block failed.
std::string run_block(Emulator& e, unsigned nthreads) {
    while (e.fibers.size() < nthreads) e.fibers.push_back(std::make_unique<Fiber>());
    for (unsigned t = 0; t < nthreads; ++t) {
        Fiber& f = *e.fibers[t];
        f.state = State::kReady;
        f.tid = uint3{t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
        start_context(f.ctx, f.stack.usable(), kStackBytes, fiber_main);
    }
    for (;;) {
        // One round: every ready thread runs until it reaches a barrier or finishes.
        for (unsigned k = 0; k < nthreads; ++k) {
            Fiber& f = *e.fibers[e.reverse ? nthreads - 1 - k : k];
            if (f.state != State::kReady) continue;
            threadIdx = f.tid;
            e.current = &f;
            switch_context(e.scheduler, f.ctx);
        }
        unsigned waiting = 0, done = 0;
        int line = -1;
        bool same_line = true;
        for (unsigned t = 0; t < nthreads; ++t) {
            const Fiber& f = *e.fibers[t];
            if (f.state == State::kDone) {
                ++done;
            } else {
                ++waiting;
                if (line < 0) line = f.barrier_line;
                same_line = same_line && f.barrier_line == line;
            }
        }
        if (waiting == 0) return "";
        if (done > 0)
            return std::to_string(waiting) + " threads wait at __syncthreads (line " + std::to_string(line) +
                   ") that " + std::to_string(done) + " threads of the block never reach (they returned)";
        if (!same_line) return "threads of one block wait at different __syncthreads calls (divergent barrier)";
        for (unsigned t = 0; t < nthreads; ++t) e.fibers[t]->state = State::kReady;  // everyone arrived
    }
}

void log_launch(const LaunchRecord& rec) {
    std::lock_guard<std::mutex> lock(controls().mutex);
    controls().log.push_back(rec);
}

}  // namespace

void sync_threads(int line) {
    Emulator& e = emu();
    if (e.current == nullptr) throw std::logic_error("__syncthreads() called outside an emulated kernel");
    Fiber* self = e.current;
    self->state = State::kAtBarrier;
    self->barrier_line = line;
    switch_context(self->ctx, e.scheduler);
    // resumed by the scheduler once the whole block has arrived (it has set threadIdx back to ours)
}

void run_launch(const char* kernel, dim3 grid, dim3 block, size_t smem, void (*body)(void*), void* ctx) {
    Emulator& e = emu();
    unsigned max_blocks;
    {
        std::lock_guard<std::mutex> lock(controls().mutex);
        max_blocks = controls().max_blocks;
        e.reverse = controls().reverse;
    }
    LaunchRecord rec{kernel, grid, block, 0, smem, check_config(grid, block, smem)};
    if (!rec.error.empty()) {
        e.last_error = cudaErrorInvalidConfiguration;
        log_launch(rec);
        return;
    }
    const unsigned long long total = 1ULL * grid.x * grid.y * grid.z;
    // A cap on blocks shrinks grid.x: every grid-stride loop must still cover all the work.
    dim3 run_grid = grid;
    if (max_blocks != 0 && total > max_blocks) run_grid = dim3(std::max(1u, max_blocks / (grid.y * grid.z)), grid.y, grid.z);
    gridDim = run_grid;
    blockDim = block;
    e.body = body;
    e.body_ctx = ctx;
    const unsigned nthreads = block.x * block.y * block.z;
    for (unsigned z = 0; z < run_grid.z && rec.error.empty(); ++z)
        for (unsigned y = 0; y < run_grid.y && rec.error.empty(); ++y)
            for (unsigned x = 0; x < run_grid.x && rec.error.empty(); ++x) {
                blockIdx = uint3{x, y, z};
                rec.error = run_block(e, nthreads);
                if (!rec.error.empty()) rec.error = "block " + dims(dim3(x, y, z)) + ": " + rec.error;
                ++rec.blocks_run;
            }
    e.current = nullptr;
    if (!rec.error.empty()) e.last_error = cudaErrorLaunchFailure;
    log_launch(rec);
}

void set_max_blocks(unsigned n) {
    std::lock_guard<std::mutex> lock(controls().mutex);
    controls().max_blocks = n;
}
void set_reverse_order(bool on) {
    std::lock_guard<std::mutex> lock(controls().mutex);
    controls().reverse = on;
}
std::vector<LaunchRecord> launch_log() {
    std::lock_guard<std::mutex> lock(controls().mutex);
    return controls().log;
}
void clear_launch_log() {
    std::lock_guard<std::mutex> lock(controls().mutex);
    controls().log.clear();
}
void set_last_error(cudaError_t err) { emu().last_error = err; }

}  // namespace sg_emu

cudaError_t cudaGetLastError() {
    const cudaError_t err = sg_emu::emu().last_error;
    sg_emu::emu().last_error = cudaSuccess;
    return err;
}

cudaError_t cudaPeekAtLastError() { return sg_emu::emu().last_error; }

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }  // every emulated launch is synchronous

const char* cudaGetErrorString(cudaError_t err) {
    switch (err) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulator: see the launch log)";
        case cudaErrorLaunchFailure: return "unspecified launch failure (emulator: see the launch log)";
    }
    return "unknown error";
}
