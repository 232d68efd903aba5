// SAXPY and a matrix multiply on the GPU through the sietch_gpu host module.
// Exits 3 printing "no device" where the node has no GPU.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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
GPU(synchronize) int32_t gpu_synchronize(void);

struct arg { uint32_t tag, pad; uint64_t value; };

static const char *SRC =
    "extern \"C\" __global__ void saxpy(float a, const float *x, float *y, int n) {\n"
    "  int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = a * x[i] + y[i]; }\n"
    "extern \"C\" __global__ void matmul(const float *a, const float *b, float *c, int n) {\n"
    "  int r = blockIdx.y * blockDim.y + threadIdx.y, col = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (r < n && col < n) { float s = 0; for (int k = 0; k < n; k++) s += a[r*n+k] * b[k*n+col];\n"
    "  c[r*n+col] = s; } }\n";

#define N 4096
#define M 64
static float x[N], y[N], a[M * M], b[M * M], c[M * M];

#define CHECK(e) do { int32_t rc = (e); if (rc != 0) { printf("%s failed: %d\n", #e, rc); return 4; } } while (0)

int main(void) {
    if (gpu_device_count() < 0) { puts("no device"); return 3; }
    int32_t saxpy, matmul, hx, hy, ha, hb, hc;
    CHECK(gpu_load_kernel(1, SRC, strlen(SRC), "saxpy", 5, &saxpy));
    CHECK(gpu_load_kernel(1, SRC, strlen(SRC), "matmul", 6, &matmul));
    for (int i = 0; i < N; i++) { x[i] = i; y[i] = 1; }
    CHECK(gpu_alloc(sizeof x, &hx)); CHECK(gpu_alloc(sizeof y, &hy));
    CHECK(gpu_upload(hx, 0, x, sizeof x)); CHECK(gpu_upload(hy, 0, y, sizeof y));
    float alpha = 2.0f; uint32_t abits; memcpy(&abits, &alpha, 4);
    struct arg sargs[4] = {{3, 0, abits}, {0, 0, (uint64_t)hx}, {0, 0, (uint64_t)hy}, {1, 0, N}};
    uint32_t grid[3] = {N / 256, 1, 1}, block[3] = {256, 1, 1};
    CHECK(gpu_launch(saxpy, grid, block, 0, sargs, 4));
    CHECK(gpu_download(hy, 0, y, sizeof y));
    for (int i = 0; i < N; i++) if (y[i] != 2.0f * i + 1) { printf("saxpy wrong at %d\n", i); return 5; }
    for (int i = 0; i < M * M; i++) { a[i] = (i % 13) * 0.5f; b[i] = (i % 7) - 3.0f; }
    CHECK(gpu_alloc(sizeof a, &ha)); CHECK(gpu_alloc(sizeof b, &hb)); CHECK(gpu_alloc(sizeof c, &hc));
    CHECK(gpu_upload(ha, 0, a, sizeof a)); CHECK(gpu_upload(hb, 0, b, sizeof b));
    struct arg margs[4] = {{0, 0, (uint64_t)ha}, {0, 0, (uint64_t)hb}, {0, 0, (uint64_t)hc}, {1, 0, M}};
    uint32_t mgrid[3] = {M / 16, M / 16, 1}, mblock[3] = {16, 16, 1};
    CHECK(gpu_launch(matmul, mgrid, mblock, 0, margs, 4));
    CHECK(gpu_synchronize());
    CHECK(gpu_download(hc, 0, c, sizeof c));
    for (int r = 0; r < M; r++) for (int col = 0; col < M; col++) {
        float s = 0; for (int k = 0; k < M; k++) s += a[r * M + k] * b[k * M + col];
        if (s != c[r * M + col]) { printf("matmul wrong at %d,%d\n", r, col); return 6; }
    }
    CHECK(gpu_free(hx)); CHECK(gpu_free(hy));
    if (gpu_free(hx) != -2) { puts("double free accepted"); return 7; }
    puts("ok");
    return 0;
}
