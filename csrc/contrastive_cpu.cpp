// CPU back end of the fused normalised-similarity and contrastive-loss kernels.
//
// This file is compiled once per instruction set with METS_ISA set to the namespace to fill
// (avx512, avx2, portable) and the matching -m flags; nothing here may use a template or inline
// function of the standard library that could be emitted out of line, because the linker would
// then share one ISA's copy with all the others.
//
// Blocking.  The logits S = (s X) Y^T are produced tile by tile (MB rows x NB columns) into a
// per-thread buffer by a register-blocked micro-kernel that reads a panel of Y packed PW columns
// wide.  Forward passes fold each tile into running row and column (max, sum) pairs and never
// keep more than the tile (unless the caller asks for the logits, kept for a small batch's
// backward); backward passes recompute the tile (or read it back), turn it into dL/dS in place
// and multiply it into both gradients with a second micro-kernel.  The normalised copies of X and Y are stored in CW-wide feature chunks
// ([Dp / CW][rows][CW]) so that both micro-kernels stream contiguous memory: a row-major copy
// with a power-of-two width would map every row of a block to the same few cache sets.
//
// Threads.  T threads split the rows and the columns into T groups each.  In step k thread t
// handles row group t against column group (t + k) mod T, so within a step no two threads touch
// the same rows or columns: row and column statistics and both gradients are updated without
// atomics or per-thread copies, and the order of every floating-point sum depends only on T.
#include <cmath>
#include <cstdlib>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "contrastive.h"
#include "contrastive_cpu.h"
#include "simd.h"

