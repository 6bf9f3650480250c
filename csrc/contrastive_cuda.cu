// CUDA back end of the fused normalised-similarity and contrastive-loss kernels.
//
// Two kernels do the work, each over one operand's rows against all rows of the other, with the
// per-element rules of contrastive.h:
//   lse_rows   running row (max, sum) of s x^ y^T, tile by tile (64 x 64, 16 x 16 threads of
//              4 x 4 logits each); called on (a, b) for the rows and on (b, a) for the columns.
//   grad_rows  recomputes the logit tiles, turns them into dL/dS (or reads a given dL/dS) and
//              accumulates dL/dS . y^ for a block of rows and a chunk of features in registers.
//              Called on (a, b) for the rows' gradient and on (b, a) for the columns'.
// Every output element is owned by one thread block and every reduction has a fixed order (warp
// shuffles, then a single-block tree), so results are deterministic and no atomics are used;
// memory beyond the inputs is O((rows + cols) dim).  Accumulation is float32 whatever the input
// type.  Tensor cores are not used: the tiles are plain FMA, which also keeps results independent
// of torch.backends.cuda.matmul.allow_tf32.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

// The shared tile math lands in this back end's namespace, mets::cuda.
#define METS_ISA cuda
#include "contrastive.h"
#include "contrastive_cuda.h"

namespace mets {
namespace cuda {

namespace {

constexpr int BM = 64, BN = 64, BK = 16, THREADS = 256;  // 16 x 16 threads, 4 x 4 logits each
constexpr int JB = 16;                                     // rows of y^ staged per step in grad_rows
constexpr float kMasked = Masked<float>::value;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16(v);
}

struct ExpF {
    __device__ float operator()(float x) const { return __expf(x); }
};

__device__ __forceinline__ float half_warp_max(float v) {
    for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float half_warp_sum(float v) {
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// One operand as the kernels see it: rows of `dim` values, normalised on the fly.
template <class In> struct Side {
    const In* data;
    const float* norm;
    int64_t rows;
    const int64_t* group;  // report groups, or null
    // 1 / max(|row r|, eps), or 1 without normalisation: what row r is multiplied by
    __device__ float inv_norm_of(int64_t r, bool normalize) const {
        return inv_norm(norm[r], normalize);
    }
};

// acc[i][j] = x^(r0 + ty + 16 i) . y^(c0 + tx + 16 j) (unscaled; zero outside the operands).
// Thread (ty, tx) owns rows ty + 16 i and columns tx + 16 j, so that the 16 threads of a row are
// one half-warp and shared-memory reads are conflict free.
template <class In>
__device__ void logits_tile(const Side<In>& x, int64_t r0, const Side<In>& y, int64_t c0, int dim,
                            bool normalize, float (&acc)[4][4], float (*xs)[BM + 1],
                            float (*ys)[BN + 1]) {
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    for (int k0 = 0; k0 < dim; k0 += BK) {
        for (int e = tid; e < BM * BK; e += THREADS) {
            const int r = e / BK, k = e % BK;
            const int64_t gx = r0 + r, gy = c0 + r;
            const int gk = k0 + k;
            xs[k][r] = gx < x.rows && gk < dim
                           ? to_float(x.data[gx * dim + gk]) * x.inv_norm_of(gx, normalize)
                           : 0.f;
            ys[k][r] = gy < y.rows && gk < dim
                           ? to_float(y.data[gy * dim + gk]) * y.inv_norm_of(gy, normalize)
                           : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < BK; ++k) {
            float xv[4], yv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) xv[i] = xs[k][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) yv[j] = ys[k][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(xv[i], yv[j], acc[i][j]);
        }
        __syncthreads();
    }
}

// Calls fn(i, j, r, c) for the thread's 4 x 4 logits of the tile at (r0, c0): acc[i][j] is the
// logit of row r and column c.
template <class F> __device__ __forceinline__ void for_each_logit(int64_t r0, int64_t c0, F&& fn) {
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) fn(i, j, r0 + ty + 16 * i, c0 + tx + 16 * j);
}

// lse[r] = log sum_j exp(s x^_r . y^_j) for every row r of x, over the columns j that the
// report groups do not leave out (row r's positive is column r + offset).
template <class In>
__global__ void __launch_bounds__(THREADS)
    lse_rows(Side<In> x, Side<In> y, int dim, float scale, bool normalize, int64_t offset,
             float* lse) {
    __shared__ float xs[BK][BM + 1], ys[BK][BN + 1];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t r0 = int64_t(blockIdx.x) * BM;
    float m[4], l[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) m[i] = kMasked, l[i] = 0.f;
    for (int64_t c0 = 0; c0 < y.rows; c0 += BN) {
        float acc[4][4];
        logits_tile(x, r0, y, c0, dim, normalize, acc, xs, ys);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            float tile_max = kMasked;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int64_t r = r0 + ty + 16 * i, c = c0 + tx + 16 * j;
                const bool kept =
                    c < y.rows && (r >= x.rows || !excluded(x.group, y.group, r, c, offset));
                acc[i][j] = kept ? acc[i][j] * scale : kMasked;
                tile_max = fmaxf(tile_max, acc[i][j]);
            }
            const float f = lse_rescale(m[i], half_warp_max(tile_max), ExpF());
            float sum = 0.f;
#pragma unroll
            for (int j = 0; j < 4; ++j) sum += __expf(acc[i][j] - m[i]);
            l[i] = l[i] * f + half_warp_sum(sum);
        }
    }
    if (tx == 0)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t r = r0 + ty + 16 * i;
            if (r < x.rows) lse[r] = m[i] + logf(l[i]);
        }
}

