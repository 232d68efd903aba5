// The `sietch_kernels` host module: deterministic matrix products over weights that stay in
// the host (an `/input` file the guest opened), so that a language model runs at close to
// native speed in the sandbox and concurrent jobs share one read-only copy of the weights.
//
// This header is the ABI. `kernels_ref.c` is the exact arithmetic, in C: the native build of a
// guest links it, and the host's Rust implementation (crate `sietch-kernels`) must give the
// same bits for every input (a test compares them). docs/ai.md explains the design.
//
//   int32_t matmul(int32_t fd, int64_t offset, int32_t wtype, int32_t rows, int32_t cols,
//                  const float *x, int32_t n, float *y);
//
// W is a `rows` x `cols` matrix stored row-major at byte `offset` of the file open on `fd`
// (an `/input` file; GGUF calls this a tensor of dims [cols, rows]). x is `n` vectors of
// `cols` floats, y receives `n` vectors of `rows` floats: y[j][r] = W[r] . x[j].
// Returns 0 or a WASI errno: EBADF (fd is not an open input file), EINVAL (rows, cols or n
// not positive, cols not a multiple of the block size, the tensor reaching past the file's
// end, x and y overlapping), EFAULT (x or y outside guest memory), ENOTSUP (unknown wtype).
// Fuel: a host call's charge plus rows * cols * n / KERNEL_MACS_PER_FUEL.
#ifndef SIETCH_KERNELS_H
#define SIETCH_KERNELS_H
#include <stdint.h>

// Weight types, numbered as GGUF numbers them.
#define SK_F32 0
#define SK_Q4_1 3
#define SK_Q8_0 8
// Elements per quantized block (Q4_1 and Q8_0).
#define SK_BLOCK 32
// Bytes per block: Q4_1 = f16 d, f16 m, 16 bytes of nibbles; Q8_0 = f16 d, 32 int8.
#define SK_Q4_1_BYTES 20
#define SK_Q8_0_BYTES 34

// The exact arithmetic, on weights in memory (kernels_ref.c). `w` points at the tensor.
int sk_matmul_ref(const uint8_t *w, int32_t wtype, int32_t rows, int32_t cols, const float *x,
                  int32_t n, float *y);

#ifdef __wasm__
// The host's implementation, by file descriptor and offset.
__attribute__((import_module("sietch_kernels"), import_name("matmul"))) int32_t
sk_matmul_host(int32_t fd, int64_t offset, int32_t wtype, int32_t rows, int32_t cols,
               const float *x, int32_t n, float *y);
#endif
#endif
