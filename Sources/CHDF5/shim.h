#ifndef IDLEVIT_CHDF5_SHIM_H
#define IDLEVIT_CHDF5_SHIM_H
// libhdf5 spells its constants as macros that call H5open() and read mutable globals
// (H5T_NATIVE_FLOAT is `(H5open(), H5T_NATIVE_FLOAT_g)`): Swift imports neither, so each one
// used by the reader is wrapped in a function here. The version-dependent calls (object
// info changed shape in 1.12) are wrapped too, so the Swift side sees one API.
#include <hdf5.h>
#include <sys/prctl.h>
#include <signal.h>
#include <string.h>

static inline unsigned idlevit_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline hid_t idlevit_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t idlevit_h5s_all(void) { return H5S_ALL; }
static inline hid_t idlevit_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t idlevit_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t idlevit_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t idlevit_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t idlevit_h5t_native_llong(void) { return H5T_NATIVE_LLONG; }
static inline hid_t idlevit_h5t_c_s1(void) { return H5T_C_S1; }
static inline size_t idlevit_h5t_variable(void) { return H5T_VARIABLE; }

/// 1 for a hard link, 0 for a soft, external or user-defined one, negative on error.
static inline int idlevit_h5_link_is_hard(hid_t location, const char *name) {
    H5L_info_t info;
    if (H5Lget_info(location, name, &info, H5P_DEFAULT) < 0) return -1;
    return info.type == H5L_TYPE_HARD ? 1 : 0;
}

/// The object a hard link points to: its kind (H5O_type_t), a file-unique identity (its
/// address) for cycle detection, and how many attributes it carries.
static inline int idlevit_h5_object_info(hid_t location, const char *name, int *kind,
                                         unsigned long long *identity, unsigned long long *attributes) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info_by_name3(location, name, &info, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS, H5P_DEFAULT) < 0) return -1;
    unsigned long long token = 0;
    memcpy(&token, &info.token, sizeof(token) < sizeof(info.token) ? sizeof(token) : sizeof(info.token));
    *identity = token;
#else
    H5O_info_t info;
    if (H5Oget_info_by_name2(location, name, &info, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS, H5P_DEFAULT) < 0) return -1;
    *identity = (unsigned long long)info.addr;
#endif
    *kind = (int)info.type;
    *attributes = (unsigned long long)info.num_attrs;
    return 0;
}

/// The reader must not outlive idlevit (prctl is variadic, so Swift cannot call it).
static inline void idlevit_die_with_parent(void) { prctl(PR_SET_PDEATHSIG, SIGKILL); }

#endif
