/* tapediff_cuda.cuh: the prelude of every generated CUDA module.
 *
 * Kernels take the same tables as the C entry points (P: sizes, strides and
 * offsets; K: constants; W: the workspace; I/O: device tables of the input and
 * output pointers), all in device memory. Compiled by NVRTC through CuPy at
 * run time, and by `nvcc --ptx` in the tests (no GPU needed for that).
 */
#ifndef TAPEDIFF_CUDA_CUH
#define TAPEDIFF_CUDA_CUH
#ifdef __CUDACC_RTC__
/* NVRTC has no C library headers */
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
#define INT64_MIN (-9223372036854775807LL - 1)
#else
#include <stdint.h>
#endif
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

/* every generated kernel (tapediff_cuda_emu.h defines it for the CPU) */
#define TD_KERNEL extern "C" __global__

/* Threads per block of every kernel, and blocks of the first pass of a full
 * reduction. Fixed numbers (not the device's) so that a reduction adds in
 * the same order on every GPU: results are deterministic, no atomics. */
#define TD_BLOCK 256
#define TD_RGRID 1024

#include "tapediff_math.h"
#endif