// How grad_rows obtains dL/dS(r, c) for row r of x and column c (a row of y).
struct GradRule {
    // From the log-sum-exps: w_self exp(S - lse_self[r]) + w_other exp(S - lse_other[c]) minus
    // w_pos at the positive pair (c == r + offset).  A null lse drops its term.
    const float* lse_self;
    const float* lse_other;
    float w_self, w_other, w_pos;
    int64_t offset;
    // Or read from a given dL/dS: grad_out[r * ld_r + c * ld_c] (similarity backward).
    const void* grad_out;
    int64_t ld_r, ld_c;
};

// out[r][d] = sum_c dL/dS(r, c) y^_c[d] for a block of BM rows and a chunk of 16 KD features.
template <class In, int KD>
__global__ void __launch_bounds__(THREADS)
    grad_rows(Side<In> x, Side<In> y, int dim, float scale, bool normalize, GradRule rule,
              float* out) {
    __shared__ float xs[BK][BM + 1], ys[BK][BN + 1];
    __shared__ float gs[BM][BN + 1];
    __shared__ float yd[JB][16 * KD];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t r0 = int64_t(blockIdx.x) * BM;
    const int d0 = blockIdx.y * 16 * KD;
    float acc[4][KD];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int k = 0; k < KD; ++k) acc[i][k] = 0.f;

    for (int64_t c0 = 0; c0 < y.rows; c0 += BN) {
        if (rule.grad_out) {
            const In* g = static_cast<const In*>(rule.grad_out);
            for (int e = tid; e < BM * BN; e += THREADS) {
                const int i = e / BN, j = e % BN;
                const int64_t r = r0 + i, c = c0 + j;
                gs[i][j] = r < x.rows && c < y.rows ? to_float(g[r * rule.ld_r + c * rule.ld_c])
                                                    : 0.f;
            }
        } else {
            float s[4][4];
            logits_tile(x, r0, y, c0, dim, normalize, s, xs, ys);
            for_each_logit(r0, c0, [&](int i, int j, int64_t r, int64_t c) {
                float g = 0.f;
                if (r < x.rows && c < y.rows && !excluded(x.group, y.group, r, c, rule.offset)) {
                    const float logit = s[i][j] * scale;
                    if (rule.lse_self) g += rule.w_self * __expf(logit - rule.lse_self[r]);
                    if (rule.lse_other) g += rule.w_other * __expf(logit - rule.lse_other[c]);
                    if (is_positive(r, c, rule.offset)) g -= rule.w_pos;
                }
                gs[r - r0][c - c0] = g;
            });
        }
        __syncthreads();
        for (int jb = 0; jb < BN; jb += JB) {
            for (int e = tid; e < JB * 16 * KD; e += THREADS) {
                const int jj = e / (16 * KD), dd = e % (16 * KD);
                const int64_t c = c0 + jb + jj;
                const int d = d0 + dd;
                yd[jj][dd] = c < y.rows && d < dim
                                 ? to_float(y.data[c * dim + d]) * y.inv_norm_of(c, normalize)
                                 : 0.f;
            }
            __syncthreads();
#pragma unroll 4
            for (int jj = 0; jj < JB; ++jj) {
                float gv[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) gv[i] = gs[ty + 16 * i][jb + jj];
#pragma unroll
                for (int k = 0; k < KD; ++k) {
                    const float yv = yd[jj][tx + 16 * k];
#pragma unroll
                    for (int i = 0; i < 4; ++i) acc[i][k] = fmaf(gv[i], yv, acc[i][k]);
                }
            }
            __syncthreads();
        }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int64_t r = r0 + ty + 16 * i;
        if (r >= x.rows) continue;
#pragma unroll
        for (int k = 0; k < KD; ++k) {
            const int d = d0 + tx + 16 * k;
            if (d < dim) out[r * dim + d] = acc[i][k];
        }
    }
}

