// SHA-256 block compression: with the x86 SHA extensions (SHA-NI) where the CPU has them,
// else portable C. Only whole 64-byte blocks are compressed here; padding, buffering and the
// choice of kernel are in Swift (Sources/Bundle/SHA256.swift). The instructions hash ~1.8 GB/s,
// several times the portable code, which is what keeps the bundle writer's provenance hash
// from dominating `convert`.
#ifndef CSHA256_H
#define CSHA256_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has the SHA extensions (and the SSSE3/SSE4.1 they are used with), else 0.
/// Decided once with CPUID; always 0 on other architectures.
int idlevit_sha256_hardware_available(void);

/// Runs `blocks` 64-byte blocks from `data` through the compression function, updating
/// `state` (the eight working words, a first). Call only when the hardware is available.
void idlevit_sha256_hardware_compress(uint32_t state[8], const uint8_t *data, size_t blocks);

/// The same compression in portable C, on any CPU.
void idlevit_sha256_portable_compress(uint32_t state[8], const uint8_t *data, size_t blocks);

#endif
