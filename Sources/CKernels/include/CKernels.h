// The interpreter's compute kernels in C: a GEMM over weights packed once into panels, fused
// multi-head attention, and an FMA peak loop, each compiled for AVX-512, for AVX2 + FMA and
// for the portable baseline in one binary. The caller picks a kernel table at run time with
// `idv_isa_supported` (CPUID and XGETBV), so no instruction the CPU or the OS lacks ever runs.
//
// Threading and partitioning stay in Swift (Sources/Interpreter): a kernel call computes one
// rectangle of the output (rows x panels, or queries of one head) on the calling thread.
#ifndef IDLEVIT_CKERNELS_H
#define IDLEVIT_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Instruction sets the kernels are built for, best last.
typedef enum {
    IDV_ISA_PORTABLE = 0,
    IDV_ISA_AVX2 = 1,
    IDV_ISA_AVX512 = 2,
    /// Tests only: the AVX-512 kernels' geometry in generic vectors, runs on any CPU.
    IDV_ISA_AVX512_GEOMETRY = 3,
} IdvISA;

/// 1 when this CPU and its operating system can run the kernels of `isa` (the instructions in
/// CPUID and the register state enabled in XCR0), else 0. Portable is always 1.
int idv_isa_supported(int isa);

/// Rows picked image by image, as `gather_tokens` picks them: row m of the operand is row
/// (m / per_image) * image_rows + index[m] of the matrix. With `index` NULL, row m is row m.
/// Every index must lie in [0, image_rows): the engine fuses only `token_select`'s output,
/// which lists valid token positions.
typedef struct {
    const int32_t *index;
    size_t per_image;
    size_t image_rows;
} IdvRowIndex;

/// One matrix product `C = epilogue(A W^T)` over weights packed by `idv_pack_panels`:
///
///     acc[m, o]  = sum_k A[m, k] * W[o, k]          (k in order 0..<K, same on every thread)
///     C[m, o]    = residual[m, o] + scale[o] * act(acc[m, o] + bias[o])
///
/// with `act` GELU (exact erf form) when `gelu` is set, and each of bias, scale and residual
/// left out when NULL. `residual` may be `c` itself (same stride): each element is read before
/// it is written. With `ln_weight`, each row of A first goes through LayerNorm over its K
/// elements (biased variance, `ln_eps`) with `ln_weight`/`ln_bias`, in the workspace.
///
/// `a_rows` / `residual_rows` (index NULL: row m is row m) read A's / the residual's rows
/// where a `gather_tokens` would have put them: the gather fused into the product (with
/// `ln_weight`, the LayerNorm reads the picked rows). The residual is then never `c`.
typedef struct {
    const float *a;
    size_t lda;
    /// Packed weight panels: `panels` x [K][NR].
    const float *b;
    size_t k;
    /// Output columns (weight rows) in the packed matrix.
    size_t n;
    float *c;
    size_t ldc;
    const float *bias;
    const float *scale;
    const float *residual;
    size_t ldr;
    int gelu;
    const float *ln_weight;
    const float *ln_bias;
    float ln_eps;
    IdvRowIndex a_rows;
    IdvRowIndex residual_rows;
} IdvGemm;

/// One head of scaled dot-product attention for the queries [query_begin, query_end):
/// `out[i, :] = softmax_j(scale * q_i . k_j) v_j` over all `tokens` keys. Rows of q, k and v
/// are `row_stride` floats apart (3C inside a fused qkv), rows of out `out_stride` apart.
typedef struct {
    const float *q;
    const float *k;
    const float *v;
    size_t row_stride;
    size_t tokens;
    size_t head_dim;
    float scale;
    float *out;
    size_t out_stride;
} IdvAttentionHead;

