// Estimates pi from SAMPLES points (argv[1], default 1e6) of a xorshift generator seeded
// with argv[2], or, without it, from random_get (seeded by the sandbox from the job id).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "kernel_timing.h"

int main(int argc, char **argv) {
    long samples = argc > 1 ? atol(argv[1]) : 1000000;
    uint64_t s;
    if (argc > 2) s = strtoull(argv[2], 0, 10);
    else if (getentropy(&s, sizeof s) != 0) return 2;
    if (s == 0) s = 1;
    kernel_start();
    long inside = 0;
    for (long i = 0; i < samples; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        double x = (double)(s >> 11) / 9007199254740992.0;
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        double y = (double)(s >> 11) / 9007199254740992.0;
        inside += x * x + y * y <= 1.0;
    }
    kernel_stop();
    printf("pi ~ %.10f (%ld/%ld)\n", 4.0 * inside / samples, inside, samples);
    return 0;
}
