// See gpu.h. The device computes exactly what sk_matmul_ref (kernels_ref.c) computes: x is
// quantized here by that file's own sk_quantize, and the kernel below is its Q8_0 and Q4_1
// loops with every float operation written as a round-to-nearest intrinsic, in the same order.
// sietch_gpu compiles CUDA C with NVRTC's default options (--fmad=true), which may fuse a
// plain `a * b + c` into one FMA with a single rounding; __fmul_rn and __fadd_rn are never
// fused, so each product and sum is rounded to f32 as in the C (built -ffp-contract=off).
#include "gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

// The exact arithmetic, included rather than copied: sk_quantize and the sk_xblock layout
// ({float d, float s, int16 q[32]}: 72 bytes) are the ones the CPU builds use.
#include "kernels_ref.c"

#define GPU(name) __attribute__((import_module("sietch_gpu"), import_name(#name)))
GPU(device_count) int32_t gpu_device_count(void);
GPU(alloc) int32_t gpu_alloc(int64_t bytes, int32_t *handle);
GPU(free) int32_t gpu_free(int32_t handle);
GPU(upload) int32_t gpu_upload(int32_t h, int64_t off, const void *src, int32_t len);
GPU(download) int32_t gpu_download(int32_t h, int64_t off, void *dst, int32_t len);
GPU(load_kernel) int32_t gpu_load_kernel(int32_t kind, const char *src, int32_t src_len,
                                         const char *name, int32_t name_len, int32_t *kernel);
GPU(launch) int32_t gpu_launch(int32_t kernel, const uint32_t *grid, const uint32_t *block,
                               int32_t shared, const void *args, int32_t nargs);

// CUDA C for NVRTC (sietch_gpu load_kernel kind 1). One thread per output y[j][r].
static const char KERNEL_SRC[] =
    "struct xblock { float d; float s; short q[32]; };\n"
    "__device__ float half_to_float(const unsigned char *p) {\n"
    "  unsigned int h = (unsigned int)p[0] | ((unsigned int)p[1] << 8);\n"
    "  unsigned int sign = (h & 0x8000u) << 16, e = (h >> 10) & 31u, man = h & 0x3ffu, bits;\n"
    "  if (e == 0u && man == 0u) bits = sign;\n"
    "  else if (e == 0u) {\n"
    "    unsigned int s = 0u;\n"
    "    while (!(man & 0x400u)) { man <<= 1; s++; }\n"
    "    bits = sign | ((113u - s) << 23) | ((man & 0x3ffu) << 13);\n"
    "  } else if (e == 31u) bits = sign | 0x7f800000u | (man << 13);\n"
    "  else bits = sign | ((e + 112u) << 23) | (man << 13);\n"
    "  return __uint_as_float(bits);\n"
    "}\n"
    "extern \"C\" __global__ void sk_matmul_q(const unsigned char *w, int wtype, int rows,\n"
    "    int cols, const xblock *x, int n, float *y) {\n"
    "  long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (t >= (long long)rows * n) return;\n"
    "  int r = (int)(t % rows), j = (int)(t / rows), nb = cols / 32;\n"
    "  const xblock *xj = x + (long long)j * nb;\n"
    "  float acc = 0.0f;\n"
    "  if (wtype == 8) {\n"
    "    const unsigned char *row = w + (long long)r * nb * 34;\n"
    "    for (int b = 0; b < nb; b++) {\n"
    "      const unsigned char *blk = row + b * 34;\n"
    "      int isum = 0;\n"
    "      for (int i = 0; i < 32; i++) isum += (int)(signed char)blk[2 + i] * (int)xj[b].q[i];\n"
    "      acc = __fadd_rn(acc, __fmul_rn(__int2float_rn(isum),\n"
    "                                     __fmul_rn(half_to_float(blk), xj[b].d)));\n"
    "    }\n"
    "  } else {\n"
    "    const unsigned char *row = w + (long long)r * nb * 20;\n"
    "    for (int b = 0; b < nb; b++) {\n"
    "      const unsigned char *blk = row + b * 20;\n"
    "      int isum = 0;\n"
    "      for (int i = 0; i < 16; i++) {\n"
    "        isum += (int)(blk[4 + i] & 15) * (int)xj[b].q[i];\n"
    "        isum += (int)(blk[4 + i] >> 4) * (int)xj[b].q[i + 16];\n"
    "      }\n"
    "      acc = __fadd_rn(acc, __fadd_rn(__fmul_rn(__int2float_rn(isum),\n"
    "                                               __fmul_rn(half_to_float(blk), xj[b].d)),\n"
    "                                     __fmul_rn(half_to_float(blk + 2), xj[b].s)));\n"
    "    }\n"
    "  }\n"
    "  y[(long long)j * rows + r] = acc;\n"
    "}\n";
static const char KERNEL_NAME[] = "sk_matmul_q";

enum { ARG_BUFFER = 0, ARG_I32 = 1 };
struct arg {
    uint32_t tag, pad;
    uint64_t value;
};

#define STAGING (4u << 20)  // bytes of a tensor read and uploaded at a time

static int32_t kernel;
static int32_t hx, hy;           // device x blocks and y, grown on demand
static int64_t hx_bytes, hy_bytes;
static sk_xblock *xq;            // x quantized, in guest memory
static size_t xq_blocks;
static int32_t *owned;           // every buffer this file allocated, for gpu_release
static size_t n_owned, cap_owned;

