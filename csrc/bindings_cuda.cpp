// pybind11 face of the CUDA kernels (module mets_fast._cuda).  Device pointers and the stream
// arrive as integers from mets_fast/loss.py, which allocates every buffer (through PyTorch's
// caching allocator) and validates the user's input; the checks here are the CPU bindings':
// sizes, dtypes and the buffers each entry point needs, so a wrong call fails with a message
// instead of writing through a null or stray pointer.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "contrastive_cuda.h"

namespace py = pybind11;
namespace mc = mets::cuda;

namespace {

template <class T> T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

void need(uintptr_t p, const char* name) {
    if (!p) throw std::invalid_argument(std::string(name) + ": a device pointer is required");
}

mc::Pair pair(uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
              uintptr_t norm_a, uintptr_t norm_b, float scale, bool normalize,
              uintptr_t stream) {
    need(a, "a");
    need(b, "b");
    need(norm_a, "norm_a");
    need(norm_b, "norm_b");
    if (rows < 1 || cols < 1 || dim < 1)
        throw std::invalid_argument("rows, cols and dim must be positive, got " +
                                    std::to_string(rows) + ", " + std::to_string(cols) + ", " +
                                    std::to_string(dim));
    if (dtype != mc::kFloat32 && dtype != mc::kFloat16 && dtype != mc::kBFloat16)
        throw std::invalid_argument("dtype must be 0 (float32), 1 (float16) or 2 (bfloat16), got " +
                                    std::to_string(dtype));
    return {ptr<const void>(a), ptr<const void>(b), rows,   cols,      dim,
            dtype,              ptr<float>(norm_a), ptr<float>(norm_b), scale, normalize,
            ptr<void>(stream)};
}

// Report groups: both or neither (device pointers to rows and cols int64 ids).
void set_groups(mc::Pair& p, uintptr_t row_groups, uintptr_t col_groups) {
    if (!row_groups != !col_groups)
        throw std::invalid_argument("row_groups and col_groups: give both or neither");
    p.group_a = ptr<const int64_t>(row_groups);
    p.group_b = ptr<const int64_t>(col_groups);
}

void check_loss(const mc::Pair& p, int64_t offset, bool symmetric, uintptr_t lse_col) {
    if (symmetric && (p.rows != p.cols || offset != 0))
        throw std::invalid_argument("the symmetric loss takes square logits and offset 0");
    if (offset < 0 || offset > p.cols - p.rows)
        throw std::invalid_argument("offset must lie in [0, cols - rows], got " +
                                    std::to_string(offset));
    if (symmetric) need(lse_col, "lse_col");
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
           int64_t offset, bool symmetric, uintptr_t row_groups, uintptr_t col_groups,
           uintptr_t lse_row, uintptr_t lse_col, uintptr_t pos, uintptr_t out) {
            mc::Pair p =
                pair(a, b, rows, cols, dim, dtype, norm_a, norm_b, scale, normalize, stream);
            set_groups(p, row_groups, col_groups);
            check_loss(p, offset, symmetric, lse_col);
            need(lse_row, "lse_row");
            need(pos, "pos");
            need(out, "out");
            py::gil_scoped_release release;
            mc::loss_forward(p, offset, symmetric, ptr<float>(lse_row), ptr<float>(lse_col),
                             ptr<float>(pos), ptr<float>(out));
        },
        py::arg("a"), py::arg("b"), py::arg("rows"), py::arg("cols"), py::arg("dim"),
        py::arg("dtype"), py::arg("norm_a"), py::arg("norm_b"), py::arg("scale"),
        py::arg("normalize"), py::arg("stream"), py::arg("offset"), py::arg("symmetric"),
        py::arg("row_groups"), py::arg("col_groups"), py::arg("lse_row"), py::arg("lse_col"),
        py::arg("pos"), py::arg("out"),
        "Writes the norms, the log-sum-exps, the positive logits and the loss (out[0]).");
    m.def(
        "loss_backward",
        [](uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
           uintptr_t norm_a, uintptr_t norm_b, float scale, bool normalize, uintptr_t stream,
           int64_t offset, bool symmetric, uintptr_t row_groups, uintptr_t col_groups,
           uintptr_t lse_row, uintptr_t lse_col, float grad, uintptr_t g_rows, uintptr_t g_cols,
           uintptr_t ds_rows, uintptr_t da, uintptr_t db, uintptr_t dscale) {
            mc::Pair p =
                pair(a, b, rows, cols, dim, dtype, norm_a, norm_b, scale, normalize, stream);
            set_groups(p, row_groups, col_groups);
            check_loss(p, offset, symmetric, lse_col);
            for (auto [q, name] : {std::pair{lse_row, "lse_row"}, {g_rows, "g_rows"},
                                   {g_cols, "g_cols"}, {ds_rows, "ds_rows"}, {da, "da"},
                                   {db, "db"}, {dscale, "dscale"}})
                need(q, name);
            py::gil_scoped_release release;
            mc::loss_backward(p, offset, symmetric, ptr<const float>(lse_row),
                              ptr<const float>(lse_col), grad, ptr<float>(g_rows),
                              ptr<float>(g_cols), ptr<float>(ds_rows), ptr<void>(da),
                              ptr<void>(db), ptr<float>(dscale));
        },
        py::arg("a"), py::arg("b"), py::arg("rows"), py::arg("cols"), py::arg("dim"),
        py::arg("dtype"), py::arg("norm_a"), py::arg("norm_b"), py::arg("scale"),
        py::arg("normalize"), py::arg("stream"), py::arg("offset"), py::arg("symmetric"),
        py::arg("row_groups"), py::arg("col_groups"), py::arg("lse_row"), py::arg("lse_col"),
        py::arg("grad"), py::arg("g_rows"),
        py::arg("g_cols"), py::arg("ds_rows"), py::arg("da"), py::arg("db"), py::arg("dscale"),
        "Gradients of grad * loss into da, db and dscale[0] (g_rows, g_cols, ds_rows: float32 "
        "workspace).");
    m.def(
        "similarity_forward",
        [](uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
           uintptr_t norm_a, uintptr_t norm_b, float scale, uintptr_t stream, uintptr_t out) {
            const mc::Pair p =
                pair(a, b, rows, cols, dim, dtype, norm_a, norm_b, scale, true, stream);
            need(out, "out");
            py::gil_scoped_release release;
            mc::similarity_forward(p, ptr<void>(out));
        },
        py::arg("a"), py::arg("b"), py::arg("rows"), py::arg("cols"), py::arg("dim"),
        py::arg("dtype"), py::arg("norm_a"), py::arg("norm_b"), py::arg("scale"),
        py::arg("stream"), py::arg("out"),
        "Writes scale * normalize(a) normalize(b)^T (input dtype) and the norms.");
    m.def(
        "similarity_backward",
        [](uintptr_t a, uintptr_t b, int64_t rows, int64_t cols, int64_t dim, int dtype,
           uintptr_t norm_a, uintptr_t norm_b, float scale, uintptr_t stream, uintptr_t grad_out,
           uintptr_t g_rows, uintptr_t g_cols, uintptr_t ds_rows, uintptr_t da, uintptr_t db,
           uintptr_t dscale) {
            const mc::Pair p =
                pair(a, b, rows, cols, dim, dtype, norm_a, norm_b, scale, true, stream);
            for (auto [q, name] : {std::pair{grad_out, "grad_out"}, {g_rows, "g_rows"},
                                   {g_cols, "g_cols"}, {ds_rows, "ds_rows"}, {da, "da"},
                                   {db, "db"}, {dscale, "dscale"}})
                need(q, name);
            py::gil_scoped_release release;
            mc::similarity_backward(p, ptr<const void>(grad_out), ptr<float>(g_rows),
                                    ptr<float>(g_cols), ptr<float>(ds_rows), ptr<void>(da),
                                    ptr<void>(db), ptr<float>(dscale));
        },
        py::arg("a"), py::arg("b"), py::arg("rows"), py::arg("cols"), py::arg("dim"),
        py::arg("dtype"), py::arg("norm_a"), py::arg("norm_b"), py::arg("scale"),
        py::arg("stream"), py::arg("grad_out"), py::arg("g_rows"), py::arg("g_cols"),
        py::arg("ds_rows"), py::arg("da"), py::arg("db"), py::arg("dscale"),
        "Gradients of <grad_out, S> into da, db and dscale[0].");
}
