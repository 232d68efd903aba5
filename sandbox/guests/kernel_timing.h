// Timing for the native builds of the benchmark kernels (compiled with -DNATIVE_TIMING):
// the kernel's own CPU time is printed to stderr as "kernel_ns=N", so the benchmark compares
// kernel against kernel, without process start-up. Wasm builds time nothing (their clock is
// virtual); the host measures the CPU time of the whole job instead. CPU time on both sides:
// time spent waiting for a core on a shared machine is not counted.
#ifndef KERNEL_TIMING_H
#define KERNEL_TIMING_H
#ifdef NATIVE_TIMING
#include <stdio.h>
#include <time.h>
static struct timespec kernel_t0;
static void kernel_start(void) { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &kernel_t0); }
static void kernel_stop(void) {
    struct timespec t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    long long ns = (t1.tv_sec - kernel_t0.tv_sec) * 1000000000LL + (t1.tv_nsec - kernel_t0.tv_nsec);
    fprintf(stderr, "kernel_ns=%lld\n", ns);
}
#else
static void kernel_start(void) {}
static void kernel_stop(void) {}
#endif
#endif
