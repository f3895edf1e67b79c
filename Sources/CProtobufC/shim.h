#ifndef IDLEVIT_CPROTOBUFC_SHIM_H
#define IDLEVIT_CPROTOBUFC_SHIM_H
// The protobuf-c runtime (Debian libprotobuf-c-dev) that the generated ONNX code in COnnx uses.
#include <protobuf-c/protobuf-c.h>
#endif