// S tile by tile into out (x.rows x y.rows, row-major, the input dtype).
template <class In>
__global__ void __launch_bounds__(THREADS)
    similarity_tiles(Side<In> x, Side<In> y, int dim, float scale, bool normalize, In* out) {
    __shared__ float xs[BK][BM + 1], ys[BK][BN + 1];
    const int64_t col_blocks = (y.rows + BN - 1) / BN;
    const int64_t r0 = int64_t(blockIdx.x) / col_blocks * BM;
    const int64_t c0 = int64_t(blockIdx.x) % col_blocks * BN;
    float acc[4][4];
    logits_tile(x, r0, y, c0, dim, normalize, acc, xs, ys);
    for_each_logit(r0, c0, [&](int i, int j, int64_t r, int64_t c) {
        if (r < x.rows && c < y.rows) out[r * y.rows + c] = from_float<In>(acc[i][j] * scale);
    });
}

// One warp per row: norm[r] = |x_r|.
template <class In> __global__ void row_norms(const In* x, int64_t rows, int dim, float* norm) {
    const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    float s = 0.f;
    for (int k = lane; k < dim; k += 32) {
        const float v = to_float(x[r * dim + k]);
        s = fmaf(v, v, s);
    }
    s = warp_sum(s);
    if (lane == 0) norm[r] = sqrtf(s);
}

// One warp per row: pos[r] = s x^_r . y^_(r + offset).
template <class In>
__global__ void positive_logits(Side<In> x, Side<In> y, int dim, float scale, bool normalize,
                                int64_t offset, float* pos) {
    const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= x.rows) return;
    const int64_t c = r + offset;
    float s = 0.f;
    for (int k = lane; k < dim; k += 32)
        s = fmaf(to_float(x.data[r * dim + k]), to_float(y.data[c * dim + k]), s);
    s = warp_sum(s);
    if (lane == 0) pos[r] = s * x.inv_norm_of(r, normalize) * y.inv_norm_of(c, normalize) * scale;
}

// One warp per row: out_r = d x^_r / d x_r applied to gscale g_r; ds_rows[r] = g_r . x^_r.
template <class In>
__global__ void finish_rows(const float* g, Side<In> x, int dim, float gscale, bool normalize,
                            In* out, float* ds_rows) {
    const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= x.rows) return;
    const float inv = x.inv_norm_of(r, normalize);
    float dot = 0.f;
    for (int k = lane; k < dim; k += 32)
        dot = fmaf(g[r * dim + k], to_float(x.data[r * dim + k]) * inv, dot);
    dot = warp_sum(dot);
    if (ds_rows && lane == 0) ds_rows[r] = dot;
    dot *= gscale;
    const bool above = x.norm[r] > float(kNormEps);
    for (int k = lane; k < dim; k += 32) {
        const float gk = g[r * dim + k] * gscale;
        const float v = normalize ? normalize_backward(gk, to_float(x.data[r * dim + k]) * inv, dot,
                                                       inv, above)
                                  : gk;
        out[r * dim + k] = from_float<In>(v);
    }
}

