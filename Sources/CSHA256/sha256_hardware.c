// SHA-256 compression with the SHA-NI instructions. The instructions keep the eight working
// words in two registers, ABEF and CDGH (A in the highest lane), rather than the FIPS order
// the caller's state uses, so the state is reshuffled on entry and exit. Each
// sha256rnds2 performs two rounds with two message-plus-constant words taken from the low
// lanes; sha256msg1/msg2 compute four words of the message schedule at a time.
#include "CSHA256.h"

#include "round_constants.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

int idlevit_sha256_hardware_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const int sha = (ebx >> 29) & 1;
    return ssse3 && sse41 && sha;
}

// Four rounds: the message words plus constants for rounds 4i..4i+3 go through two
// sha256rnds2, the second taking the upper pair.
#define FOUR_ROUNDS(words, i)                                                              \
    do {                                                                                   \
        __m128i wk = _mm_add_epi32((words), _mm_loadu_si128((const __m128i *)&idlevit_sha256_round_constants[4 * (i)])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                      \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));             \
    } while (0)

// w[t..t+3] from the four previous groups: w[t-16] + s0(w[t-15]) (msg1), + w[t-7] (the
// alignr of the last two groups), then s1 of w[t-2] folded in (msg2).
#define NEXT_WORDS(w0, w1, w2, w3) \
    _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32((w0), (w1)), _mm_alignr_epi8((w3), (w2), 4)), (w3))

__attribute__((target("sha,sse4.1,ssse3")))
void idlevit_sha256_hardware_compress(uint32_t state[8], const uint8_t *data, size_t blocks) {
    // (A,B,C,D) and (E,F,G,H), lowest lane first, into ABEF and CDGH.
    // Register names read from the highest lane down, as the instructions' documentation does.
    __m128i cdab = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0xB1);
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    // Reverses the bytes of each 32-bit word: the message is big-endian.
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);

    for (size_t block = 0; block < blocks; block++, data += 64) {
        const __m128i abef_start = abef, cdgh_start = cdgh;
        __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), byte_swap);
        __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), byte_swap);
        __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), byte_swap);
        __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), byte_swap);
        FOUR_ROUNDS(w0, 0);
        FOUR_ROUNDS(w1, 1);
        FOUR_ROUNDS(w2, 2);
        FOUR_ROUNDS(w3, 3);
        // Twelve more groups; the four registers roll so each new group replaces the oldest.
        for (int i = 4; i < 16; i += 4) {
            w0 = NEXT_WORDS(w0, w1, w2, w3); FOUR_ROUNDS(w0, i);
            w1 = NEXT_WORDS(w1, w2, w3, w0); FOUR_ROUNDS(w1, i + 1);
            w2 = NEXT_WORDS(w2, w3, w0, w1); FOUR_ROUNDS(w2, i + 2);
            w3 = NEXT_WORDS(w3, w0, w1, w2); FOUR_ROUNDS(w3, i + 3);
        }
        abef = _mm_add_epi32(abef, abef_start);
        cdgh = _mm_add_epi32(cdgh, cdgh_start);
    }

    // Back to FIPS order.
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0)); // D,C,B,A
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));   // H,G,F,E
}

#else

int idlevit_sha256_hardware_available(void) { return 0; }

void idlevit_sha256_hardware_compress(uint32_t state[8], const uint8_t *data, size_t blocks) {
    (void)state; (void)data; (void)blocks;
}

#endif
