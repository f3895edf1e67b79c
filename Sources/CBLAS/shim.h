#ifndef IDLEVIT_CBLAS_SHIM_H
#define IDLEVIT_CBLAS_SHIM_H
#include <cblas.h>
#endif
