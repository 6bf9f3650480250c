// The math shared by the CPU and CUDA back ends of the fused similarity / contrastive kernels.
//
// Notation (docs/design.md, "Kernel interface"): a (Br, D) and b (Bc, D) are the inputs, x = a/|a| and
// y = b/|b| their normalised rows, s the logit scale, S = s X Y^T the logits.  Row i's positive
// column is offset + i.  The losses are
//   symmetric (CLIP):  L = (sum_i LSE_row(i) + sum_j LSE_col(j) - 2 sum_i S(i,i)) / (2B)
//   one direction:     L = (sum_i LSE_row(i) - sum_i S(i, offset+i)) / Br
// and both have   dL/dS(i,j) = wr P(i,j) + wc Q(i,j) - wpos [j == offset+i]
// with P the row softmax and Q the column softmax of S.  With report groups (integer ids, equal
// ids = the same report), the pairs excluded() names are left out of both softmaxes: their
// logits count as -inf, so P, Q and dL/dS are 0 there.  Nothing here allocates or loops over a
// whole matrix: the back ends own the tiling; these are the per-element and per-row rules, written
// once so that both back ends compute exactly the same quantities.
//
// Every function is a template over the value type V so that the CPU back end can pass SIMD
// vectors (GCC/Clang vector extensions) and the CUDA back end plain floats; `Exp` is the back end's
// exponential (a polynomial on the CPU, __expf on the GPU).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define METS_HD __host__ __device__ __forceinline__
#else
#define METS_HD inline
#endif

// Each CPU ISA translation unit is compiled with its own METS_ISA so that the inline functions
// below, instantiated with AVX-512 code in one unit and SSE2 code in another, never collide at
// link time (the linker would otherwise keep one copy for all callers).
#ifndef METS_ISA
#define METS_ISA portable
#endif

namespace mets {
namespace METS_ISA {

// The epsilon F.normalize uses: rows shorter than this are divided by it instead of their norm.
constexpr double kNormEps = 1e-12;

// Logits of padded rows and columns are set to this value before the log-sum-exp: exp() of it
// minus any real maximum is exactly 0, and unlike -inf it never produces inf - inf = NaN.
template <class T> struct Masked;
template <> struct Masked<float> { static constexpr float value = -1e30f; };
template <> struct Masked<double> { static constexpr double value = -1e300; };

// Weights of the two softmaxes and of the positive pairs in dL/dS, for a loss that is multiplied
// by `grad` (the incoming gradient of the scalar loss).
struct LossWeights {
    double row, col, pos;
};

METS_HD LossWeights loss_weights(bool symmetric, int64_t rows, double grad) {
    if (symmetric) {
        const double w = grad / (2.0 * double(rows));
        return {w, w, 2.0 * w};
    }
    return {grad / double(rows), 0.0, grad / double(rows)};
}

// Column j of the logits is the positive of row j - offset (when that row exists).
METS_HD bool is_positive(int64_t row, int64_t col, int64_t offset) { return col == row + offset; }

// Report-aware negatives: a pair of the same group that is not the row's own positive is neither
// positive nor negative.  The positive itself is never left out, so every row and column keeps
// at least one logit; without groups (null) nothing is left out.
METS_HD bool excluded(const int64_t* row_groups, const int64_t* col_groups, int64_t row,
                      int64_t col, int64_t offset) {
    return row_groups && row_groups[row] == col_groups[col] && !is_positive(row, col, offset);
}

// 1 / max(|a|, eps): the factor that normalises a row (or 1 when normalisation is off).
template <class T> METS_HD T inv_norm(T norm, bool normalize) {
    if (!normalize) return T(1);
    return T(1) / (norm > T(kNormEps) ? norm : T(kNormEps));
}

// Gradient of x = a / max(|a|, eps) with respect to a, for one element of the row, given the
// incoming gradient g, the normalised value x, g.x over the row and the row's 1/max(|a|, eps).
// Above eps this is (g - (g.x) x) / |a|; below, the division is by the constant eps, whose
// gradient is g / eps (what F.normalize differentiates).
template <class V, class T> METS_HD V normalize_backward(V g, V x, T gx_dot, T inv, bool above_eps) {
    return above_eps ? (g - x * gx_dot) * inv : g * inv;
}

// With normalised rows every logit lies in [-s, s], so exp(S - s) lies in [exp(-2s), 1] and a
// fixed shift by s is exact as long as exp(-2s) stays a normal number (s <= 40 in float32,
// s <= 350 in float64).  Then one exponential per logit serves the row and the column sums, and
// dL/dS = exp(S - s) (w_row exp(s - lse_row) + w_col exp(s - lse_col)) needs no second one.
// Larger scales, or logits without normalisation, need the running maxima below.
template <class T> struct FixedShift;
template <> struct FixedShift<float> { static constexpr double max_scale = 40.0; };
template <> struct FixedShift<double> { static constexpr double max_scale = 350.0; };

template <class T> METS_HD bool fixed_shift_ok(double scale, bool normalize) {
    return normalize && scale <= FixedShift<T>::max_scale;
}

// One step of the online log-sum-exp: the running (max m, sum l) absorbs a block whose maximum
// is `block_max`; returns the factor by which the old sum must be scaled and updates m.  The sum
// of exp(v - m) over the block is then added by the caller.  Running maxima are kept because a
// fixed shift underflows float32 once s reaches 100.
template <class V, class Exp> METS_HD V lse_rescale(V& m, V block_max, Exp exp) {
    V m_new = m > block_max ? m : block_max;
    V factor = exp(m - m_new);
    m = m_new;
    return factor;
}

// dL/dS for one logit (before the positive-pair correction), from the final log-sum-exps.
template <class V, class W, class Exp>
METS_HD V logit_grad(V logit, V lse_row, V lse_col, W w_row, W w_col, Exp exp) {
    return exp(logit - lse_row) * w_row + exp(logit - lse_col) * w_col;
}

}  // namespace METS_ISA
}  // namespace mets