// One block: out[0] = wa sum(a) + wb sum(b) - wc sum(c) (null vectors skipped), summed in a
// fixed order so that the result does not depend on scheduling.
constexpr int kReduceThreads = 1024;
__global__ void weighted_sums(const float* a, int64_t na, float wa, const float* b, int64_t nb,
                              float wb, const float* c, int64_t nc, float wc, float* out) {
    __shared__ float part[kReduceThreads];
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < na; i += kReduceThreads) s += wa * a[i];
    if (b)
        for (int64_t i = threadIdx.x; i < nb; i += kReduceThreads) s += wb * b[i];
    if (c)
        for (int64_t i = threadIdx.x; i < nc; i += kReduceThreads) s -= wc * c[i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = kReduceThreads / 2; w > 0; w >>= 1) {
        if (int(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = part[0];
}

void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess)
        throw std::runtime_error(std::string("mets_fast CUDA kernel ") + what + " failed: " +
                                 cudaGetErrorString(err));
}

unsigned blocks_for(int64_t n, int64_t per_block) { return unsigned((n + per_block - 1) / per_block); }

constexpr int kRowsPerWarpBlock = 8;  // warps per block of the one-warp-per-row kernels

template <class In> struct Launcher {
    const Pair& p;
    cudaStream_t stream;
    Side<In> a, b;

    explicit Launcher(const Pair& pair)
        : p(pair),
          stream(static_cast<cudaStream_t>(pair.stream)),
          a{static_cast<const In*>(pair.a), pair.norm_a, pair.rows, pair.group_a},
          b{static_cast<const In*>(pair.b), pair.norm_b, pair.cols, pair.group_b} {}

    void norms() {
        const int threads = 32 * kRowsPerWarpBlock;
        row_norms<In><<<blocks_for(p.rows, kRowsPerWarpBlock), threads, 0, stream>>>(
            a.data, p.rows, int(p.dim), p.norm_a);
        row_norms<In><<<blocks_for(p.cols, kRowsPerWarpBlock), threads, 0, stream>>>(
            b.data, p.cols, int(p.dim), p.norm_b);
        check(cudaGetLastError(), "row_norms");
    }

    void positives(int64_t offset, float* pos) {
        positive_logits<In><<<blocks_for(p.rows, kRowsPerWarpBlock), 32 * kRowsPerWarpBlock, 0,
                              stream>>>(a, b, int(p.dim), p.scale, p.normalize, offset, pos);
        check(cudaGetLastError(), "positive_logits");
    }

    void similarity(void* out) {
        const int64_t blocks = int64_t(blocks_for(p.rows, BM)) * blocks_for(p.cols, BN);
        similarity_tiles<In><<<unsigned(blocks), THREADS, 0, stream>>>(
            a, b, int(p.dim), p.scale, p.normalize, static_cast<In*>(out));
        check(cudaGetLastError(), "similarity_tiles");
    }

    void lse(const Side<In>& x, const Side<In>& y, int64_t offset, float* out) {
        lse_rows<In><<<blocks_for(x.rows, BM), THREADS, 0, stream>>>(x, y, int(p.dim), p.scale,
                                                                    p.normalize, offset, out);
        check(cudaGetLastError(), "lse_rows");
    }

    template <int KD> void grad_chunked(const Side<In>& x, const Side<In>& y, const GradRule& rule,
                                        float* out) {
        const dim3 grid(blocks_for(x.rows, BM), blocks_for(p.dim, 16 * KD));
        grad_rows<In, KD><<<grid, THREADS, 0, stream>>>(x, y, int(p.dim), p.scale, p.normalize,
                                                        rule, out);
        check(cudaGetLastError(), "grad_rows");
    }

    // The feature chunk is the smallest of 16, 64, 128, 256 that covers dim (256 beyond), so
    // that small widths waste no registers and wide ones recompute the logits dim / 256 times.
    void grad(const Side<In>& x, const Side<In>& y, const GradRule& rule, float* out) {
        if (p.dim <= 16) grad_chunked<1>(x, y, rule, out);
        else if (p.dim <= 64) grad_chunked<4>(x, y, rule, out);
        else if (p.dim <= 128) grad_chunked<8>(x, y, rule, out);
        else grad_chunked<16>(x, y, rule, out);
    }

    void finish(const float* g_rows, const float* g_cols, float* ds_rows, void* da, void* db,
                float* dscale) {
        const int threads = 32 * kRowsPerWarpBlock;
        finish_rows<In><<<blocks_for(p.rows, kRowsPerWarpBlock), threads, 0, stream>>>(
            g_rows, a, int(p.dim), p.scale, p.normalize, static_cast<In*>(da), ds_rows);
        finish_rows<In><<<blocks_for(p.cols, kRowsPerWarpBlock), threads, 0, stream>>>(
            g_cols, b, int(p.dim), p.scale, p.normalize, static_cast<In*>(db), nullptr);
        weighted_sums<<<1, kReduceThreads, 0, stream>>>(ds_rows, p.rows, 1.f, nullptr, 0, 0.f,
                                                         nullptr, 0, 0.f, dscale);
        check(cudaGetLastError(), "finish_rows");
    }
};

