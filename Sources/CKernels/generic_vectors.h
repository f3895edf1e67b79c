// The kernel vocabulary (see kernels_template.h) in the compiler's generic vectors of VL
// lanes, for any CPU: the including file defines VL first. Multiply and add stay separate
// instructions where the target has no FMA.
#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(4 * VL)));
typedef int32_t generic_vi __attribute__((vector_size(4 * VL)));
typedef uint32_t generic_vu __attribute__((vector_size(4 * VL)));

static inline vf generic_load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void generic_store(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf generic_splat(float x) {
    vf v;
    for (int i = 0; i < VL; i++) v[i] = x;
    return v;
}

// The second operand when unordered, like vmaxps / vminps.
static inline vf generic_select(generic_vi mask, vf a, vf b) {
    return (vf)((mask & (generic_vi)a) | (~mask & (generic_vi)b));
}

#define V_ZERO() generic_splat(0)
#define V_SET1(x) generic_splat(x)
#define V_LOAD(p) generic_load(p)
#define V_STORE(p, v) generic_store(p, v)
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_MAX(a, b) generic_select((a) > (b), (a), (b))
#define V_MIN(a, b) generic_select((a) < (b), (a), (b))
#define V_POW2N(t) ((vf)((generic_vu)(t) << 23))
