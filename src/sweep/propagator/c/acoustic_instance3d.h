/* One instance of the 3-D kernels in float32 and float64, with the names ISA(name_f32) / ISA(name_f64);
 * included by acoustic3d.c (native build) or acoustic3d_<path>.c (one code path of a portable build: see "Code
 * paths" in acoustic.c), a translation unit of its own beside the 2-D one (acoustic_instance.h). Constant
 * density (SWEEP_VRZ 0: sweep_acoustic3d_*) and variable density (SWEEP_VRZ 1: sweep_acoustic3d_vrz_*, static
 * helpers ending in _vrz_f32 / _vrz_f64); SWEEP3_NAME(op) names an exported kernel. */
#define REAL float
#define SFX(name) ISA(name##_f32)
#define SWEEP_VRZ 0
#define SWEEP3_NAME(op) ISA(sweep_acoustic3d_##op##_f32)
#include "acoustic3d_instance.h"
#undef SWEEP3_NAME
#undef SFX
#undef SWEEP_VRZ
#define SFX(name) ISA(name##_vrz_f32)
#define SWEEP_VRZ 1
#define SWEEP3_NAME(op) ISA(sweep_acoustic3d_vrz_##op##_f32)
#include "acoustic3d_instance.h"
#undef SWEEP3_NAME
#undef SFX
#undef SWEEP_VRZ
#undef REAL

#define REAL double
#define SFX(name) ISA(name##_f64)
#define SWEEP_VRZ 0
#define SWEEP3_NAME(op) ISA(sweep_acoustic3d_##op##_f64)
#include "acoustic3d_instance.h"
#undef SWEEP3_NAME
#undef SFX
#undef SWEEP_VRZ
#define SFX(name) ISA(name##_vrz_f64)
#define SWEEP_VRZ 1
#define SWEEP3_NAME(op) ISA(sweep_acoustic3d_vrz_##op##_f64)
#include "acoustic3d_instance.h"
#undef SWEEP3_NAME
#undef SFX
#undef SWEEP_VRZ
#undef REAL
