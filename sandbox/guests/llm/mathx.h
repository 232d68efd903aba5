// Elementary functions written with basic IEEE operations only (+ - * /, conversions and an
// exactly rounded square root), so that every host computes the same bits: libm's exp, sin or
// pow differ between libraries, these do not. Each is evaluated in double and rounded once to
// float, which makes them accurate to about half an ulp of float.
#ifndef LLM_MATHX_H
#define LLM_MATHX_H

float mx_exp(float x);            // e^x
double mx_log(double x);          // natural logarithm, x > 0
double mx_pow(double a, double b);  // a^b = e^(b ln a), a > 0
void mx_sincos(double a, float *s, float *c);  // sin a, cos a, |a| < 2^20
static inline float mx_sqrt(float x) { return __builtin_sqrtf(x); }  // IEEE sqrt: exact rounding

#endif
