// libFuzzer's driver, called from each target's main (SwiftPM links executables with their
// own main, so libFuzzer's is not used).
#ifndef CFUZZDRIVER_H
#define CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

typedef int (*idlevit_fuzz_callback)(const uint8_t *data, size_t size);

/// Runs libFuzzer with the command line and the target's callback; returns its exit status.
int idlevit_fuzz_main(int argc, char **argv, idlevit_fuzz_callback callback);

#endif
