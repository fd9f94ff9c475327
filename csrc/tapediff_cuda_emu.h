/* tapediff_cuda_emu.h: run generated CUDA kernels on the CPU, for the tests.
 *
 * The kernels of tapediff/codegen/cuda.py compiled as plain C: a launch runs
 * the kernel once per block, in order, with ONE thread per block (TD_BLOCK 1),
 * so __syncthreads and the shared-memory trees are trivial. Grid-stride
 * loops, index arithmetic, the two-pass reductions, partial reductions,
 * stores, guards and the host steps are exercised as they are on a GPU;
 * what needs a real device is the block-level tree with many threads and
 * anything about concurrency (see docs/cuda-backend.md).
 */
#ifndef TAPEDIFF_CUDA_EMU_H
#define TAPEDIFF_CUDA_EMU_H
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct { int64_t x; } td_emu_dim;
static td_emu_dim blockIdx, threadIdx, blockDim, gridDim;

#define TD_KERNEL static
#define __shared__
#define __syncthreads() ((void)0)
#define TD_BLOCK 1
#define TD_RGRID 1024

#include "tapediff_math.h"

typedef void (*td_emu_kernel)(const int64_t *, char *, const char *, void *const *,
                              void *const *);

static int td_emu_run(td_emu_kernel k, int64_t blocks, const int64_t *P, char *W,
                      const char *K, void *const *I, void *const *O) {
    gridDim.x = blocks;
    blockDim.x = TD_BLOCK;
    threadIdx.x = 0;
    for (int64_t b = 0; b < blocks; b++) {
        blockIdx.x = b;
        k(P, W, K, I, O);
    }
    return 0;
}
#endif
