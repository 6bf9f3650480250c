// SIMD vectors for the CPU kernels, written with the GCC/Clang vector extensions so that one
// source serves every instruction set: each ISA translation unit is compiled with its own -m flags
// and the vectors take that unit's widest registers (AVX-512: 64 bytes, AVX2: 32, otherwise 16).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "contrastive.h"

#if defined(__AVX512F__)
#define METS_VEC_BYTES 64
#elif defined(__AVX2__)
#define METS_VEC_BYTES 32
#else
#define METS_VEC_BYTES 16
#endif

namespace mets {
namespace METS_ISA {

template <class T> struct Simd;

template <> struct Simd<float> {
    typedef float V __attribute__((vector_size(METS_VEC_BYTES)));
    typedef int32_t I __attribute__((vector_size(METS_VEC_BYTES)));
    static constexpr int W = METS_VEC_BYTES / 4;
};
template <> struct Simd<double> {
    typedef double V __attribute__((vector_size(METS_VEC_BYTES)));
    typedef int64_t I __attribute__((vector_size(METS_VEC_BYTES)));
    static constexpr int W = METS_VEC_BYTES / 8;
};

template <class T> using vec = typename Simd<T>::V;

template <class T> inline vec<T> load(const T* p) {
    vec<T> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <class T> inline void store(T* p, vec<T> v) { std::memcpy(p, &v, sizeof v); }
// x - 0 (unlike x + 0) is an identity for every x, -0 included, so this folds into a broadcast.
template <class T> inline vec<T> splat(T x) { return x - vec<T>{}; }
template <class V> inline V vmax(V a, V b) { return a > b ? a : b; }

template <class T> inline T hsum(vec<T> v) {
    T s = 0;
    for (int i = 0; i < Simd<T>::W; ++i) s += v[i];
    return s;
}
template <class T> inline T hmax(vec<T> v) {
    T m = v[0];
    for (int i = 1; i < Simd<T>::W; ++i) m = m > v[i] ? m : v[i];
    return m;
}

// exp() for vectors: range reduction x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2),
// a polynomial for exp(r), and 2^n built in the exponent bits.  Arguments below the smallest
// normal result give exactly 0 (the kernels only take exp of non-positive numbers, and a flushed
// denormal changes no sum).  Accuracy: about 1 ulp in float, 2 ulp in double.
#if defined(__AVX512F__)
// AVX-512 has instructions for the two costly steps: rounding (vrndscaleps) and the 2^n scaling
// (vscalefps); same reduction and polynomial as below, in about half the instructions.
inline vec<float> vexp(vec<float> x) {
    const __m512 xv = __m512(x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xv, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xv);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    // Results below the smallest normal float are 0, as in the portable version.
    const __mmask16 keep = _mm512_cmp_ps_mask(xv, _mm512_set1_ps(-87.33654f), _CMP_GE_OQ);
    return vec<float>(_mm512_maskz_scalef_ps(keep, p, n));
}
#else
inline vec<float> vexp(vec<float> x) {
    typedef Simd<float>::I I;
    const vec<float> lo = splat(-87.33654f), hi = splat(88.7f);
    vec<float> xc = vmax(x, lo);
    xc = xc < hi ? xc : hi;
    // Round to nearest with the 1.5 * 2^23 trick (exact for |x log2 e| < 2^22).
    const vec<float> shifter = splat(12582912.0f);
    vec<float> n = (xc * 1.44269504088896341f + shifter) - shifter;
    vec<float> r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    vec<float> p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    I e = (__builtin_convertvector(n, I) + 127) << 23;
    vec<float> scale;
    std::memcpy(&scale, &e, sizeof scale);
    vec<float> y = p * scale;
    return x < lo ? vec<float>{} : y;
}
#endif

inline vec<double> vexp(vec<double> x) {
    typedef Simd<double>::I I;
    const vec<double> lo = splat(-708.3), hi = splat(709.7);
    vec<double> xc = vmax(x, lo);
    xc = xc < hi ? xc : hi;
    const vec<double> shifter = splat(6755399441055744.0);  // 1.5 * 2^52
    vec<double> n = (xc * 1.4426950408889634074 + shifter) - shifter;
    vec<double> r = xc - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6;
    // Taylor series to r^12: the remainder is below 2e-17 for |r| <= ln2/2.
    vec<double> p = splat(1.0 / 479001600.0);
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * (r * r) + r + 1.0;
    I e = (__builtin_convertvector(n, I) + 1023) << 52;
    vec<double> scale;
    std::memcpy(&scale, &e, sizeof scale);
    vec<double> y = p * scale;
    return x < lo ? vec<double>{} : y;
}

// The scalar exponential used for the few values computed outside vector loops: lane 0 of the
// vector version, so that a value is rounded the same way wherever it is computed.
template <class T> inline T sexp(T x) { return vexp(splat<T>(x))[0]; }

struct VExp {
    template <class V> V operator()(V x) const { return vexp(x); }
};

}  // namespace METS_ISA
}  // namespace mets
