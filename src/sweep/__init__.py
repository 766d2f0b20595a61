"""sweep: differentiable seismic wave propagation with FWI gradients that fit in memory."""
__version__ = "0.1.0"