namespace mets {
namespace METS_ISA {

namespace {

// Register blocks, sized to the register file.  The logits micro-kernel keeps MRT rows x NVT
// vectors of accumulators, the gradient micro-kernel MRN rows x NVN vectors; their panel width
// PW = NVT W and feature chunk CW = NVN W are the layouts of the packed operands.
#if METS_VEC_BYTES == 64
constexpr int MRT = 8, NVT = 3, MRN = 12, NVN = 2;  // 24 of the 32 zmm registers each
#elif METS_VEC_BYTES == 32
constexpr int MRT = 4, NVT = 3, MRN = 6, NVN = 2;   // 12 of the 16 ymm registers each
#else
constexpr int MRT = 4, NVT = 2, MRN = 4, NVN = 2;   // 8 of 16 xmm registers
#endif
constexpr int64_t MB = 96;  // tile rows
constexpr int64_t NB = 96;  // tile columns
static_assert(MB % MRT == 0 && MB % MRN == 0 && NB % MRN == 0,
              "tiles must hold whole register blocks");

template <class T> constexpr int W = Simd<T>::W;
template <class T> constexpr int PW = NVT * Simd<T>::W;
template <class T> constexpr int CW = NVN * Simd<T>::W;
static_assert(NB % (NVT * Simd<float>::W) == 0 && NB % (NVT * Simd<double>::W) == 0,
              "tiles must hold whole panels");

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Memory for the kernels comes from a per-thread arena kept between calls: fresh pages from the
// OS cost a page fault each, about a tenth of the whole call at B = 256.  A call takes what it
// needs from the arena's block, beyond it from extra blocks; when the call ends the extra blocks
// are freed and, if the call needed more than the block holds (and at most kKeepBytes), the
// block is reallocated at that size for the calls that follow.
constexpr size_t kKeepBytes = size_t(64) << 20;

struct Arena {
    char* block = nullptr;
    size_t capacity = 0, used = 0, needed = 0;
    void* extra = nullptr;  // singly linked list of this call's extra blocks
    ~Arena() {
        release_extra();
        std::free(block);
    }
    void release_extra() {
        while (extra) {
            void* next = *static_cast<void**>(extra);
            std::free(extra);
            extra = next;
        }
    }
};
thread_local Arena arena;

void* arena_take(size_t bytes) {
    bytes = size_t(round_up(int64_t(bytes), 64));
    Arena& a = arena;
    a.needed += bytes;
    if (a.used + bytes <= a.capacity) {
        void* p = a.block + a.used;
        a.used += bytes;
        return p;
    }
    char* p = static_cast<char*>(std::aligned_alloc(64, bytes + 64));
    if (!p) throw std::bad_alloc();
    *reinterpret_cast<void**>(p) = a.extra;  // the link lives in the first 64 bytes
    a.extra = p;
    return p + 64;
}

// One per entry point: hands the call's memory back to the arena when the call returns.
struct CallScope {
    CallScope() { arena.used = arena.needed = 0; }
    ~CallScope() {
        Arena& a = arena;
        a.release_extra();
        if (a.needed > a.capacity && a.needed <= kKeepBytes) {
            std::free(a.block);
            a.block = static_cast<char*>(std::aligned_alloc(64, a.needed));
            a.capacity = a.block ? a.needed : 0;
        }
        a.used = a.needed = 0;
    }
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;
};

// An uninitialised array from the call's arena (valid until the entry point returns).
template <class T> struct Buffer {
    T* p = nullptr;
    explicit Buffer(int64_t n) {
        if (n > 0) p = static_cast<T*>(arena_take(size_t(n) * sizeof(T)));
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
};

inline int thread_count(int requested) {
#ifdef _OPENMP
    return requested > 0 ? requested : 1;
#else
    (void)requested;
    return 1;
#endif
}

// ---------------------------------------------------------------------------------------------
// Micro-kernels
// ---------------------------------------------------------------------------------------------

// c[MRT x PW] = x . panel^T over `chunks` chunks of CW features, where x points at MRT rows of a
// chunked copy (chunk stride x_chunk) and the panel holds PW rows of y as [chunks * CW][PW].
// Kept out of line: inlined into the tile loops, its accumulators would compete with the
// caller's values for registers and spill.
#define METS_MICRO_KERNEL __attribute__((noinline))

template <class T>
METS_MICRO_KERNEL void micro_nt(int64_t chunks, const T* __restrict x, int64_t x_chunk,
                     const T* __restrict panel, T* __restrict c, int64_t ldc) {
    vec<T> acc[MRT][NVT] = {};
    for (int64_t ch = 0; ch < chunks; ++ch) {
        const T* xc = x + ch * x_chunk;
        const T* pc = panel + ch * CW<T> * PW<T>;
        for (int kk = 0; kk < CW<T>; ++kk) {
            vec<T> y[NVT];
#pragma GCC unroll 4
            for (int v = 0; v < NVT; ++v) y[v] = load(pc + kk * PW<T> + v * W<T>);
#pragma GCC unroll 16
            for (int i = 0; i < MRT; ++i) {
                const vec<T> xi = splat(xc[i * CW<T> + kk]);
#pragma GCC unroll 4
                for (int v = 0; v < NVT; ++v) acc[i][v] += xi * y[v];
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MRT; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NVT; ++v) store(c + i * ldc + v * W<T>, acc[i][v]);
}

// c[MRN x CW] += A[MRN x K] . bm[K x CW] with bm contiguous rows of CW; A is the tile read
// row-wise (A(i, p) = g[i * ldg + p]) or, with Transposed, column-wise (A(i, p) = g[p * ldg + i]).
// Only the first m_valid rows of c are written, so c may be a caller's array without padding.
template <class T, bool Transposed>
METS_MICRO_KERNEL void micro_nn(int64_t K, const T* __restrict g, int64_t ldg, const T* __restrict bm,
                     T* __restrict c, int64_t ldc, int m_valid) {
    vec<T> acc[MRN][NVN] = {};
    for (int64_t p = 0; p < K; ++p) {
        vec<T> bv[NVN];
#pragma GCC unroll 4
        for (int v = 0; v < NVN; ++v) bv[v] = load(bm + p * CW<T> + v * W<T>);
#pragma GCC unroll 16
        for (int i = 0; i < MRN; ++i) {
            const vec<T> ai = splat(Transposed ? g[p * ldg + i] : g[i * ldg + p]);
#pragma GCC unroll 4
            for (int v = 0; v < NVN; ++v) acc[i][v] += ai * bv[v];
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MRN; ++i) {
        if (i >= m_valid) break;
#pragma GCC unroll 4
        for (int v = 0; v < NVN; ++v) {
            T* out = c + i * ldc + v * W<T>;
            store(out, load(out) + acc[i][v]);
        }
    }
}

// C[m_valid x Dp] += A[M x K] . Bm[K x Dp] with A as in micro_nn and Bm a chunked copy (K rows
// starting at bm in every chunk, chunk stride b_chunk).
template <class T, bool Transposed>
void gemm_nn(int64_t M, int64_t m_valid, int64_t K, const T* g, int64_t ldg, const T* bm,
             int64_t b_chunk, T* c, int64_t ldc, int64_t Dp) {
    // Feature chunks outside, rows inside: the chunk of Bm (K x CW) stays in L1 for all rows.
    for (int64_t d = 0; d < Dp; d += CW<T>)
        for (int64_t i = 0; i < M && i < m_valid; i += MRN)
            micro_nn<T, Transposed>(K, Transposed ? g + i : g + i * ldg, ldg,
                                    bm + d / CW<T> * b_chunk, c + i * ldc + d, ldc,
                                    int(min64(MRN, m_valid - i)));
}

// ---------------------------------------------------------------------------------------------
// Operand preparation
// ---------------------------------------------------------------------------------------------

template <class T> T row_norm(const T* r, int64_t D) {
    vec<T> acc{};
    int64_t k = 0;
    for (; k + W<T> <= D; k += W<T>) {
        const vec<T> v = load(r + k);
        acc += v * v;
    }
    T s = hsum<T>(acc);
    for (; k < D; ++k) s += r[k] * r[k];
    return std::sqrt(s);
}

// Everything the tile loops read, derived from the caller's operands.
template <class T> struct Prepared {
    const Operands<T>& op;
    int64_t D, Dp, rows_p, cols_p;
    Buffer<T> inv_a, inv_b;  // 1 / max(|row|, eps), or 1 without normalisation
    Buffer<T> xs;            // s * x, chunked [Dp / CW][rows_p][CW], zero padded
    Buffer<T> yn;            // y, chunked [Dp / CW][cols_p][CW], zero padded (backward only)
    Buffer<T> group_a, group_b;  // report groups as T, padded with ids no real row has; or empty

    const T* xs_rows(int64_t i) const { return xs.p + i * CW<T>; }
    const T* yn_rows(int64_t j) const { return yn.p + j * CW<T>; }
    int64_t xs_chunk() const { return rows_p * CW<T>; }
    int64_t yn_chunk() const { return cols_p * CW<T>; }

    Prepared(const Operands<T>& o, bool compute_norms, bool need_yn)
        : op(o),
          D(o.dim),
          Dp(round_up(o.dim, CW<T>)),
          rows_p(round_up(o.rows, MRT)),
          cols_p(round_up(o.cols, PW<T>)),
          inv_a(rows_p),
          inv_b(cols_p),
          xs(rows_p * Dp),
          yn(need_yn ? cols_p * Dp : 0),
          group_a(o.group_a ? rows_p : 0),
          group_b(o.group_b ? cols_p : 0) {
        // Padding ids: dense ids are >= 0, and the padded rows and columns are masked anyway.
        for (int64_t i = 0; group_a.p && i < rows_p; ++i)
            group_a.p[i] = i < o.rows ? T(o.group_a[i]) : T(-1);
        for (int64_t j = 0; group_b.p && j < cols_p; ++j)
            group_b.p[j] = j < o.cols ? T(o.group_b[j]) : T(-2);
        const int threads = thread_count(o.threads);
        const int64_t rows = o.rows, cols = o.cols;
        T* xsp = xs.p;
        T* ynp = yn.p;
        T* ia = inv_a.p;
        T* ib = inv_b.p;
        const int64_t Dl = D, Dpl = Dp, rows_pl = rows_p, cols_pl = cols_p;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < rows_pl + cols_pl; ++i) {
            const bool is_a = i < rows_pl;
            const int64_t r = is_a ? i : i - rows_pl;
            const int64_t n_valid = is_a ? rows : cols;
            // Row r of the chunked copy: element k lies at dst[(k / CW) * chunk + k % CW].
            T* dst = is_a ? xsp + r * CW<T> : (ynp ? ynp + r * CW<T> : nullptr);
            const int64_t chunk = (is_a ? rows_pl : cols_pl) * CW<T>;
            T inv = 0;
            const T* src = nullptr;
            if (r < n_valid) {
                src = (is_a ? o.a : o.b) + r * Dl;
                T* norm = is_a ? o.norm_a : o.norm_b;
                if (compute_norms) norm[r] = row_norm(src, Dl);
                inv = inv_norm(norm[r], o.normalize);
            }
            (is_a ? ia : ib)[r] = inv;
            if (!dst) continue;
            const T f = is_a ? inv * o.scale : inv;
            const int64_t valid = src ? Dl : 0;
            for (int64_t k0 = 0; k0 < Dpl; k0 += CW<T>, dst += chunk) {
                const int64_t n = min64(CW<T>, valid - k0);
                for (int64_t kk = 0; kk < n; ++kk) dst[kk] = src[k0 + kk] * f;
                for (int64_t kk = n < 0 ? 0 : n; kk < CW<T>; ++kk) dst[kk] = 0;
            }
        }
    }
};

// Packs columns [j0, j0 + nb) of y (rows of b scaled by inv_b) into PW-wide panels [Dp][PW];
// columns past the last valid one and features past D are zero.
template <class T> void pack_panel(const Prepared<T>& pr, int64_t j0, int64_t nb, T* panel) {
    const int64_t D = pr.D, Dp = pr.Dp, cols = pr.op.cols;
    for (int64_t jj = 0; jj < nb; jj += PW<T>) {
        T* dst = panel + jj * Dp;
        for (int c = 0; c < PW<T>; ++c) {
            const int64_t j = j0 + jj + c;
            const int64_t valid = j < cols ? D : 0;
            if (valid) {
                const T* src = pr.op.b + j * D;
                const T f = pr.inv_b.p[j];
                for (int64_t k = 0; k < valid; ++k) dst[k * PW<T> + c] = src[k] * f;
            }
            for (int64_t k = valid; k < Dp; ++k) dst[k * PW<T> + c] = 0;
        }
    }
}

// tile[mb x nb] (row stride NB) = S for rows [i0, i0 + mb) and the packed columns.
template <class T>
void logits_tile(const Prepared<T>& pr, int64_t i0, int64_t mb, int64_t nb, const T* panel,
                 T* tile) {
    const int64_t chunks = pr.Dp / CW<T>;
    for (int64_t jj = 0; jj < nb; jj += PW<T>)
        for (int64_t ii = 0; ii < mb; ii += MRT)
            micro_nt(chunks, pr.xs_rows(i0 + ii), pr.xs_chunk(), panel + jj * pr.Dp,
                     tile + ii * NB + jj, NB);
}

// The row and column groups of the diagonal schedule (see the top of the file).
struct Block {
    int64_t r0, r1, c0, c1;
};

template <class F>
void diagonal_schedule(int threads, int64_t rows_p, int64_t cols_p, int64_t col_unit, F&& work) {
    auto bound = [](int64_t n, int64_t unit, int g, int groups) {
        return (n / unit) * g / groups * unit;
    };
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        const int t = 0, nt = 1;
#endif
        for (int k = 0; k < nt; ++k) {
            const int c = (t + k) % nt;
            work(Block{bound(rows_p, MRT, t, nt), bound(rows_p, MRT, t + 1, nt),
                       bound(cols_p, col_unit, c, nt), bound(cols_p, col_unit, c + 1, nt)},
                 t);
#pragma omp barrier
        }
    }
}

// Per-thread scratch: one logits tile and one packed panel of NB columns of padded width Dp.
template <class T> struct Scratch {
    int64_t tile_size, panel_size;
    Buffer<T> mem;
    Scratch(int threads, int64_t Dp)
        : tile_size(MB * NB), panel_size(NB * Dp), mem(int64_t(threads) * (MB * NB + NB * Dp)) {}
    T* tile(int t) { return mem.p + int64_t(t) * (tile_size + panel_size); }
    T* panel(int t) { return tile(t) + tile_size; }
};

// Where a tile lies: rows [i0, i0 + mb) of which the first mr are real, columns [j0, j0 + nb)
// of which the first nc are.
struct Span {
    int64_t i0, mb, mr, j0, nb, nc;
};

// Runs `visit(span, tile, panel)` for every tile of the logits over the diagonal schedule, with
// the thread's scratch tile and panel; column panels are outside, and each is packed once before
// its tiles when `pack` is set.
template <class T, class Visit> void sweep(const Prepared<T>& pr, bool pack, Visit&& visit) {
    const Operands<T>& op = pr.op;
    const int threads = thread_count(op.threads);
    Scratch<T> scratch(threads, pr.Dp);
    diagonal_schedule(threads, pr.rows_p, pr.cols_p, PW<T>, [&](Block blk, int t) {
        T* tile = scratch.tile(t);
        T* panel = scratch.panel(t);
        for (int64_t j0 = blk.c0; j0 < blk.c1; j0 += NB) {
            const int64_t nb = min64(NB, blk.c1 - j0), nc = min64(nb, op.cols - j0);
            if (nc <= 0) break;
            if (pack) pack_panel(pr, j0, nb, panel);
            for (int64_t i0 = blk.r0; i0 < blk.r1; i0 += MB) {
                const int64_t mb = min64(MB, blk.r1 - i0), mr = min64(mb, op.rows - i0);
                if (mr <= 0) break;
                visit(Span{i0, mb, mr, j0, nb, nc}, tile, panel);
            }
        }
    });
}

// The vector form of excluded() (contrastive.h) over the valid rows of a tile of logits: every
// pair of equal groups gets the masked logit, then the positive gets its own back.  One compare
// and one select per logit, whatever the groups.
template <class T> void exclude_groups(const Prepared<T>& pr, Span s, int64_t offset, T* tile) {
    if (!pr.group_a.p) return;
    const vec<T> masked = splat(Masked<T>::value);
    const T* cg = pr.group_b.p + s.j0;
    for (int64_t i = 0; i < s.mr; ++i) {
        T* row = tile + i * NB;
        const int64_t jp = s.i0 + i + offset - s.j0;
        const bool has_positive = jp >= 0 && jp < s.nc;
        const T positive = has_positive ? row[jp] : T(0);
        const vec<T> g = splat(pr.group_a.p[s.i0 + i]);
        for (int64_t j = 0; j < s.nb; j += W<T>) {
            const vec<T> v = load(row + j);
            store(row + j, load(cg + j) == g ? masked : v);
        }
        if (has_positive) row[jp] = positive;
    }
}

// The valid mr x nc corner of a tile into a (rows, ld) matrix, and back: a tile loaded from the
// matrix is zero outside that corner.
template <class T> void copy_tile(const T* tile, Span s, T* m, int64_t ld) {
    for (int64_t i = 0; i < s.mr; ++i)
        for (int64_t j = 0; j < s.nc; ++j) m[(s.i0 + i) * ld + s.j0 + j] = tile[i * NB + j];
}

template <class T> void load_tile(const T* m, int64_t ld, Span s, T* tile) {
    for (int64_t i = 0; i < s.mb; ++i)
        for (int64_t j = 0; j < s.nb; ++j)
            tile[i * NB + j] = i < s.mr && j < s.nc ? m[(s.i0 + i) * ld + s.j0 + j] : T(0);
}

// ---------------------------------------------------------------------------------------------
// Backward: dL/dS tiles multiplied into both gradients
// ---------------------------------------------------------------------------------------------

// Where a backward pass accumulates G Y (for the rows) and G^T (sX) (for the columns).
template <class T> struct GradSinks {
    T* gy;  // rows x ldgy: G . Y   (dL/dX = s G Y)
    int64_t ldgy;
    T* gx;  // cols x ldgx: G^T . (sX) = dL/dY
    int64_t ldgx;
};

template <class T>
void accumulate_tile(const Prepared<T>& pr, const GradSinks<T>& sink, Span s, const T* tile) {
    // rows: G[mb x nc] . Y[j0 : j0 + nc]
    gemm_nn<T, false>(s.mb, s.mr, s.nc, tile, NB, pr.yn_rows(s.j0), pr.yn_chunk(),
                      sink.gy + s.i0 * sink.ldgy, sink.ldgy, pr.Dp);
    // columns: G^T[nb x mr] . sX[i0 : i0 + mr]
    gemm_nn<T, true>(s.nb, s.nc, s.mr, tile, NB, pr.xs_rows(s.i0), pr.xs_chunk(),
                     sink.gx + s.j0 * sink.ldgx, sink.ldgx, pr.Dp);
}

// Turns the accumulated G Y and G^T (sX) into the gradients of the raw inputs (in place when the
// sinks are the caller's arrays) and returns dL/ds = <G, X Y^T> = sum_i (G Y)_i . x_i.
template <class T>
double finish_gradients(const Prepared<T>& pr, const GradSinks<T>& sink, T* da, T* db) {
    const Operands<T>& op = pr.op;
    const int threads = thread_count(op.threads);
    const int64_t rows = op.rows, D = pr.D;
    Buffer<double> ds_rows(rows);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < rows + op.cols; ++i) {
        const bool is_a = i < rows;
        const int64_t r = is_a ? i : i - rows;
        const T* g = is_a ? sink.gy + r * sink.ldgy : sink.gx + r * sink.ldgx;
        const T* src = (is_a ? op.a : op.b) + r * D;
        T* out = (is_a ? da : db) + r * D;
        const T inv = (is_a ? pr.inv_a.p : pr.inv_b.p)[r];
        const T gscale = is_a ? op.scale : T(1);
        // g . x with g the gradient of the normalised row; vector lanes, then the tail.
        vec<T> dv{};
        int64_t k = 0;
        for (; k + W<T> <= D; k += W<T>) dv += load(g + k) * load(src + k);
        T dot = hsum<T>(dv);
        for (; k < D; ++k) dot += g[k] * src[k];
        dot *= inv;
        if (is_a) ds_rows.p[r] = double(dot);
        dot *= gscale;
        const bool above = (is_a ? op.norm_a : op.norm_b)[r] > T(kNormEps);
        auto out_of = [&](auto gv, auto xv) {
            return op.normalize ? normalize_backward(gv * gscale, xv * inv, dot, inv, above)
                                : gv * gscale;
        };
        for (k = 0; k + W<T> <= D; k += W<T>) store(out + k, out_of(load(g + k), load(src + k)));
        for (; k < D; ++k) out[k] = out_of(g[k], src[k]);
    }
    double ds = 0;
    for (int64_t i = 0; i < rows; ++i) ds += ds_rows.p[i];
    return ds;
}

// Fills every tile with dL/dS through `make_tile(span, tile, panel)` (zero or finite outside
// the valid mr x nc corner) and accumulates it into the gradients; column panels are packed
// first when `pack` is set.  Both gradients are accumulated straight into da and db when their
// rows need no padding, which keeps the extra memory to the two operand copies.
template <class T, class MakeTile>
double backward_pass(const Prepared<T>& pr, T* da, T* db, bool pack, MakeTile&& make_tile) {
    const Operands<T>& op = pr.op;
    const bool direct = pr.Dp == pr.D;
    Buffer<T> gy_pad(direct ? 0 : op.rows * pr.Dp), gx_pad(direct ? 0 : op.cols * pr.Dp);
    GradSinks<T> sink{direct ? da : gy_pad.p, pr.Dp, direct ? db : gx_pad.p, pr.Dp};
    for (int64_t i = 0; i < op.rows * pr.Dp; ++i) sink.gy[i] = 0;
    for (int64_t i = 0; i < op.cols * pr.Dp; ++i) sink.gx[i] = 0;
    sweep(pr, pack, [&](Span s, T* tile, T* panel) {
        make_tile(s, tile, panel);
        accumulate_tile(pr, sink, s, tile);
    });
    return finish_gradients(pr, sink, da, db);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------


template <class T>
double loss_forward(const Operands<T>& op, int64_t offset, bool symmetric, T* lse_row,
                    T* lse_col, T* logits) {
    CallScope scope;
    Prepared<T> pr(op, /*compute_norms=*/true, /*need_yn=*/false);
    const T masked = Masked<T>::value;
    Buffer<T> rmax(pr.rows_p), rsum(pr.rows_p), cmax(pr.cols_p), csum(pr.cols_p);
    Buffer<T> positive(op.rows);
    // With a fixed shift the "running maxima" are the shift itself and never move.
    const bool fixed = fixed_shift_ok<T>(double(op.scale), op.normalize);
    const T shift = op.scale, start = fixed ? shift : masked;
    for (int64_t i = 0; i < pr.rows_p; ++i) rmax.p[i] = start, rsum.p[i] = 0;
    for (int64_t j = 0; j < pr.cols_p; ++j) cmax.p[j] = start, csum.p[j] = 0;
    auto sexp_f = [](T v) { return sexp(v); };

    sweep(pr, /*pack=*/true, [&](Span s, T* tile, const T* panel) {
        const int64_t i0 = s.i0, mb = s.mb, mr = s.mr, j0 = s.j0, nb = s.nb, nc = s.nc;
        logits_tile(pr, i0, mb, nb, panel, tile);
        for (int64_t i = 0; i < mr; ++i) {
            const int64_t j = i0 + i + offset - j0;
            if (j >= 0 && j < nc) positive.p[i0 + i] = tile[i * NB + j];
        }
        // The kept logits are the excluded ones: the backward pass reads them as they are.
        exclude_groups(pr, s, offset, tile);
        if (logits) copy_tile(tile, s, logits, op.cols);
        for (int64_t i = 0; i < mb; ++i)
            for (int64_t j = (i < mr ? nc : 0); j < nb; ++j) tile[i * NB + j] = masked;
        if (fixed) {
            // One exponential per logit feeds both sums (see fixed_shift_ok).
            vec<T> col_acc[NB / W<T>] = {};
            for (int64_t i = 0; i < mb; ++i) {
                const T* row = tile + i * NB;
                vec<T> acc{};
                for (int64_t j = 0; j < nb; j += W<T>) {
                    const vec<T> e = vexp(load(row + j) - shift);
                    acc += e;
                    col_acc[j / W<T>] += e;
                }
                if (i < mr) rsum.p[i0 + i] += hsum<T>(acc);
            }
            if (symmetric)
                for (int64_t j = 0; j < nb; j += W<T>)
                    store(csum.p + j0 + j, load(csum.p + j0 + j) + col_acc[j / W<T>]);
            return;
        }
        // rows
        for (int64_t i = 0; i < mr; ++i) {
            const T* row = tile + i * NB;
            vec<T> m = splat(masked);
            for (int64_t j = 0; j < nb; j += W<T>) m = vmax(m, load(row + j));
            const T f = lse_rescale(rmax.p[i0 + i], hmax<T>(m), sexp_f);
            const vec<T> mi = splat(rmax.p[i0 + i]);
            vec<T> acc{};
            for (int64_t j = 0; j < nb; j += W<T>) acc += vexp(load(row + j) - mi);
            rsum.p[i0 + i] = rsum.p[i0 + i] * f + hsum<T>(acc);
        }
        if (!symmetric) return;
        // columns
        for (int64_t j = 0; j < nb; j += W<T>) {
            vec<T> m = splat(masked);
            for (int64_t i = 0; i < mb; ++i) m = vmax(m, load(tile + i * NB + j));
            vec<T> cm = load(cmax.p + j0 + j);
            const vec<T> f = lse_rescale(cm, m, VExp());
            vec<T> acc{};
            for (int64_t i = 0; i < mb; ++i) acc += vexp(load(tile + i * NB + j) - cm);
            store(cmax.p + j0 + j, cm);
            store(csum.p + j0 + j, load(csum.p + j0 + j) * f + acc);
        }
    });

    const LossWeights w = loss_weights(symmetric, op.rows, 1.0);
    double total_row = 0, total_col = 0, total_pos = 0;
    for (int64_t i = 0; i < op.rows; ++i) {
        lse_row[i] = rmax.p[i] + std::log(rsum.p[i]);
        total_row += double(lse_row[i]);
        total_pos += double(positive.p[i]);
    }
    if (symmetric)
        for (int64_t j = 0; j < op.cols; ++j) {
            lse_col[j] = cmax.p[j] + std::log(csum.p[j]);
            total_col += double(lse_col[j]);
        }
    return w.row * total_row + w.col * total_col - w.pos * total_pos;
}

template <class T>
double loss_backward(const Operands<T>& op, int64_t offset, bool symmetric, const T* lse_row,
                     const T* lse_col, const T* logits, double grad, T* da, T* db) {
    CallScope scope;
    Prepared<T> pr(op, /*compute_norms=*/false, /*need_yn=*/true);
    const LossWeights w = loss_weights(symmetric, op.rows, grad);
    const T w_row = T(w.row), w_col = T(w.col), w_pos = T(w.pos);
    // Padded rows and columns get a log-sum-exp of 0: their logits are 0, so their dL/dS stays
    // finite, and it multiplies zero rows of the operands.
    Buffer<T> lr(pr.rows_p), lc(pr.cols_p);
    for (int64_t i = 0; i < pr.rows_p; ++i) lr.p[i] = i < op.rows ? lse_row[i] : T(0);
    for (int64_t j = 0; j < pr.cols_p; ++j) lc.p[j] = symmetric && j < op.cols ? lse_col[j] : T(0);
    // With a fixed shift, dL/dS = exp(S - s) (alpha_row + alpha_col): the per-row and per-column
    // factors w exp(s - lse) replace the log-sum-exps.
    const bool fixed = fixed_shift_ok<T>(double(op.scale), op.normalize);
    const T shift = op.scale;
    if (fixed) {
        for (int64_t i = 0; i < pr.rows_p; ++i) lr.p[i] = w_row * sexp(shift - lr.p[i]);
        for (int64_t j = 0; j < pr.cols_p; ++j)
            lc.p[j] = symmetric ? w_col * sexp(shift - lc.p[j]) : T(0);
    }

    return backward_pass(pr, da, db, /*pack=*/!logits, [&](Span s, T* tile, const T* panel) {
        const int64_t i0 = s.i0, mb = s.mb, mr = s.mr, j0 = s.j0, nb = s.nb, nc = s.nc;
        if (logits) {
            load_tile(logits, op.cols, s, tile);
        } else {
            logits_tile(pr, i0, mb, nb, panel, tile);
            exclude_groups(pr, s, offset, tile);
        }
        for (int64_t i = 0; i < mb; ++i) {
            T* row = tile + i * NB;
            const vec<T> li = splat(lr.p[i0 + i]);
            if (fixed) {
                for (int64_t j = 0; j < nb; j += W<T>)
                    store(row + j, vexp(load(row + j) - shift) * (li + load(lc.p + j0 + j)));
            } else if (symmetric) {
                for (int64_t j = 0; j < nb; j += W<T>)
                    store(row + j, logit_grad(load(row + j), li, load(lc.p + j0 + j), w_row, w_col,
                                              VExp()));
            } else {
                for (int64_t j = 0; j < nb; j += W<T>)
                    store(row + j, vexp(load(row + j) - li) * w_row);
            }
        }
        for (int64_t i = 0; i < mr; ++i) {
            const int64_t j = i0 + i + offset - j0;
            if (j >= 0 && j < nc) tile[i * NB + j] -= w_pos;
        }
    });
}

template <class T> void similarity_forward(const Operands<T>& op, T* out) {
    CallScope scope;
    Prepared<T> pr(op, /*compute_norms=*/true, /*need_yn=*/false);
    sweep(pr, /*pack=*/true, [&](Span s, T* tile, const T* panel) {
        logits_tile(pr, s.i0, s.mb, s.nb, panel, tile);
        copy_tile(tile, s, out, op.cols);
    });
}

template <class T>
double similarity_backward(const Operands<T>& op, const T* grad_out, T* da, T* db) {
    CallScope scope;
    Prepared<T> pr(op, /*compute_norms=*/false, /*need_yn=*/true);
    return backward_pass(pr, da, db, /*pack=*/false, [&](Span s, T* tile, const T*) {
        load_tile(grad_out, op.cols, s, tile);
    });
}

#define METS_INSTANTIATE(T)                                                                        \
    template double loss_forward<T>(const Operands<T>&, int64_t, bool, T*, T*, T*);               \
    template double loss_backward<T>(const Operands<T>&, int64_t, bool, const T*, const T*,       \
                                     const T*, double, T*, T*);                                    \
    template void similarity_forward<T>(const Operands<T>&, T*);                                   \
    template double similarity_backward<T>(const Operands<T>&, const T*, T*, T*);
METS_INSTANTIATE(float)
METS_INSTANTIATE(double)

}  // namespace METS_ISA
}  // namespace mets
