#include "CFuzzDriver.h"

// Exported by libFuzzer (LLVM 12+): parses the flags and runs the fuzzing loop.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

int idlevit_fuzz_main(int argc, char **argv, idlevit_fuzz_callback callback) {
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}
