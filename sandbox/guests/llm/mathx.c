// See mathx.h. Range reduction, then a Taylor polynomial evaluated in a fixed order (Horner).
#include "mathx.h"

#include <stdint.h>
#include <string.h>

static const double LN2_HI = 6.93147180369123816490e-01;  // ln 2, upper bits (exact * k)
static const double LN2_LO = 1.90821492927058770002e-10;  // ln 2 - LN2_HI
static const double INV_LN2 = 1.44269504088896338700e+00;

static double round_half_even(double x) {
    // For |x| < 2^51: adding and subtracting 2^52 rounds to an integer in the default mode.
    const double big = 4503599627370496.0;
    if (x >= 0) return (x + big) - big;
    return -((-x + big) - big);
}

static double scale2(double x, int k) {  // x * 2^k for -1022 <= k <= 1023
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double p;
    memcpy(&p, &bits, 8);
    return x * p;
}

static double exp_d(double x) {  // e^x for -745 < x < 709
    double k = round_half_even(x * INV_LN2);
    double r = (x - k * LN2_HI) - k * LN2_LO;  // |r| <= 0.35
    // e^r = sum r^n / n!, n = 0..13: the remainder is below 2^-60.
    double p = 1.0 / 6227020800.0;
    static const double inv_fact[13] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                        1.0 / 362880.0,    1.0 / 40320.0,    1.0 / 5040.0,
                                        1.0 / 720.0,       1.0 / 120.0,      1.0 / 24.0,
                                        1.0 / 6.0,         1.0 / 2.0,        1.0,
                                        1.0};
    for (int i = 0; i < 13; i++) p = p * r + inv_fact[i];
    int ki = (int)k;
    if (ki < -1000) return scale2(scale2(p, ki + 1000), -1000);
    return scale2(p, ki);
}

float mx_exp(float x) {
    if (x != x) return x;
    if (x > 89.0f) return __builtin_inff();
    if (x < -104.0f) return 0.0f;
    return (float)exp_d((double)x);
}

double mx_log(double x) {
    if (!(x > 0.0)) return x == 0.0 ? -1.0 / 0.0 : 0.0 / 0.0;
    uint64_t bits;
    memcpy(&bits, &x, 8);
    int e = (int)((bits >> 52) & 0x7ff);
    if (e == 0) return mx_log(x * 18014398509481984.0) - 54.0 * 0.69314718055994530942;  // 2^54
    if (e == 0x7ff) return x;
    e -= 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;  // m in [1, 2)
    double m;
    memcpy(&m, &bits, 8);
    if (m > 1.4142135623730951) {
        m = m * 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1)/(m + 1), |s| < 0.172.
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, sum = 0.0;
    for (int n = 41; n >= 1; n -= 2) sum = sum * s2 + 1.0 / n;
    return ((double)e * LN2_HI + 2.0 * s * sum) + (double)e * LN2_LO;
}

double mx_pow(double a, double b) {
    double y = b * mx_log(a);
    if (y > 709.0) return 1.0 / 0.0;
    if (y < -745.0) return 0.0;
    return exp_d(y);
}

void mx_sincos(double a, float *s, float *c) {
    // a = k pi/2 + r, |r| <= pi/4, with pi/2 in three parts (Cody and Waite): exact for |k| < 2^20.
    static const double P1 = 1.5707963267341256e+00, P2 = 6.0771005065061922e-11,
                        P3 = 2.0222662487959506e-21;
    double k = round_half_even(a * 0.63661977236758134308);
    double r = ((a - k * P1) - k * P2) - k * P3, r2 = r * r;
    double sn = 0.0, cs = 0.0;  // Taylor to r^23 / r^22: remainder below 2^-70
    for (int n = 23; n >= 3; n -= 2) {
        double f = 1.0;
        for (int i = 2; i <= n; i++) f *= i;  // n! (exact up to 22!, then rounded)
        sn = (sn + ((n / 2) % 2 ? -1.0 : 1.0) / f) * r2;
    }
    sn = r + r * sn;
    for (int n = 22; n >= 2; n -= 2) {
        double f = 1.0;
        for (int i = 2; i <= n; i++) f *= i;
        cs = (cs + ((n / 2) % 2 ? -1.0 : 1.0) / f) * r2;
    }
    cs = 1.0 + cs;
    int q = (int)((int64_t)k & 3);
    double sv = q == 0 ? sn : q == 1 ? cs : q == 2 ? -sn : -cs;
    double cv = q == 0 ? cs : q == 1 ? -sn : q == 2 ? -cs : sn;
    *s = (float)sv;
    *c = (float)cv;
}