typedef struct {
    int isa;
    /// Microkernel tile: MR rows by NR columns; weights are packed in panels of NR.
    size_t mr;
    size_t nr;
    /// Rows of output [row_begin, row_end) and weight panels [panel_begin, panel_end).
    /// `workspace`: `gemm_workspace_floats(rows, k)` floats, 64-byte aligned, per thread.
    void (*gemm)(const IdvGemm *g, size_t row_begin, size_t row_end, size_t panel_begin, size_t panel_end,
                 float *workspace);
    size_t (*gemm_workspace_floats)(size_t rows, size_t k);
    /// `workspace`: `attention_workspace_floats(tokens, head_dim)` floats, 64-byte aligned.
    void (*attention)(const IdvAttentionHead *h, size_t query_begin, size_t query_end, float *workspace);
    size_t (*attention_workspace_floats)(size_t tokens, size_t head_dim);
    /// `y[i] = gelu(x[i])`, exact erf form; `y` may be `x`.
    void (*gelu)(const float *x, float *y, size_t count);
    /// `y[i] = 2^x[i]` for `x[i] <= 0` (2^-126 below -126), as attention's softmax computes it;
    /// for tests of its accuracy.
    void (*exp2_nonpositive)(const float *x, float *y, size_t count);
    /// LayerNorm (biased variance) of `rows` rows of `count` floats, `stride` floats apart in
    /// both x and y; `y` may be `x`.
    void (*layer_norm)(const float *x, size_t rows, size_t count, size_t stride, const float *weight, const float *bias,
                       float eps, float *y);
    /// `iterations` rounds of dependent FMAs on independent accumulators (enough to fill every
    /// FMA pipe); returns a value that depends on all of them. Flops: `peak_flops_per_iteration`.
    float (*fma_loop)(size_t iterations);
    size_t peak_flops_per_iteration;
    /// `iterations` calls of the GEMM's microkernel, one MR x NR tile each over operands that
    /// stay in L1 (a 16 KB panel slice): the most the GEMM's inner loop reaches on this machine,
    /// its set-up and stores included, with no cache miss to blame. Flops: `tile_flops_per_iteration`.
    float (*tile_loop)(size_t iterations);
    size_t tile_flops_per_iteration;
    /// The token selection's Double sums: `sum_i a[i] b[i]` over Float (`dot_ff`) or Double
    /// and Float (`dot_df`) operands, and `y[0..<n] = sum_r coefficients[r] w[r * stride ..< + n]`
    /// (four rows per sweep of y, a quarter of the rows apart, then the rows left).
    double (*dot_ff)(const float *a, const float *b, size_t n);
    double (*dot_df)(const double *a, const float *b, size_t n);
    /// Four `dot_ff`s of the rows `a`, `a + stride`, ... with `b` into `out[r * out_stride]`,
    /// bit for bit the same, with the rows read side by side (more of the memory bus busy at once).
    void (*dot4_ff)(const float *a, size_t stride, const float *b, size_t n, double *out, size_t out_stride);
    void (*axpy_rows_df)(const float *w, size_t stride, size_t rows, const double *coefficients, size_t n, double *y);
} IdvKernels;

/// The kernel table of `isa`, or NULL when this build has none for it (not x86-64). Check
/// `idv_isa_supported` before calling into it.
const IdvKernels *idv_kernels(int isa);

/// Floats of a `rows` x `k` matrix packed in panels of `nr` rows (the last panel zero-padded).
size_t idv_packed_floats(size_t rows, size_t k, size_t nr);

/// Packs panels [panel_begin, panel_end) of the row-major `rows` x `k` matrix `w` (a linear
/// layer's [out, in] weight): `out[p][kk][j] = w[p * nr + j][kk]`, zero past the last row.
void idv_pack_panels(const float *w, size_t rows, size_t k, size_t nr, size_t panel_begin, size_t panel_end,
                     float *out);

/// Output positions [position_begin, position_end) of a convolution's im2col over one
/// `channels` x `height` x `width` image: position p = oy * out_width + ox becomes row p of
/// `columns`, its window over every channel in the weight's (c, ky, kx) order
/// (`channels * kernel * kernel` floats), zeros where the window hangs over the padding. The
/// patch embedding is the case kernel = stride = patch, padding 0.
void idv_unfold_windows(const float *image, size_t channels, size_t height, size_t width, size_t kernel, size_t stride,
                        size_t padding, size_t out_width, size_t position_begin, size_t position_end, float *columns);

/// Token selection's ranking: the tokens [first, first + count) ordered by descending
/// `scores[token]`, equal scores by ascending token, into `order` (`count` entries);
/// `scratch` holds `count` more. With NaN scores the order is unspecified, but each token is
/// still listed once.
void idv_rank_descending(const double *scores, size_t first, size_t count, int32_t *order, int32_t *scratch);

#endif