static int32_t alloc_buffer(int64_t bytes, int32_t *h) {
    if (n_owned == cap_owned) {
        size_t cap = cap_owned ? 2 * cap_owned : 64;
        int32_t *p = realloc(owned, cap * sizeof *p);
        if (!p) return -3;
        owned = p, cap_owned = cap;
    }
    int32_t rc = gpu_alloc(bytes, h);
    if (rc == 0) owned[n_owned++] = *h;
    return rc;
}

static int32_t free_buffer(int32_t h) {
    for (size_t i = 0; i < n_owned; i++)
        if (owned[i] == h) {
            owned[i] = owned[--n_owned];
            break;
        }
    return gpu_free(h);
}

void gpu_release(void) {
    for (size_t i = 0; i < n_owned; i++) gpu_free(owned[i]);
    n_owned = 0;
    hx = hy = 0;
    hx_bytes = hy_bytes = 0;
}

int gpu_init(void) {
    int32_t devices = gpu_device_count();
    if (devices <= 0) {
        fprintf(stderr, "llm: GPU path off (sietch_gpu.device_count: %s): matrix products by "
                        "the host kernels\n", devices == -1 ? "no device" : "an error");
        return -1;
    }
    int32_t rc = gpu_load_kernel(1, KERNEL_SRC, (int32_t)strlen(KERNEL_SRC), KERNEL_NAME,
                                 (int32_t)strlen(KERNEL_NAME), &kernel);
    if (rc) {
        fprintf(stderr, "llm: GPU path off (sietch_gpu.load_kernel: %d): matrix products by the "
                        "host kernels\n", rc);
        return -1;
    }
    return 0;
}

int gpu_upload_tensor(int fd, uint64_t offset, uint64_t bytes, int32_t *handle) {
    static uint8_t *staging;
    if (!staging && !(staging = malloc(STAGING))) return fprintf(stderr, "llm: out of memory\n"), -1;
    int32_t h, rc = alloc_buffer((int64_t)bytes, &h);
    if (rc) return fprintf(stderr, "llm: sietch_gpu.alloc of %llu bytes: %d\n",
                           (unsigned long long)bytes, rc), -1;
    for (uint64_t done = 0; done < bytes;) {
        uint64_t len = bytes - done < STAGING ? bytes - done : STAGING;
        if (gguf_read_at(fd, offset + done, staging, (size_t)len))
            return fprintf(stderr, "llm: cannot read a tensor for the GPU\n"), -1;
        if ((rc = gpu_upload(h, (int64_t)done, staging, (int32_t)len)))
            return fprintf(stderr, "llm: sietch_gpu.upload: %d\n", rc), -1;
        done += len;
    }
    *handle = h;
    return 0;
}

// Makes *h a device buffer of at least `bytes` bytes.
static int32_t ensure(int32_t *h, int64_t *have, int64_t bytes) {
    if (*have >= bytes) return 0;
    if (*h) free_buffer(*h), *h = 0, *have = 0;
    int32_t rc = alloc_buffer(bytes, h);
    if (rc == 0) *have = bytes;
    return rc;
}

int gpu_matmul(int32_t w, int32_t wtype, int32_t rows, int32_t cols, const float *x, int32_t n,
               float *y) {
    if (rows <= 0 || cols <= 0 || n <= 0 || cols % SK_BLOCK || (wtype != SK_Q4_1 && wtype != SK_Q8_0))
        return -5;
    size_t nb = (size_t)cols / SK_BLOCK, blocks = nb * (size_t)n;
    int64_t xbytes = (int64_t)(blocks * sizeof(sk_xblock)), ybytes = (int64_t)rows * n * 4;
    if (xbytes > INT32_MAX || ybytes > INT32_MAX) return -5;
    if (blocks > xq_blocks) {
        sk_xblock *p = realloc(xq, blocks * sizeof *p);
        if (!p) return -3;
        xq = p, xq_blocks = blocks;
    }
    // The same quantization, in the same order, as sk_matmul_ref.
    for (size_t j = 0; j < (size_t)n; j++)
        for (size_t b = 0; b < nb; b++)
            sk_quantize(x + j * (size_t)cols + b * SK_BLOCK, &xq[j * nb + b]);
    int32_t rc;
    if ((rc = ensure(&hx, &hx_bytes, xbytes)) || (rc = ensure(&hy, &hy_bytes, ybytes)) ||
        (rc = gpu_upload(hx, 0, xq, (int32_t)xbytes)))
        return rc;
    struct arg args[7] = {
        {ARG_BUFFER, 0, (uint64_t)w},
        {ARG_I32, 0, (uint32_t)wtype},
        {ARG_I32, 0, (uint32_t)rows},
        {ARG_I32, 0, (uint32_t)cols},
        {ARG_BUFFER, 0, (uint64_t)hx},
        {ARG_I32, 0, (uint32_t)n},
        {ARG_BUFFER, 0, (uint64_t)hy},
    };
    uint64_t threads = (uint64_t)rows * (uint64_t)n;
    uint32_t block[3] = {256, 1, 1}, grid[3] = {(uint32_t)((threads + 255) / 256), 1, 1};
    if ((rc = gpu_launch(kernel, grid, block, 0, args, 7))) return rc;
    return gpu_download(hy, 0, y, (int32_t)ybytes);  // (waits for the launch)
}
