// Which kernel tables this CPU can run. An instruction set needs both the CPU's support
// (CPUID) and the operating system's: the OS must save and restore the wider registers on a
// context switch, which it announces in XCR0 (read with XGETBV once CPUID says OSXSAVE). A
// hypervisor can hide AVX-512 state from a guest whose CPU has the instructions.
#include "CKernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <stdint.h>

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

int idv_isa_supported(int isa) {
    if (isa == IDV_ISA_PORTABLE || isa == IDV_ISA_AVX512_GEOMETRY) return 1;
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int fma = (ecx >> 12) & 1, osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1;
    if (!(fma && osxsave && avx)) return 0;
    const uint64_t xcr0 = read_xcr0();
    // Bits 1 and 2: SSE and AVX (upper halves of ymm) state.
    if ((xcr0 & 0x6) != 0x6) return 0;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const int avx2 = (ebx >> 5) & 1, avx512f = (ebx >> 16) & 1;
    switch (isa) {
    case IDV_ISA_AVX2:
        return avx2;
    case IDV_ISA_AVX512:
        // Bits 5-7: opmask registers, upper halves of zmm0-15, zmm16-31.
        return avx2 && avx512f && (xcr0 & 0xE0) == 0xE0;
    default:
        return 0;
    }
}

#else

int idv_isa_supported(int isa) { return isa == IDV_ISA_PORTABLE || isa == IDV_ISA_AVX512_GEOMETRY; }

#endif

const IdvKernels *idv_kernels_portable(void);
const IdvKernels *idv_kernels_avx2(void);
const IdvKernels *idv_kernels_avx512(void);
const IdvKernels *idv_kernels_avx512_geometry(void);

const IdvKernels *idv_kernels(int isa) {
    switch (isa) {
    case IDV_ISA_PORTABLE: return idv_kernels_portable();
    case IDV_ISA_AVX2: return idv_kernels_avx2();
    case IDV_ISA_AVX512: return idv_kernels_avx512();
    case IDV_ISA_AVX512_GEOMETRY: return idv_kernels_avx512_geometry();
    default: return 0;
    }
}
