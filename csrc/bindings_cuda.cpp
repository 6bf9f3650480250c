// pybind11 face of the CUDA kernels (module mets_fast._cuda): device pointers and the stream
// arrive as integers from mets_fast/loss.py, which allocates every buffer and validates input.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "contrastive_cuda.h"

namespace py = pybind11;
namespace mc = mets::cuda;

namespace {

template <class T> T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

mc::Pair pair(uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
              uintptr_t norm_a, uintptr_t norm_b, float scale, bool normalize, uintptr_t stream) {
    return {ptr<const void>(a), ptr<const void>(b), rows,   cols,      dim,
            dtype,              ptr<float>(norm_a), ptr<float>(norm_b), scale, normalize,
            ptr<void>(stream)};
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "CUDA kernels of mets_fast: fused normalised similarity and contrastive losses.";
    m.def("device_count", &mc::device_count);
    m.def("status", &mc::runtime_status);
    m.def(
        "loss_forward",
        [](uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
           uintptr_t norm_a, uintptr_t norm_b, float scale, bool normalize, uintptr_t stream,
           int64_t offset, bool symmetric, uintptr_t lse_row, uintptr_t lse_col, uintptr_t pos,
           uintptr_t out) {
            py::gil_scoped_release release;
            mc::loss_forward(pair(a, b, rows, cols, dim, dtype, norm_a, norm_b, scale, normalize,
                                  stream),
                             offset, symmetric, ptr<float>(lse_row), ptr<float>(lse_col),
                             ptr<float>(pos), ptr<float>(out));
        });
    m.def(
        "loss_backward",
        [](uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
           uintptr_t norm_a, uintptr_t norm_b, float scale, bool normalize, uintptr_t stream,
           int64_t offset, bool symmetric, uintptr_t lse_row, uintptr_t lse_col, float grad,
           uintptr_t g_rows, uintptr_t g_cols, uintptr_t ds_rows, uintptr_t da, uintptr_t db,
           uintptr_t dscale) {
            py::gil_scoped_release release;
            mc::loss_backward(pair(a, b, rows, cols, dim, dtype, norm_a, norm_b, scale, normalize,
                                   stream),
                              offset, symmetric, ptr<const float>(lse_row),
                              ptr<const float>(lse_col), grad, ptr<float>(g_rows),
                              ptr<float>(g_cols), ptr<float>(ds_rows), ptr<void>(da),
                              ptr<void>(db), ptr<float>(dscale));
        });
    m.def("similarity_forward",
          [](uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
             uintptr_t norm_a, uintptr_t norm_b, float scale, bool normalize, uintptr_t stream,
             uintptr_t out) {
              py::gil_scoped_release release;
              mc::similarity_forward(pair(a, b, rows, cols, dim, dtype, norm_a, norm_b, scale,
                                          normalize, stream),
                                     ptr<void>(out));
          });
    m.def("similarity_backward",
          [](uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
             uintptr_t norm_a, uintptr_t norm_b, float scale, bool normalize, uintptr_t stream,
             uintptr_t grad_out, uintptr_t g_rows, uintptr_t g_cols, uintptr_t ds_rows,
             uintptr_t da, uintptr_t db, uintptr_t dscale) {
              py::gil_scoped_release release;
              mc::similarity_backward(pair(a, b, rows, cols, dim, dtype, norm_a, norm_b, scale,
                                           normalize, stream),
                                      ptr<const void>(grad_out), ptr<float>(g_rows),
                                      ptr<float>(g_cols), ptr<float>(ds_rows), ptr<void>(da),
                                      ptr<void>(db), ptr<float>(dscale));
          });
}
