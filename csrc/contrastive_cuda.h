// Entry points of the CUDA back end (module mets_fast._cuda).  Every pointer is a device pointer
// allocated by the caller (mets_fast/loss.py, through PyTorch's caching allocator); `stream` is a
// cudaStream_t.  Inputs are `dtype` (0 float32, 1 float16, 2 bfloat16); norms, log-sum-exps and
// the gradient accumulators are float32.  Errors are thrown as std::runtime_error.
#pragma once

#include <cstdint>
#include <string>

namespace mets {
namespace cuda {

enum DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

struct Pair {
    const void* a;
    const void* b;
    int64_t rows, cols, dim;
    int dtype;
    float* norm_a;  // written by forward passes, read by backward passes
    float* norm_b;
    float scale;
    bool normalize;
    void* stream;
    // Report groups of a's and b's rows (device, int64; null: none; the losses only).
    const int64_t* group_a = nullptr;
    const int64_t* group_b = nullptr;
};

// Writes the norms, the row (and, when symmetric, column) log-sum-exps, the positive logits
// `pos` (rows) and the loss into out_loss[0].
void loss_forward(const Pair& p, int64_t offset, bool symmetric, float* lse_row, float* lse_col,
                  float* pos, float* out_loss);

// Gradients of grad * loss into da, db (input dtype) and dscale[0]; g_rows (rows x dim),
// g_cols (cols x dim) and ds_rows (rows) are float32 workspace.
void loss_backward(const Pair& p, int64_t offset, bool symmetric, const float* lse_row,
                   const float* lse_col, float grad, float* g_rows, float* g_cols, float* ds_rows,
                   void* da, void* db, float* dscale);

void similarity_forward(const Pair& p, void* out);
void similarity_backward(const Pair& p, const void* grad_out, float* g_rows, float* g_cols,
                         float* ds_rows, void* da, void* db, float* dscale);

int device_count();
std::string runtime_status();

}  // namespace cuda
}  // namespace mets
