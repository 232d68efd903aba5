// Multiplies two N x N double matrices (argv[1], default 64) REPS times (argv[2]) and prints
// a checksum with full precision: any difference in float semantics shows.
#include <stdio.h>
#include <stdlib.h>
#include "kernel_timing.h"

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 64;
    int reps = argc > 2 ? atoi(argv[2]) : 1;
    if (n <= 0 || n > 1024) return 2;
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n),
           *c = malloc(sizeof(double) * n * n);
    if (!a || !b || !c) return 3;
    unsigned s = 12345;
    for (int i = 0; i < n * n; i++) {
        s = s * 1103515245u + 12345u; a[i] = (double)(s >> 8) / 16777216.0 - 0.5;
        s = s * 1103515245u + 12345u; b[i] = (double)(s >> 8) / 16777216.0 - 0.5;
    }
    kernel_start();
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) c[i * n + j] = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) {
                double x = a[i * n + k];
                for (int j = 0; j < n; j++) c[i * n + j] += x * b[k * n + j];
            }
        a[r % (n * n)] += c[(r * 7) % (n * n)] * 1e-9;
    }
    kernel_stop();
    double sum = 0;
    for (int i = 0; i < n * n; i++) sum += c[i] * (i % 7 + 1);
    printf("%.17g\n", sum);
    return 0;
}
