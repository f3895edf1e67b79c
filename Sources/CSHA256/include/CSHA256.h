// SHA-256 block compression with the x86 SHA extensions (SHA-NI), chosen at run time.
//
// Only the compression of whole 64-byte blocks lives here; padding, buffering and the
// portable fallback are in Swift (Sources/Bundle/SHA256.swift). The Swift code hashes a
// checkpoint at ~250 MB/s; these instructions do it several times faster, which is what
// the bundle writer's provenance field needs to keep `convert` ahead of Python.
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

#endif
