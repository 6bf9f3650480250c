// Entry points of the CPU back end.  contrastive_cpu.cpp is compiled once per instruction set
// (namespaces mets::avx512, mets::avx2, mets::portable); dispatch.cpp picks one at run time.
#pragma once

#include <cstdint>

namespace mets {

// The two operands of every kernel: a (rows, dim) and b (cols, dim), row-major and contiguous.
// Forward passes write the row norms into norm_a / norm_b; backward passes read them.
template <class T> struct Operands {
    const T* a;
    const T* b;
    int64_t rows, cols, dim;
    T* norm_a;
    T* norm_b;
    T scale;         // the logit scale s (a multiplier)
    bool normalize;  // divide rows by max(|row|, eps) first
    int threads;
    // Report groups of the rows and columns (null: none; the losses only).  The kernels compare
    // them as T, so ids must be exact in T: mets_fast/loss.py passes dense ids 0 .. rows+cols-1.
    const int64_t* group_a = nullptr;
    const int64_t* group_b = nullptr;
};

// loss_forward writes the logits S (rows x cols) to `logits` unless it is null; loss_backward
// then reads them from there instead of recomputing them, a quarter of its multiply-adds.
#define METS_DECLARE_CPU_KERNELS(ns)                                                               \
    namespace ns {                                                                                 \
    template <class T>                                                                             \
    double loss_forward(const Operands<T>& op, int64_t offset, bool symmetric, T* lse_row,         \
                        T* lse_col, T* logits);                                                    \
    template <class T>                                                                             \
    double loss_backward(const Operands<T>& op, int64_t offset, bool symmetric,                    \
                         const T* lse_row, const T* lse_col, const T* logits, double grad, T* da,  \
                         T* db);                                                                   \
    template <class T> void similarity_forward(const Operands<T>& op, T* out);                     \
    template <class T>                                                                             \
    double similarity_backward(const Operands<T>& op, const T* grad_out, T* da, T* db);            \
    }

METS_DECLARE_CPU_KERNELS(avx512)
METS_DECLARE_CPU_KERNELS(avx2)
METS_DECLARE_CPU_KERNELS(portable)

}  // namespace mets
