/* One instance of the 3-D kernels, included by acoustic_instance.h with REAL, SFX (every static name) and
 * SWEEP3_NAME (the three exported kernels' names) set, once per precision for constant density and once more with
 * SWEEP_VRZ 1 for the variable-density equation (the same templates; see acoustic3d_common.h).
 * Compiled without FMA contraction (see c3_x in acoustic3d_impl.h) and with 256-bit vectors (measured a little
 * faster than 512-bit ones on Zen 4, and the C-PML spans are rounded to fewer cells). */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#pragma GCC target("prefer-vector-width=256")
#include "acoustic3d_common.h"
#include "acoustic3d_impl.h"
#include "acoustic3d_adjoint.h"
#include "acoustic3d_retreat.h"
#pragma GCC pop_options
