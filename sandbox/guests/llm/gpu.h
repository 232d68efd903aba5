// The GPU path of the inference guest (build flag -DSK_GPU, wasm only): matrix products on a
// CUDA device through the sandbox's `sietch_gpu` host module, with exactly the arithmetic of
// kernels_ref.c, so that a GPU build gives the same bytes as the CPU builds (docs/ai.md,
// "The GPU path").
//
// x is quantized here, in the guest, by kernels_ref.c's own code (this file includes it) and
// uploaded as its blocks {float d, float s, int16 q[32]}; the device only sums each block's
// integer products in int32 and accumulates a row in float in block order with
// round-to-nearest intrinsics (__fmul_rn, __fadd_rn: NVRTC cannot contract them into FMA).
// One thread per output element. Weights are uploaded once per job.
#ifndef LLM_GPU_H
#define LLM_GPU_H
#include <stdint.h>

// Finds a device and loads the kernel. 0, or -1 with the reason on stderr (no device, NVRTC
// refused the kernel, ...): the caller then uses the host kernels for everything.
int gpu_init(void);
// Uploads `bytes` bytes of the file open on fd from `offset` (a Q4_1 or Q8_0 tensor) to a new
// device buffer, through a small staging buffer in guest memory. 0 and the buffer's handle in
// *handle, or -1 (message on stderr).
int gpu_upload_tensor(int fd, uint64_t offset, uint64_t bytes, int32_t *handle);
// y[j][r] = W[r] . x[j] (kernels.h) for the weights in buffer `w`. 0, or a negative
// sietch_gpu code.
int gpu_matmul(int32_t w, int32_t wtype, int32_t rows, int32_t cols, const float *x, int32_t n,
               float *y);
// Frees every buffer (after a failed upload: the host kernels take over).
void gpu_release(void);
#endif
