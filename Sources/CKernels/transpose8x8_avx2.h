// An 8 x 8 block of floats transposed with AVX2's in-lane shuffles (24 shuffles for 64 floats),
// for the instruction sets that have them: kernels_avx2.c and kernels_avx512.c define
// TRANSPOSE_8X8 as this function, inside their target region.
//   to[c * to_stride + r] = from[r * from_stride + c] for r, c in 0..<8
static inline void transpose8x8_avx2(const float *from, size_t from_stride, float *to, size_t to_stride) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(from + i * from_stride);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     // r0c0 r1c0 r0c1 r1c1 | r0c4 r1c4 r0c5 r1c5
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); // r0c2 r1c2 r0c3 r1c3 | r0c6 r1c6 r0c7 r1c7
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);         // column 0 | column 4, rows i..i+3
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);     // column 1 | column 5
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44); // column 2 | column 6
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE); // column 3 | column 7
    }
    for (int c = 0; c < 4; c++) {
        _mm256_storeu_ps(to + c * to_stride, _mm256_permute2f128_ps(u[c], u[c + 4], 0x20));
        _mm256_storeu_ps(to + (c + 4) * to_stride, _mm256_permute2f128_ps(u[c], u[c + 4], 0x31));
    }
}
