"""sweep: differentiable seismic wave propagation with FWI gradients that fit in memory."""
import os as _os
import sys as _sys

# torch's CPU operators run on libgomp, whose threads spin for milliseconds while they wait unless
# OMP_WAIT_POLICY=passive is set before the runtime starts (at `import torch`). On a node shared with
# other busy processes that made every torch operation of a 2-thread run 10-50x slower (docs/design.md,
# "Threads and a busy machine"). When sweep is imported first, as every sweep command is, and the user has
# not chosen a policy, choose the passive one; after `import torch` it is too late, and the user sets it.
if "torch" not in _sys.modules and "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__version__ = "0.1.0"
