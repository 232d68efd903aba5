// The GPU benchmark's job (sandbox/benches/gpu.rs): loads the CUDA C kernel given as input
// file "kernel.cu" through sietch_gpu, allocates N floats, launches `spin(x, N, ITERS)`
// LAUNCHES times on grid ceil(N/256) x 256 threads, synchronizes and prints "ok". With
// LAUNCHES = 0 it does everything but the launches: the benchmark subtracts that run.
// Usage: job LAUNCHES ITERS N. Exits 3 printing "no device" where the job has no GPU.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPU(name) __attribute__((import_module("sietch_gpu"), import_name(#name)))
GPU(device_count) int32_t gpu_device_count(void);
GPU(alloc) int32_t gpu_alloc(int64_t bytes, int32_t *handle);
GPU(load_kernel) int32_t gpu_load_kernel(int32_t kind, const char *src, int32_t src_len,
                                         const char *name, int32_t name_len, int32_t *kernel);
GPU(launch) int32_t gpu_launch(int32_t kernel, const uint32_t *grid, const uint32_t *block,
                               int32_t shared, const void *args, int32_t nargs);
GPU(synchronize) int32_t gpu_synchronize(void);

struct arg { uint32_t tag, pad; uint64_t value; };

static char src[1 << 16];

#define CHECK(e) do { int32_t rc = (e); if (rc != 0) { printf("%s failed: %d\n", #e, rc); return 4; } } while (0)

int main(int argc, char **argv) {
    if (argc != 4) { puts("usage: job LAUNCHES ITERS N"); return 2; }
    long launches = atol(argv[1]), iters = atol(argv[2]), n = atol(argv[3]);
    if (gpu_device_count() < 0) { puts("no device"); return 3; }
    FILE *f = fopen("/input/kernel.cu", "r");
    if (!f) { puts("no /input/kernel.cu"); return 2; }
    size_t len = fread(src, 1, sizeof src - 1, f);
    fclose(f);
    int32_t kernel, x;
    CHECK(gpu_load_kernel(1, src, (int32_t)len, "spin", 4, &kernel));
    CHECK(gpu_alloc((int64_t)n * 4, &x));
    struct arg args[3] = {{0, 0, (uint64_t)x}, {1, 0, (uint32_t)n}, {1, 0, (uint32_t)iters}};
    uint32_t grid[3] = {(uint32_t)((n + 255) / 256), 1, 1}, block[3] = {256, 1, 1};
    for (long i = 0; i < launches; i++) CHECK(gpu_launch(kernel, grid, block, 0, args, 3));
    CHECK(gpu_synchronize());
    puts("ok");
    return 0;
}
