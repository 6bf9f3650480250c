// pybind11 face of the CPU kernels (module mets_fast._C).  It only unpacks NumPy buffers:
// mets_fast/loss.py validates shapes, dtypes and values before calling in.  The few checks here
// guard memory safety, not user input.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "dispatch.h"

namespace py = pybind11;
using mets::Operands;

namespace {

template <class T> T* buffer(py::array& arr, const char* name, py::ssize_t size, bool writable) {
    if (!py::isinstance<py::array_t<T>>(arr) || !(arr.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array of the "
                                                        "operands' dtype");
    if (arr.size() != size)
        throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(size) +
                                    " elements, got " + std::to_string(arr.size()));
    if (writable && !arr.writeable())
        throw std::invalid_argument(std::string(name) + ": array is read-only");
    return static_cast<T*>(arr.mutable_data());
}

template <class T> T* optional_buffer(py::object obj, const char* name, py::ssize_t size) {
    if (obj.is_none()) return nullptr;
    py::array arr = obj.cast<py::array>();
    return buffer<T>(arr, name, size, true);
}

template <class T>
Operands<T> operands(py::array& a, py::array& b, py::array& norm_a, py::array& norm_b,
                     double scale, bool normalize, int threads) {
    if (a.ndim() != 2 || b.ndim() != 2 || a.shape(1) != b.shape(1))
        throw std::invalid_argument("operands must be 2-d with equal widths");
    const py::ssize_t rows = a.shape(0), cols = b.shape(0), dim = a.shape(1);
    Operands<T> op;
    op.a = buffer<T>(a, "a", rows * dim, false);
    op.b = buffer<T>(b, "b", cols * dim, false);
    op.rows = rows;
    op.cols = cols;
    op.dim = dim;
    op.norm_a = buffer<T>(norm_a, "norm_a", rows, true);
    op.norm_b = buffer<T>(norm_b, "norm_b", cols, true);
    op.scale = T(scale);
    op.normalize = normalize;
    op.threads = threads;
    return op;
}

bool is_double(const py::array& a) { return py::isinstance<py::array_t<double>>(a); }

// Report groups: both None, or int64 arrays of rows and cols ids (see Operands).
template <class T>
void set_groups(Operands<T>& op, py::object row_groups, py::object col_groups) {
    if (row_groups.is_none() != col_groups.is_none())
        throw std::invalid_argument("row_groups and col_groups: give both or neither");
    if (row_groups.is_none()) return;
    py::array rg = row_groups.cast<py::array>(), cg = col_groups.cast<py::array>();
    op.group_a = buffer<int64_t>(rg, "row_groups", op.rows, false);
    op.group_b = buffer<int64_t>(cg, "col_groups", op.cols, false);
}

template <class T>
double loss_forward(py::array a, py::array b, py::array norm_a, py::array norm_b,
                    py::array lse_row, py::object lse_col, py::object logits, double scale,
                    int64_t offset, bool symmetric, bool normalize, py::object row_groups,
                    py::object col_groups, int threads) {
    Operands<T> op = operands<T>(a, b, norm_a, norm_b, scale, normalize, threads);
    set_groups(op, row_groups, col_groups);
    T* lr = buffer<T>(lse_row, "lse_row", op.rows, true);
    T* lc = optional_buffer<T>(lse_col, "lse_col", op.cols);
    if (symmetric && !lc) throw std::invalid_argument("the symmetric loss needs lse_col");
    T* s = optional_buffer<T>(logits, "logits", op.rows * op.cols);
    py::gil_scoped_release release;
    return mets::kernels<T>().loss_forward(op, offset, symmetric, lr, lc, s);
}

template <class T>
double loss_backward(py::array a, py::array b, py::array norm_a, py::array norm_b,
                     py::array lse_row, py::object lse_col, py::object logits, double scale,
                     int64_t offset, bool symmetric, bool normalize, py::object row_groups,
                     py::object col_groups, double grad, py::array da, py::array db,
                     int threads) {
    Operands<T> op = operands<T>(a, b, norm_a, norm_b, scale, normalize, threads);
    set_groups(op, row_groups, col_groups);
    T* lr = buffer<T>(lse_row, "lse_row", op.rows, false);
    T* lc = optional_buffer<T>(lse_col, "lse_col", op.cols);
    if (symmetric && !lc) throw std::invalid_argument("the symmetric loss needs lse_col");
    const T* s = optional_buffer<T>(logits, "logits", op.rows * op.cols);
    T* ga = buffer<T>(da, "da", op.rows * op.dim, true);
    T* gb = buffer<T>(db, "db", op.cols * op.dim, true);
    py::gil_scoped_release release;
    return mets::kernels<T>().loss_backward(op, offset, symmetric, lr, lc, s, grad, ga, gb);
}

// The similarity is always of normalised rows (its one use: cosine scores).
template <class T>
void similarity_forward(py::array a, py::array b, py::array norm_a, py::array norm_b,
                        py::array out, double scale, int threads) {
    Operands<T> op = operands<T>(a, b, norm_a, norm_b, scale, true, threads);
    T* o = buffer<T>(out, "out", op.rows * op.cols, true);
    py::gil_scoped_release release;
    mets::kernels<T>().similarity_forward(op, o);
}

template <class T>
double similarity_backward(py::array a, py::array b, py::array norm_a, py::array norm_b,
                           py::array grad_out, py::array da, py::array db, double scale,
                           int threads) {
    Operands<T> op = operands<T>(a, b, norm_a, norm_b, scale, true, threads);
    const T* g = buffer<T>(grad_out, "grad_out", op.rows * op.cols, false);
    T* ga = buffer<T>(da, "da", op.rows * op.dim, true);
    T* gb = buffer<T>(db, "db", op.cols * op.dim, true);
    py::gil_scoped_release release;
    return mets::kernels<T>().similarity_backward(op, g, ga, gb);
}

// Calls the float or double instantiation of fn according to the first operand's dtype.
template <class Sig> struct ByDtype;
template <class R, class... Args> struct ByDtype<R (*)(py::array, Args...)> {
    template <R (*F32)(py::array, Args...), R (*F64)(py::array, Args...)>
    static R call(py::array a, Args... args) {
        return is_double(a) ? F64(a, args...) : F32(a, args...);
    }
};
#define METS_BY_DTYPE(fn) &ByDtype<decltype(&fn<float>)>::template call<&fn<float>, &fn<double>>

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "CPU kernels of mets_fast: fused normalised similarity and contrastive losses.";
    m.def("loss_forward", METS_BY_DTYPE(loss_forward), py::arg("a"), py::arg("b"),
          py::arg("norm_a"), py::arg("norm_b"), py::arg("lse_row"), py::arg("lse_col"),
          py::arg("logits"), py::arg("scale"), py::arg("offset"), py::arg("symmetric"),
          py::arg("normalize"), py::arg("row_groups"), py::arg("col_groups"), py::arg("threads"),
          "Loss value; writes the row norms, the row (and column) log-sum-exps and, when given "
          "an array, the logits (pairs left out by the report groups hold -1e30 there).");
    m.def("loss_backward", METS_BY_DTYPE(loss_backward), py::arg("a"), py::arg("b"),
          py::arg("norm_a"), py::arg("norm_b"), py::arg("lse_row"), py::arg("lse_col"),
          py::arg("logits"), py::arg("scale"), py::arg("offset"), py::arg("symmetric"),
          py::arg("normalize"), py::arg("row_groups"), py::arg("col_groups"), py::arg("grad"),
          py::arg("da"), py::arg("db"), py::arg("threads"),
          "Writes dL/da and dL/db (scaled by grad); returns dL/dscale.  Reads the logits saved "
          "by loss_forward when given them, else recomputes them.");
    m.def("similarity_forward", METS_BY_DTYPE(similarity_forward), py::arg("a"), py::arg("b"),
          py::arg("norm_a"), py::arg("norm_b"), py::arg("out"), py::arg("scale"),
          py::arg("threads"), "Writes scale * normalize(a) normalize(b)^T and the row norms.");
    m.def("similarity_backward", METS_BY_DTYPE(similarity_backward), py::arg("a"), py::arg("b"),
          py::arg("norm_a"), py::arg("norm_b"), py::arg("grad_out"), py::arg("da"), py::arg("db"),
          py::arg("scale"), py::arg("threads"),
          "Writes dL/da and dL/db from dL/dS; returns dL/dscale.");
    m.def("isa", []() { return mets::active_isa(); }, "The instruction set the kernels use.");
    m.def("available_isas", &mets::available_isas,
          "Instruction sets built into this module that this CPU runs, widest first.");
    m.def("set_isa", &mets::set_isa, py::arg("isa"),
          "Use another available instruction set (for tests and benchmarks).");
    m.def("openmp", &mets::openmp_enabled, "Whether the module was built with OpenMP.");
}