template <class F> void by_dtype(const Pair& p, F&& fn) {
    switch (p.dtype) {
        case kFloat32: fn(Launcher<float>(p)); break;
        case kFloat16: fn(Launcher<__half>(p)); break;
        case kBFloat16: fn(Launcher<__nv_bfloat16>(p)); break;
        default: throw std::invalid_argument("unsupported dtype code " + std::to_string(p.dtype));
    }
}

}  // namespace

void loss_forward(const Pair& p, int64_t offset, bool symmetric, float* lse_row, float* lse_col,
                  float* pos, float* out_loss) {
    by_dtype(p, [&](auto&& L) {
        L.norms();
        L.lse(L.a, L.b, offset, lse_row);
        if (symmetric) L.lse(L.b, L.a, -offset, lse_col);
        L.positives(offset, pos);
        const LossWeights w = loss_weights(symmetric, p.rows, 1.0);
        weighted_sums<<<1, kReduceThreads, 0, L.stream>>>(
            lse_row, p.rows, float(w.row), symmetric ? lse_col : nullptr, p.cols, float(w.col),
            pos, p.rows, float(w.pos), out_loss);
        check(cudaGetLastError(), "weighted_sums");
    });
}

void loss_backward(const Pair& p, int64_t offset, bool symmetric, const float* lse_row,
                   const float* lse_col, float grad, float* g_rows, float* g_cols, float* ds_rows,
                   void* da, void* db, float* dscale) {
    const LossWeights w = loss_weights(symmetric, p.rows, double(grad));
    // Rows: G = w_row P + w_col Q - w_pos I.  Columns: G^T, the same rule seen from b, whose
    // positive for row c of b is row c - offset of a.
    const GradRule rows{lse_row, symmetric ? lse_col : nullptr, float(w.row), float(w.col),
                        float(w.pos), offset, nullptr, 0, 0};
    const GradRule cols{symmetric ? lse_col : nullptr, lse_row, float(w.col), float(w.row),
                        float(w.pos), -offset, nullptr, 0, 0};
    by_dtype(p, [&](auto&& L) {
        L.grad(L.a, L.b, rows, g_rows);
        L.grad(L.b, L.a, cols, g_cols);
        L.finish(g_rows, g_cols, ds_rows, da, db, dscale);
    });
}

void similarity_forward(const Pair& p, void* out) {
    by_dtype(p, [&](auto&& L) {
        L.norms();
        L.similarity(out);
    });
}

void similarity_backward(const Pair& p, const void* grad_out, float* g_rows, float* g_cols,
                         float* ds_rows, void* da, void* db, float* dscale) {
    const GradRule rows{nullptr, nullptr, 0.f, 0.f, 0.f, 0, grad_out, p.cols, 1};
    const GradRule cols{nullptr, nullptr, 0.f, 0.f, 0.f, 0, grad_out, 1, p.cols};
    by_dtype(p, [&](auto&& L) {
        L.grad(L.a, L.b, rows, g_rows);
        L.grad(L.b, L.a, cols, g_cols);
        L.finish(g_rows, g_cols, ds_rows, da, db, dscale);
    });
}

int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no device / no driver" error
        return 0;
    }
    return n;
}

std::string runtime_status() {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return std::string("no CUDA device available: ") + cudaGetErrorString(err);
    }
    return std::to_string(n) + " CUDA device(s) available";
}

}  // namespace cuda
}  // namespace mets
