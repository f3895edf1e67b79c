// Part of kernels_template.h (included there, once per instruction set): fused multi-head
// attention for one head and a range of queries.

// ---------------------------------------------------------------------------------------------
// Fused attention for one head and a range of queries, NR queries at a time:
//   S^T = K Q^T    keys down, the NR queries across: the microkernel reads the head's K rows
//                  (copied once per call), and only the NR x d query tile is transposed;
//   softmax down each column, vectorised across the queries (no horizontal reductions), in
//                  base 2: the query tile comes multiplied by scale x log2 e, so the scores
//                  are the exponents of 2 and exp is 2^x (`v_exp2_nonpositive`);
//   O = P V        P read from S^T with strides (rows of the tile are its columns), V from
//                  the head's copy in panels of NR columns, the 1 / row sum applied in the
//                  epilogue.
// The scores never exist beyond tokens x NR floats (6-12 KB at 197 tokens: L1).

static size_t ISA_NAME(round_up16)(size_t x) { return (x + 15) / 16 * 16; }

static size_t ISA_NAME(attention_workspace_floats)(size_t tokens, size_t head_dim) {
    const size_t padded = (head_dim + NR - 1) / NR * NR;
    return ISA_NAME(round_up16)(head_dim * NR) + ISA_NAME(round_up16)(tokens * NR) + ISA_NAME(round_up16)(NR) +
           ISA_NAME(round_up16)(tokens * head_dim) + tokens * padded;
}

// The query tile transposed, qt[kk][j] = query j's entry kk, with zero columns past `queries`.
// Eight queries by eight entries at a time with AVX2's in-lane shuffles where the instruction
// set has them: element by element, this copy took 7% of the kernel's time at DeiT's d = 64.
static void ISA_NAME(transpose_queries)(const float *q, size_t stride, size_t queries, size_t d, float *qt) {
    size_t j0 = 0;
#if defined(TRANSPOSE_8X8)
    for (; j0 + 8 <= queries; j0 += 8) {
        size_t kk = 0;
        for (; kk + 8 <= d; kk += 8) TRANSPOSE_8X8(q + j0 * stride + kk, stride, qt + kk * NR + j0, NR);
        for (; kk < d; kk++)
            for (size_t j = j0; j < j0 + 8; j++) qt[kk * NR + j] = q[j * stride + kk];
    }
#endif
    for (size_t j = j0; j < NR; j++) {
        if (j < queries) {
            for (size_t kk = 0; kk < d; kk++) qt[kk * NR + j] = q[j * stride + kk];
        } else {
            for (size_t kk = 0; kk < d; kk++) qt[kk * NR + j] = 0;
        }
    }
}

static void ISA_NAME(attention)(const IdvAttentionHead *h, size_t query_begin, size_t query_end, float *workspace) {
    const size_t tokens = h->tokens, d = h->head_dim, stride = h->row_stride;
    float *qt = workspace;                                         // [d][NR]: the query tile, transposed
    float *scores = qt + ISA_NAME(round_up16)(d * NR);             // [tokens][NR]: keys down, queries across
    float *inverse = scores + ISA_NAME(round_up16)(tokens * NR);   // [NR]: 1 / softmax sums
    // The head's keys and values, copied together: in place they are d floats out of every
    // 3C-float row (at batch 8 DeiT-S's qkv is 7 MB, past L2), a strided walk of hundreds of
    // pages for every query tile; the copy is one pass. V is copied in panels of NR columns,
    // [panel][token][NR] (the last zero-padded), so that `P V` streams each panel's slice
    // front to back, as the GEMM streams packed weights.
    const size_t panels = (d + NR - 1) / NR;
    float *k = inverse + ISA_NAME(round_up16)(NR);   // [tokens][d]
    float *v = k + ISA_NAME(round_up16)(tokens * d); // [panels][tokens][NR]
    // In vectors, not memcpy: the rows are 64 floats (a panel's 16) and a call per row cost
    // 5% of the kernel at DeiT's sizes.
    for (size_t t = 0; t < tokens; t++) {
        const float *from_k = h->k + t * stride, *from_v = h->v + t * stride;
        float *to_k = k + t * d;
        for (size_t c = 0; c < d; c += VL) ISA_NAME(v_store_n)(to_k + c, ISA_NAME(v_load_n)(from_k + c, d - c), d - c);
        for (size_t p = 0; p < panels; p++) {
            const size_t col = p * NR;
            float *to = v + (p * tokens + t) * NR;
            // The last panel past d is zero: v_load_n fills lanes past its count with zeros.
            V_STORE(to, ISA_NAME(v_load_n)(from_v + col, d - col));
            V_STORE(to + VL, d > col + VL ? ISA_NAME(v_load_n)(from_v + col + VL, d - col - VL) : V_ZERO());
        }
    }
    const vf log2_scale = V_SET1(h->scale * 1.4426950408889634f);
    for (size_t q0 = query_begin; q0 < query_end; q0 += NR) {
        const size_t queries = MIN_SIZE(NR, query_end - q0);
        ISA_NAME(transpose_queries)(h->q + q0 * stride, stride, queries, d, qt);
        for (size_t i = 0; i < d * NR; i += VL) V_STORE(qt + i, V_MUL(V_LOAD(qt + i), log2_scale));
        for (size_t key = 0; key < tokens; key += MR)
            ISA_NAME(tile)(MIN_SIZE(MR, tokens - key), NR, d, k + key * d, d, 1, NULL, qt, NR, scores + key * NR, NR, NULL, NULL, 0);

        // Softmax down each column (2^s, s = scale log2(e) q . k): subtract the column maximum
        // first, so that every exponent is <= 0.
        vf max0 = V_LOAD(scores), max1 = V_LOAD(scores + VL);
        for (size_t key = 1; key < tokens; key++) {
            max0 = V_MAX(max0, V_LOAD(scores + key * NR));
            max1 = V_MAX(max1, V_LOAD(scores + key * NR + VL));
        }
        vf sum0 = V_ZERO(), sum1 = V_ZERO();
        for (size_t key = 0; key < tokens; key++) {
            float *row = scores + key * NR;
            const vf e0 = ISA_NAME(v_exp2_nonpositive)(V_SUB(V_LOAD(row), max0));
            const vf e1 = ISA_NAME(v_exp2_nonpositive)(V_SUB(V_LOAD(row + VL), max1));
            V_STORE(row, e0);
            V_STORE(row + VL, e1);
            sum0 = V_ADD(sum0, e0);
            sum1 = V_ADD(sum1, e1);
        }
        V_STORE(inverse, V_DIV(V_SET1(1.0f), sum0));
        V_STORE(inverse + VL, V_DIV(V_SET1(1.0f), sum1));

        // Panel by panel, so that a panel's slice of V (tokens x NR floats) stays in L1 for
        // every row tile of queries after the first.
        for (size_t p = 0; p < panels; p++) {
            const size_t col = p * NR;
            for (size_t i = 0; i < queries; i += MR) {
                const ISA_NAME(Epilogue) e = {.row_scale = inverse + i};
                float *out = h->out + (q0 + i) * h->out_stride + col;
                ISA_NAME(tile)(MIN_SIZE(MR, queries - i), MIN_SIZE(NR, d - col), tokens, scores + i, 1, NR, NULL, v + p * tokens * NR,
                               NR, out, h->out_stride, &e, NULL, 0);
            }
        }
    }
}

