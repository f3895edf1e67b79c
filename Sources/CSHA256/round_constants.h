#ifndef CSHA256_ROUND_CONSTANTS_H
#define CSHA256_ROUND_CONSTANTS_H
#include <stdint.h>

/// The first 32 bits of the fractional parts of the cube roots of the first 64 primes
/// (FIPS 180-4 4.2.2), shared by both kernels.
extern const uint32_t idlevit_sha256_round_constants[64];

#endif
