/* tapediff_cuda_emu.h: run generated CUDA kernels on the CPU, for the tests.
 *
 * The kernels of tapediff/codegen/cuda.py compiled as plain C. Blocks run in
 * order, one at a time. Two builds:
 *
 * - default: ONE thread per block (TD_BLOCK 1), a launch is a plain loop, so
 *   __syncthreads and the shared-memory trees are trivial. Fast; exercises
 *   grid-stride loops, index arithmetic, two-pass and partial reductions,
 *   stores, guards and the host steps as a GPU runs them.
 * - TD_EMU_THREADS n (a power of two): n threads per block, each a fiber
 *   (ucontext) with its own stack. A thread runs until it calls
 *   __syncthreads() or returns; when every thread of the block waits at the
 *   barrier they all go on. __shared__ arrays are one copy per block (static
 *   storage, as the block runs alone). Threads run in increasing order, or
 *   decreasing (td_emu_run's reverse): a kernel whose result depends on that
 *   order reads what another thread writes without a barrier between. A
 *   block where some threads wait at a barrier that others have returned
 *   past (undefined behaviour on a GPU) fails the launch.
 *
 * What still needs a device: real concurrency (threads interleaved inside a
 * barrier interval, warps, memory ordering), timing, and the CuPy calls
 * (see docs/cuda-backend.md).
 */
#ifndef TAPEDIFF_CUDA_EMU_H
#define TAPEDIFF_CUDA_EMU_H
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct { int64_t x; } td_emu_dim;
static td_emu_dim blockIdx, threadIdx, blockDim, gridDim;

typedef void (*td_emu_kernel)(const int64_t *, char *, const char *, void *const *,
                              void *const *);

/* status of td_emu_run other than 0: threads of a block disagreed on a barrier */
#define TD_EMU_DIVERGED (-100)

#define TD_KERNEL static
#ifndef TD_EMU_RGRID
#define TD_EMU_RGRID 1024
#endif
#define TD_RGRID TD_EMU_RGRID

#ifndef TD_EMU_THREADS
/* ------------------------------------------------ one thread per block */
#define __shared__
#define __syncthreads() ((void)0)
#define TD_BLOCK 1

#include "tapediff_math.h"

static int td_emu_run(td_emu_kernel k, int64_t blocks, int reverse, const int64_t *P,
                      char *W, const char *K, void *const *I, void *const *O) {
    (void)reverse;
    gridDim.x = blocks;
    blockDim.x = TD_BLOCK;
    threadIdx.x = 0;
    for (int64_t b = 0; b < blocks; b++) {
        blockIdx.x = b;
        k(P, W, K, I, O);
    }
    return 0;
}

#else
/* ------------------------------------------------ TD_EMU_THREADS fibers */
#include <stdlib.h>
#include <ucontext.h>

#define TD_BLOCK TD_EMU_THREADS
#define __shared__ static
#define __syncthreads() td_emu_sync()
#define TD_EMU_STACK (1 << 20)      /* bytes per fiber (untouched pages cost nothing) */

enum { TD_EMU_READY, TD_EMU_WAITING, TD_EMU_DONE };

static struct {
    ucontext_t main, ctx[TD_BLOCK];
    char *stack[TD_BLOCK];
    int state[TD_BLOCK];
    int current, reverse;
    td_emu_kernel k;
    const int64_t *P;
    char *W;
    const char *K;
    void *const *I;
    void *const *O;
} td_emu;

#include "tapediff_math.h"

static void td_emu_sync(void) {
    int t = td_emu.current;
    td_emu.state[t] = TD_EMU_WAITING;
    swapcontext(&td_emu.ctx[t], &td_emu.main);
}

static void td_emu_thread(void) {
    td_emu.k(td_emu.P, td_emu.W, td_emu.K, td_emu.I, td_emu.O);
    td_emu.state[td_emu.current] = TD_EMU_DONE;
    /* returning resumes td_emu.main (uc_link) */
}

static int td_emu_run(td_emu_kernel k, int64_t blocks, int reverse, const int64_t *P,
                      char *W, const char *K, void *const *I, void *const *O) {
    td_emu.reverse = reverse;
    td_emu.k = k; td_emu.P = P; td_emu.W = W; td_emu.K = K; td_emu.I = I; td_emu.O = O;
    gridDim.x = blocks;
    blockDim.x = TD_BLOCK;
    for (int t = 0; t < TD_BLOCK; t++)
        if (!td_emu.stack[t] && !(td_emu.stack[t] = (char *)malloc(TD_EMU_STACK)))
            return -1;                                   /* TD_NO_MEMORY */
    for (int64_t b = 0; b < blocks; b++) {
        blockIdx.x = b;
        for (int t = 0; t < TD_BLOCK; t++) {
            getcontext(&td_emu.ctx[t]);
            td_emu.ctx[t].uc_stack.ss_sp = td_emu.stack[t];
            td_emu.ctx[t].uc_stack.ss_size = TD_EMU_STACK;
            td_emu.ctx[t].uc_link = &td_emu.main;
            makecontext(&td_emu.ctx[t], td_emu_thread, 0);
            td_emu.state[t] = TD_EMU_READY;
        }
        for (;;) {                         /* one barrier interval per turn */
            int done = 0;
            for (int i = 0; i < TD_BLOCK; i++) {
                int t = td_emu.reverse ? TD_BLOCK - 1 - i : i;
                if (td_emu.state[t] != TD_EMU_READY)
                    continue;
                td_emu.current = t;
                threadIdx.x = t;
                swapcontext(&td_emu.main, &td_emu.ctx[t]);
            }
            for (int t = 0; t < TD_BLOCK; t++)
                done += td_emu.state[t] == TD_EMU_DONE;
            if (done == TD_BLOCK)
                break;
            if (done)
                return TD_EMU_DIVERGED;   /* (the waiting fibers are dropped) */
            for (int t = 0; t < TD_BLOCK; t++)
                td_emu.state[t] = TD_EMU_READY;
        }
    }
    return 0;
}
#endif
#endif
