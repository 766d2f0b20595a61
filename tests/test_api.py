"""Public-API tests of ``PropTorch`` and its options (DESIGN.md section 1 and the seed notebook).

Everything runs on CPU on tiny grids with short records; one test uses exactly the seed notebook's
cell-1 shapes with a short ``nt``.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
import warnings

import numpy as np
import pytest
import torch

from sweep.datasets import MARMOUSI_DH, load_marmousi
from sweep.equations import Acoustic
from sweep.propagator.options import BoundaryOptions, CkptOptions, CUDAOptions, EagerOptions, MemoryOptions
from sweep.propagator.strategy import resolve_memory
from sweep.propagator.torch import PropTorch
from sweep.signal import ricker

# --------------------------------------------------------------------------------------------------
# A tiny, well-sampled problem (no dispersion warning, stable dt) used by most tests.
NZ, NX = 12, 16
DH, DT, NT = 5.0, 0.001, 80
FREQ, DELAY = 25.0, 0.04
VP0 = 2000.0
ABCN = 4


def compiled_available() -> bool:
    try:
        from sweep.propagator.c import library_available
    except ImportError:
        return False
    return bool(library_available())


def tiny_wavelet(nt: int = NT, dt: float = DT, dtype=np.float32) -> np.ndarray:
    t = np.arange(nt, dtype=dtype) * dt
    return ricker(t - DELAY, f=FREQ)


def tiny_vp(dtype=torch.float32, requires_grad: bool = False) -> torch.Tensor:
    z = torch.arange(NZ, dtype=torch.float64)[:, None]
    x = torch.arange(NX, dtype=torch.float64)[None, :]
    vp = (VP0 + 20.0 * z + 5.0 * x).to(dtype)  # a gentle gradient, so every cell matters
    return vp.requires_grad_(requires_grad)


def tiny_geometry(nshots: int = 1):
    src = np.array([[8 - 3 * s, 6] for s in range(nshots)], dtype=np.int64)          # (nshots, 2)
    rec_x = np.arange(0, NX, 3, dtype=np.int64)
    rec = np.stack([rec_x, np.full_like(rec_x, 2)], axis=1)                          # (nrec, 2)
    rec = np.repeat(rec[None], nshots, axis=0)                                        # (nshots, nrec, 2)
    return src, rec


def solver(nt: int = NT, **kw) -> PropTorch:
    args = dict(shape=(NZ, NX), dh=DH, dt=DT, nt=nt, abcn=ABCN, impl="eager")
    args.update(kw)
    eq = args.pop("equation", None) or Acoustic(device="cpu")
    return PropTorch(eq, **args)


def forward(prop: PropTorch, wavelet=None, sources=None, receivers=None, models=None):
    src, rec = tiny_geometry()
    return prop(tiny_wavelet(prop.nt) if wavelet is None else wavelet,
                src if sources is None else sources,
                rec if receivers is None else receivers,
                models=[tiny_vp()] if models is None else models)


def no_dispersion_warnings(record) -> list:
    return [w for w in record if "per shortest wavelength" in str(w.message)]


# --------------------------------------------------------------------------------------------------
# The seed notebook, unchanged except for nt.

def _notebook_setup(nt: int, decimate: int):
    dh, dt = MARMOUSI_DH * decimate, 0.002
    freq, delay = 5.0, 0.20
    vp_true_np = load_marmousi("true")[::decimate, ::decimate].copy()
    vp_init_np = load_marmousi("smooth")[::decimate, ::decimate].copy()
    shape = vp_true_np.shape
    device = torch.device("cpu")
    nshots, nrec = 1, 100
    src_x = np.array([shape[1] // 2], dtype=np.int64)
    rec_x = np.linspace(0, shape[1] - 1, nrec).astype(np.int64)
    sources = np.stack([src_x, np.full(nshots, 2, dtype=np.int64)], axis=1)
    receivers = np.stack([rec_x, np.full(nrec, 4, dtype=np.int64)], axis=1)
    receivers = np.repeat(receivers[None, ...], nshots, axis=0)
    t = np.arange(nt, dtype=np.float32) * dt
    wavelet = ricker(t - delay, f=freq)
    vp_true_t = torch.tensor(vp_true_np, device=device)
    return dict(dh=dh, dt=dt, nt=nt, shape=shape, device=device, sources=sources, receivers=receivers,
                wavelet=wavelet, vp_true_t=vp_true_t, vp_init_np=vp_init_np, src_x=src_x, rec_x=rec_x)


def test_notebook_cell1_shapes_and_cell2_observed():
    """Exactly the notebook's cell-1 geometry ((141, 681) at 25 m, 1 shot, 100 receivers), nt=100."""
    s = _notebook_setup(nt=100, decimate=2)
    assert s["shape"] == (141, 681)
    assert s["sources"].shape == (1, 2) and s["sources"].tolist() == [[340, 2]]
    assert s["receivers"].shape == (1, 100, 2)
    assert s["receivers"][0, 0].tolist() == [0, 4] and s["receivers"][0, -1].tolist() == [680, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fallback-impl and (short-record) dispersion warnings
        with torch.no_grad():
            eq = Acoustic(device=s["device"])
            solver_obs = PropTorch(eq, shape=s["shape"], dh=s["dh"], dt=s["dt"], nt=s["nt"])
            observed = solver_obs(s["wavelet"], s["sources"], s["receivers"], models=[s["vp_true_t"]]).detach()
    assert tuple(observed.shape) == (1, 100, 100, 1)
    assert observed.dtype == torch.float32
    assert bool(torch.isfinite(observed).all())
    # The receiver above the source (x = 340 is column 49.7 of 100 -> receivers 49/50) sees the
    # direct wave; receivers 8 km away have not been reached after 0.2 s.
    near = observed[0, :, 49:51, 0].abs().max()
    far = observed[0, :, :5, 0].abs().max()
    assert near > 0
    assert far < 1e-3 * near
    # Nothing was stored under no_grad.
    rep = solver_obs.memory_report()
    assert rep.strategy == "none" and rep.buffers == [] and rep.forward_steps == 100


def test_notebook_decimated_forward_backward():
    """The notebook's calls on a more decimated model, with a gradient (cell 4's measure, minus timing)."""
    s = _notebook_setup(nt=120, decimate=8)
    assert s["shape"] == (36, 171)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            eq = Acoustic(device=s["device"])
            solver_obs = PropTorch(eq, shape=s["shape"], dh=s["dh"], dt=s["dt"], nt=s["nt"])
            observed = solver_obs(s["wavelet"], s["sources"], s["receivers"], models=[s["vp_true_t"]]).detach()
        assert tuple(observed.shape) == (1, 120, 100, 1)
        solver = PropTorch(eq, shape=s["shape"], dh=s["dh"], dt=s["dt"], nt=s["nt"], impl="eager", use_ckpt=True,
                           ckpt_chunks=50)
        vp_p = torch.nn.Parameter(torch.tensor(s["vp_init_np"], device=s["device"]))
        pred = solver(s["wavelet"], s["sources"], s["receivers"], models=[vp_p])
        loss = (pred - observed).pow(2).mean()
        loss.backward()
    assert loss.item() > 0
    assert vp_p.grad is not None and vp_p.grad.shape == s["shape"]
    assert bool(torch.isfinite(vp_p.grad).all()) and vp_p.grad.abs().max() > 0
    rep = solver.memory_report()
    assert rep.strategy == "ckpt-chunk(50)"
    assert (rep.forward_steps, rep.replayed_steps, rep.adjoint_steps) == (120, 120, 120)


def test_notebook_aside_prints_specs(capsys):
    eq = Acoustic(device=torch.device("cpu"))
    print('models (input order matters!):')
    for spec in eq.MODEL_SPECS:
        unit = f' [{spec.unit}]' if spec.unit else ''
        print(f'  - {spec.name:8s}{unit} — {spec.description}')
    print('defaults  :', eq.default_source_fields, '/', eq.default_receiver_fields)
    print('receivers :')
    for spec in eq.available_receiver_fields():
        print(f'  - {spec.name:8s} aliases={spec.aliases} — {spec.description}')
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "models (input order matters!):",
        "  - vp       [m/s] — Acoustic P-wave velocity model.",
        "defaults  : ['h1'] / ['h1']",
        "receivers :",
        "  - h1       aliases=('pressure', 'p') — Primary acoustic pressure-like wavefield.",
    ]
    assert [(m.name, m.unit) for m in eq.MODEL_SPECS] == [("vp", "m/s")]
    assert eq.default_source_fields == ["h1"] and eq.default_receiver_fields == ["h1"]
    (field,) = eq.available_receiver_fields()
    assert field.name == "h1" and field.aliases == ("pressure", "p")


def _notebook_strategies():
    """Cell 3, verbatim."""
    strategies = []
    strategies.append(('eager · full', dict(impl='eager', use_ckpt=False)))
    strategies.append(('eager · chunk-ckpt', dict(impl='eager', use_ckpt=True, ckpt_chunks=100)))
    strategies.append(('c · full', dict(impl='c', use_ckpt=False)))
    disk_dir = tempfile.mkdtemp(prefix='sweep_bdy_nb_')

    def bdy(storage, dtype):
        kw = dict(storage=storage, storage_dtype=dtype)
        if storage in ('cpu', 'disk'):
            kw['transfer_interval'] = 8
        if storage == 'cpu':
            kw['pinned_memory'] = True
        if storage == 'disk':
            kw['disk_dir'] = disk_dir
        return MemoryOptions(strategy='boundary', boundary=BoundaryOptions(**kw))

    for dtype in ('fp32', 'fp16', 'bf16', 'int8'):
        strategies.append((f'eager · bdy gpu · {dtype}', dict(impl='eager', memory=bdy('gpu', dtype))))
    for storage in ('gpu', 'cpu', 'disk'):
        for dtype in ('fp32', 'fp16', 'bf16', 'int8'):
            strategies.append((f'c · bdy {storage} · {dtype}', dict(impl='c', memory=bdy(storage, dtype))))
    strategies.append(('c · chunk-ckpt',
                       dict(impl='c', memory=MemoryOptions(strategy='ckpt', ckpt=CkptOptions(mode='chunk', chunks=100)))))
    strategies.append(('c · recursive-ckpt',
                       dict(impl='c', memory=MemoryOptions(strategy='ckpt', ckpt=CkptOptions(mode='recursive', count=8)))))
    return strategies, disk_dir


def test_notebook_cell3_builds_strategy_list():
    strategies, disk_dir = _notebook_strategies()
    try:
        labels = [label for label, _ in strategies]
        assert len(labels) == 21 and len(set(labels)) == 21
        assert labels[:3] == ['eager · full', 'eager · chunk-ckpt', 'c · full']
        assert labels[-2:] == ['c · chunk-ckpt', 'c · recursive-ckpt']
        mem = dict(strategies)['c · bdy disk · int8']['memory']
        assert mem.strategy == 'boundary'
        assert mem.boundary == BoundaryOptions(storage='disk', storage_dtype='int8', transfer_interval=8,
                                               disk_dir=disk_dir)
        assert dict(strategies)['c · bdy cpu · fp16']['memory'].boundary.pinned_memory is True
        assert dict(strategies)['c · recursive-ckpt']['memory'].ckpt == CkptOptions(mode='recursive', count=8)
    finally:
        import shutil

        shutil.rmtree(disk_dir, ignore_errors=True)


def _gradient(prop: PropTorch, dtype=torch.float32):
    vp = tiny_vp(dtype, requires_grad=True)
    src, rec = tiny_geometry()
    d = prop(tiny_wavelet(prop.nt), src, rec, models=[vp])
    torch.manual_seed(0)
    d.backward(torch.randn_like(d))
    return vp.grad


# Relative L2 bounds against full storage on this tiny grid (half of its cells are strip cells) with a
# white-noise adjoint source, the worst case for lossy strips (their quantisation noise is white in
# time and only a band-limited adjoint averages it out; see tests/test_boundary.py for realistic ones).
# Measured on both back-ends: fp32 4.5-5.6e-6, fp16 2.2e-3, bf16 1.9e-2, int8 3.8e-2.
NOTEBOOK_BOUNDS = {"fp32": 2e-5, "fp16": 5e-3, "bf16": 4e-2, "int8": 8e-2}


def test_notebook_strategies_on_propagator():
    """Each of cell 3's 21 strategies runs through the public API and gives the full-storage gradient
    (bit for bit for checkpointing; within the codec's bound for boundary saving), or, without a
    compiled back-end, raises RuntimeError naming impl='c'."""
    strategies, disk_dir = _notebook_strategies()
    nt = NT
    reference = _gradient(solver(nt=nt, use_ckpt=False))
    c_reference = _gradient(solver(nt=nt, use_ckpt=False, impl="c")) if compiled_available() else None
    outcomes = {}
    try:
        for label, kw in strategies:
            kw = dict(kw)
            if kw.get('use_ckpt') is True:
                kw['ckpt_chunks'] = 15  # the notebook's 100 would be a single chunk of this short record
            mem = kw.get('memory')
            try:
                prop = solver(nt=nt, **kw)
            except RuntimeError as e:
                assert kw['impl'] == 'c' and not compiled_available(), (label, str(e))
                assert "impl='c'" in str(e)
                outcomes[label] = 'no compiled back-end'
                continue
            grad = _gradient(prop)
            ref = c_reference if kw['impl'] == 'c' else reference
            if mem is not None and mem.strategy == 'boundary':
                err = float((grad - ref).norm() / ref.norm())
                assert err < NOTEBOOK_BOUNDS[mem.boundary.storage_dtype], (label, err)
            else:
                assert torch.equal(grad, ref), label
            outcomes[label] = 'ok'
            assert os.listdir(disk_dir) == []
    finally:
        import shutil

        shutil.rmtree(disk_dir, ignore_errors=True)
    assert outcomes['eager · full'] == 'ok' and outcomes['eager · chunk-ckpt'] == 'ok'
    assert len(outcomes) == 21 and set(outcomes.values()) <= {'ok', 'no compiled back-end'}


# --------------------------------------------------------------------------------------------------
# Strategy selection.

CHUNK100 = MemoryOptions(strategy="ckpt", ckpt=CkptOptions(mode="chunk", chunks=100))


@pytest.mark.parametrize("kw, expected", [
    (dict(), CHUNK100),                                                        # back-end default
    (dict(use_ckpt=None, ckpt_chunks=7), MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=7))),
    (dict(use_ckpt=True), CHUNK100),
    (dict(use_ckpt=True, ckpt_chunks=13), MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=13))),
    (dict(use_ckpt=False), MemoryOptions("full")),
    (dict(memory=MemoryOptions("full")), MemoryOptions("full")),
    (dict(memory=MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=9))),
     MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=9))),
    # Consistent explicit choices are fine.
    (dict(memory=MemoryOptions("full"), use_ckpt=False), MemoryOptions("full")),
    (dict(memory=MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=9)), use_ckpt=True, ckpt_chunks=9),
     MemoryOptions("ckpt", ckpt=CkptOptions("chunk", chunks=9))),
])
def test_strategy_resolution(kw, expected):
    prop = solver(**kw)
    assert isinstance(prop.memory, MemoryOptions)
    assert prop.memory.strategy == expected.strategy
    if expected.strategy == "ckpt":
        assert (prop.memory.ckpt.mode, prop.memory.ckpt.chunks) == (expected.ckpt.mode, expected.ckpt.chunks)


@pytest.mark.parametrize("kw, names", [
    (dict(use_ckpt=True, memory=MemoryOptions("full")), ("memory", "use_ckpt")),
    (dict(use_ckpt=False, memory=CHUNK100), ("memory", "use_ckpt")),
    (dict(use_ckpt=True, ckpt_chunks=50, memory=CHUNK100), ("memory", "use_ckpt")),
])
def test_conflicting_strategies_raise(kw, names):
    with pytest.raises(ValueError, match="conflicting") as info:
        solver(**kw)
    for name in names:
        assert name in str(info.value)


def test_cuda_options_memory():
    full = MemoryOptions("full")
    # cuda_options.memory is the compiled back-end's block: resolved for impl='c' ...
    assert resolve_memory("c", None, None, 100, CUDAOptions(memory=full)) == full
    assert resolve_memory("c", None, None, 100, CUDAOptions()) == CHUNK100
    assert resolve_memory("c", full, None, 100, CUDAOptions(memory=full)) == full
    with pytest.raises(ValueError, match="conflicting") as info:
        resolve_memory("c", CHUNK100, None, 100, CUDAOptions(memory=full))
    assert "memory" in str(info.value) and "cuda_options.memory" in str(info.value)
    with pytest.raises(ValueError, match="cuda_options.memory") as info:
        resolve_memory("c", None, True, 100, CUDAOptions(memory=full))
    assert "use_ckpt" in str(info.value)
    # ... and rejected for impl='eager'.
    with pytest.raises(ValueError, match="cuda_options.memory"):
        solver(cuda_options=CUDAOptions(memory=full))
    # Through PropTorch, where the compiled back-end exists.
    if compiled_available():
        prop = solver(impl="c", cuda_options=CUDAOptions(memory=full))
        assert prop.memory.strategy == "full"
    else:
        with pytest.raises(RuntimeError, match="impl='c'"):
            solver(impl="c", cuda_options=CUDAOptions(memory=full))


def _check_buffers(rep):
    for b in rep.buffers:
        itemsize = torch.empty((), dtype=getattr(torch, b.dtype)).element_size()
        assert b.nbytes == math.prod(b.shape) * itemsize, b
        assert b.location == "device"
    assert rep.total_bytes == sum(b.nbytes for b in rep.buffers)
    assert sum(rep.bytes_by_location().values()) == rep.total_bytes


# nt=50 cuts the tiny Ricker short (broadband): its dispersion warning is expected and irrelevant here.
SHORT_RECORD = pytest.mark.filterwarnings("ignore:only .* grid points per shortest wavelength:UserWarning")


@SHORT_RECORD
def test_memory_report_full():
    prop = solver(nt=50, memory=MemoryOptions("full"))
    with pytest.raises(RuntimeError, match="not been called"):
        prop.memory_report()
    _gradient(prop)
    rep = prop.memory_report()
    assert rep.strategy == "full"
    assert (rep.forward_steps, rep.replayed_steps, rep.adjoint_steps) == (50, 0, 50)
    (snapshots,) = [b for b in rep.buffers if b.name == "snapshots"]
    # one snapshot per step on the physical grid: (nt, nshots, nz, nx)
    assert snapshots.shape == (50, 1, *prop.shape) and snapshots.dtype == "float32"
    _check_buffers(rep)
    assert rep.stored_bytes == snapshots.nbytes and rep.staging_bytes == 0
    # Peak: the snapshots plus one state (the forward state, later the adjoint state), never both.
    (state,) = [b for b in rep.buffers if b.name == "forward_state"]
    assert rep.peak_bytes == {"device": snapshots.nbytes + state.nbytes} == {"device": rep.peak_memory_bytes}
    assert rep.held_bytes == {"device": 0}


@SHORT_RECORD
def test_memory_report_chunk():
    prop = solver(nt=50, use_ckpt=True, ckpt_chunks=20)
    assert prop.memory.ckpt.chunks == 20
    _gradient(prop)
    rep = prop.memory_report()
    assert rep.strategy == "ckpt-chunk(20)"
    assert (rep.forward_steps, rep.replayed_steps, rep.adjoint_steps) == (50, 50, 50)
    (ckpts,) = [b for b in rep.buffers if b.name == "checkpoints"]
    assert ckpts.shape[0] == 3  # steps 0, 20, 40
    _check_buffers(rep)
    assert rep.stored_bytes == ckpts.nbytes
    # Peak: 3 checkpointed states + one chunk of 20 snapshots + the replay and adjoint states.
    full = solver(nt=50, use_ckpt=False)
    _gradient(full)
    snapshot_bytes = full.memory_report().stored_bytes // 50
    state_bytes = ckpts.nbytes // 3
    assert rep.peak_memory_bytes == 5 * state_bytes + 20 * snapshot_bytes


@SHORT_RECORD
def test_memory_report_forward_only_before_backward():
    prop = solver(nt=50, use_ckpt=True, ckpt_chunks=20)
    src, rec = tiny_geometry()
    prop(tiny_wavelet(50), src, rec, models=[tiny_vp(requires_grad=True)])
    rep = prop.memory_report()
    assert rep.strategy == "ckpt-chunk(20)"
    assert (rep.forward_steps, rep.replayed_steps, rep.adjoint_steps) == (50, 0, 0)
    assert [b.name for b in rep.buffers] == ["forward_state", "checkpoints"]
    assert rep.held_bytes["device"] == rep.stored_bytes  # the checkpoints, until the backward pass


def test_strategies_agree():
    g_full = _gradient(solver(use_ckpt=False))
    g_chunk = _gradient(solver(use_ckpt=True, ckpt_chunks=17))
    g_default = _gradient(solver())
    assert g_full.abs().max() > 0
    torch.testing.assert_close(g_chunk, g_full, rtol=1e-5, atol=1e-6 * float(g_full.abs().max()))
    torch.testing.assert_close(g_default, g_full, rtol=1e-5, atol=1e-6 * float(g_full.abs().max()))


# --------------------------------------------------------------------------------------------------
# Autograd.

def test_nothing_stored_under_no_grad():
    prop = solver(use_ckpt=False)
    src, rec = tiny_geometry()
    vp = tiny_vp(requires_grad=True)
    with torch.no_grad():
        d = prop(tiny_wavelet(), src, rec, models=[vp])
    assert not d.requires_grad
    rep = prop.memory_report()
    assert rep.strategy == "none" and rep.buffers == [] and rep.total_bytes == 0
    assert (rep.forward_steps, rep.replayed_steps, rep.adjoint_steps) == (NT, 0, 0)


def test_nothing_stored_when_nothing_requires_grad():
    prop = solver(use_ckpt=False)
    d = forward(prop)
    assert not d.requires_grad
    rep = prop.memory_report()
    assert rep.strategy == "none" and rep.buffers == []
    # Same data as with a gradient.
    src, rec = tiny_geometry()
    d_grad = prop(tiny_wavelet(), src, rec, models=[tiny_vp(requires_grad=True)])
    assert d_grad.requires_grad and prop.memory_report().strategy == "full"
    torch.testing.assert_close(d_grad.detach(), d, rtol=0, atol=0)


def test_gradients_reach_vp_and_wavelet():
    # pml_freq is fixed: by default it follows the wavelet's peak frequency, which would make the
    # operator depend on the wavelet and break the linearity check below.
    prop = solver(use_ckpt=True, ckpt_chunks=25, pml_freq=FREQ)
    src, rec = tiny_geometry(nshots=2)
    vp = tiny_vp(requires_grad=True)
    wav = torch.tensor(np.stack([tiny_wavelet(), 0.5 * tiny_wavelet()])[:, None], requires_grad=True)  # (2, 1, nt)
    d = prop(wav, src, rec, models=[vp])
    assert d.shape == (2, NT, rec.shape[1], 1) and d.requires_grad
    torch.manual_seed(1)
    r = torch.randn_like(d)
    (d * r).sum().backward()
    assert vp.grad is not None and vp.grad.shape == (NZ, NX) and vp.grad.abs().max() > 0
    assert wav.grad is not None and wav.grad.shape == (2, 1, NT) and wav.grad.abs().max() > 0
    # The data are linear in the wavelet: <grad_w, w2> == sum(d(w2) * r).
    t = np.arange(NT) * DT
    w2 = torch.tensor(np.stack([ricker(t - 0.03, f=20.0), -2.0 * ricker(t - 0.045, f=30.0)])[:, None].astype(np.float32))
    with torch.no_grad():
        lhs = float((wav.grad * w2).sum())
        rhs = float((prop(w2, src, rec, models=[tiny_vp()]) * r).sum())
    assert lhs == pytest.approx(rhs, rel=1e-4)


def test_vp_gradient_matches_finite_difference():
    """Directional derivative in float64, perturbing cells away from the edges."""
    prop = solver(use_ckpt=True, ckpt_chunks=30)
    src, rec = tiny_geometry()
    wav = tiny_wavelet(dtype=np.float64)
    vp = tiny_vp(torch.float64, requires_grad=True)
    torch.manual_seed(2)
    r = torch.randn(1, NT, rec.shape[1], 1, dtype=torch.float64)
    (prop(wav, src, rec, models=[vp]) * r).sum().backward()
    direction = torch.zeros(NZ, NX, dtype=torch.float64)
    direction[3:-3, 3:-3] = torch.rand(NZ - 6, NX - 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    eps = 1.0  # m/s
    with torch.no_grad():
        plus = (prop(wav, src, rec, models=[tiny_vp(torch.float64) + eps * direction]) * r).sum()
        minus = (prop(wav, src, rec, models=[tiny_vp(torch.float64) - eps * direction]) * r).sum()
    fd = float(plus - minus) / (2 * eps)
    assert fd != 0
    assert float((vp.grad * direction).sum()) == pytest.approx(fd, rel=1e-5)


def test_float64_models_compute_in_float64():
    d64 = forward(solver(), wavelet=tiny_wavelet(dtype=np.float64), models=[tiny_vp(torch.float64)])
    d32 = forward(solver())
    assert d64.dtype == torch.float64 and d32.dtype == torch.float32
    # float32 wavelet with a float64 model also computes in float64.
    d64b = forward(solver(), models=[tiny_vp(torch.float64)])
    assert d64b.dtype == torch.float64
    torch.testing.assert_close(d32.double(), d64, rtol=0, atol=1e-4 * float(d64.abs().max()))
    # Computed in float64, not computed in float32 and cast: the two results differ (by round-off).
    assert float((d64 - d32.double()).abs().max()) > 0
    grad = _gradient(solver(use_ckpt=False), dtype=torch.float64)
    assert grad.dtype == torch.float64


def test_numpy_model_accepted():
    d_np = forward(solver(), models=[tiny_vp().numpy()])
    d_t = forward(solver())
    torch.testing.assert_close(d_np, d_t, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# Wavelet shapes and several sources per shot.

def test_wavelet_shapes_consistent():
    prop = solver()
    nshots = 2
    src, rec = tiny_geometry(nshots)
    w = tiny_wavelet()
    ref = prop(w, src, rec, models=[tiny_vp()])
    assert ref.shape == (nshots, NT, rec.shape[1], 1)
    variants = {
        "(nt,) torch": torch.from_numpy(w),
        "(nshots, nt) numpy": np.tile(w, (nshots, 1)),
        "(nshots, nt) torch": torch.from_numpy(np.tile(w, (nshots, 1))),
        "(nshots, 1, nt) numpy": np.tile(w, (nshots, 1, 1)),
        "(nshots, 1, nt) torch": torch.from_numpy(np.tile(w, (nshots, 1, 1))),
        "(nt,) float64 numpy": w.astype(np.float64),
    }
    for name, wv in variants.items():
        out = prop(wv, src, rec, models=[tiny_vp()])
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-7 * float(ref.abs().max()), msg=name)
    # Shots differ (sources differ), and the per-shot wavelet really is per shot.
    assert not torch.allclose(ref[0], ref[1])
    scaled = prop(np.stack([w, 2 * w]), src, rec, models=[tiny_vp()])
    torch.testing.assert_close(scaled[0], ref[0])
    torch.testing.assert_close(scaled[1], 2 * ref[1])


def test_per_shot_wavelet_shared_by_the_shots_sources():
    """(nshots, nt): one wavelet per shot, driving every source of that shot."""
    prop = solver()
    _, rec = tiny_geometry(2)
    w = tiny_wavelet()
    src = np.array([[[8, 6], [3, 9]], [[5, 6], [12, 3]]])                          # (2 shots, 2 sources, 2)
    full = prop(np.stack([[w, w], [2 * w, 2 * w]]), src, rec, models=[tiny_vp()])   # (nshots, nsrc, nt)
    per_shot = prop(np.stack([w, 2 * w]), src, rec, models=[tiny_vp()])             # (nshots, nt)
    torch.testing.assert_close(per_shot, full, rtol=0, atol=1e-7 * float(full.abs().max()))
    shared = prop(w, src, rec, models=[tiny_vp()])                                   # (nt,)
    torch.testing.assert_close(shared[0], full[0], rtol=0, atol=1e-7 * float(full.abs().max()))


def test_several_sources_per_shot_superpose():
    prop = solver()
    _, rec = tiny_geometry(1)
    w = tiny_wavelet()
    a, b = [8, 6], [3, 9]
    both = prop(np.stack([w, -0.5 * w])[None], np.array([[a, b]]), rec, models=[tiny_vp()])  # (1, 2, nt), (1, 2, 2)
    only_a = prop(w, np.array([a]), rec, models=[tiny_vp()])
    only_b = prop(-0.5 * w, np.array([b]), rec, models=[tiny_vp()])
    assert both.shape == (1, NT, rec.shape[1], 1)
    torch.testing.assert_close(both, only_a + only_b, rtol=0, atol=1e-6 * float(both.abs().max()))
    # A (nt,) wavelet is shared by every source of every shot; (1, nsrc, 2) as in source encoding.
    shared = prop(torch.from_numpy(w), np.array([[a, b]]), rec, models=[tiny_vp()])
    torch.testing.assert_close(shared, only_a + prop(w, np.array([b]), rec, models=[tiny_vp()]),
                               rtol=0, atol=1e-6 * float(shared.abs().max()))
    # Sources given as torch int tensors work as numpy.
    t_src = prop(w, torch.tensor([a]), torch.from_numpy(rec), models=[tiny_vp()])
    torch.testing.assert_close(t_src, only_a, rtol=0, atol=0)


def test_receiver_type_aliases():
    ref = forward(solver())
    for alias in ("h1", "pressure", "p", ["p"]):
        prop = solver(receiver_type=alias, source_type=alias)
        assert prop.receiver_fields == ["h1"] and prop.source_fields == ["h1"]
        torch.testing.assert_close(forward(prop), ref, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# Bad input: a clear error naming the argument.

def _call_error(exc, match, **override):
    prop = solver(**override.pop("ctor", {}))
    src, rec = tiny_geometry(override.pop("nshots", 1))
    args = dict(wavelet=tiny_wavelet(prop.nt), sources=src, receivers=rec, models=[tiny_vp()])
    args.update(override)
    with pytest.raises(exc, match=match):
        prop(args["wavelet"], args["sources"], args["receivers"], models=args["models"])


W = tiny_wavelet()


@pytest.mark.parametrize("name, exc, match, override", [
    # wavelet
    ("wavelet list", TypeError, r"wavelet must be a numpy array or torch\.Tensor", dict(wavelet=list(W))),
    ("wavelet complex", TypeError, r"wavelet", dict(wavelet=W.astype(np.complex64))),
    ("wavelet complex torch", TypeError, r"wavelet must be real", dict(wavelet=torch.from_numpy(W.astype(np.complex64)))),
    ("wavelet strings", TypeError, r"wavelet", dict(wavelet=np.array(["a"] * NT))),
    ("wavelet 4-D", ValueError, r"wavelet must have shape", dict(wavelet=W.reshape(1, 1, 1, NT))),
    ("wavelet short", ValueError, rf"wavelet .*nt={NT}", dict(wavelet=W[:-1])),
    ("wavelet long", ValueError, rf"wavelet .*nt={NT}", dict(wavelet=np.concatenate([W, W]))),
    ("wavelet shots", ValueError, r"wavelet shape \(3, 80\) does not match \(1, 80\)", dict(wavelet=np.tile(W, (3, 1)))),
    ("wavelet nsrc", ValueError, r"wavelet shape .* does not match", dict(wavelet=np.tile(W, (1, 2, 1)))),
    ("wavelet nan", ValueError, r"wavelet contains NaN", dict(wavelet=np.where(np.arange(NT) == 5, np.nan, W))),
    ("wavelet inf", ValueError, r"wavelet contains NaN or inf", dict(wavelet=np.where(np.arange(NT) == 5, np.inf, W))),
    # sources
    ("sources float", TypeError, r"sources must hold integer", dict(sources=np.array([[8.0, 6.0]]))),
    ("sources float torch", TypeError, r"sources must hold integer", dict(sources=torch.tensor([[8.0, 6.0]]))),
    ("sources last dim", ValueError, r"sources must have shape", dict(sources=np.array([[8, 6, 0]]))),
    ("sources 1-D", ValueError, r"sources must have shape", dict(sources=np.array([8, 6]))),
    ("sources x<0", ValueError, r"sources.*off the grid", dict(sources=np.array([[-1, 6]]))),
    ("sources z<0", ValueError, r"sources.*off the grid", dict(sources=np.array([[8, -1]]))),
    ("sources x>=nx", ValueError, rf"sources.*off the grid.*x < {NX}", dict(sources=np.array([[NX, 6]]))),
    ("sources z>=nz", ValueError, rf"sources.*off the grid.*z < {NZ}", dict(sources=np.array([[8, NZ]]))),
    ("no shots", ValueError, r"at least one shot", dict(sources=np.zeros((0, 2), np.int64),
                                                        receivers=np.zeros((0, 3, 2), np.int64))),
    # receivers
    ("receivers float", TypeError, r"receivers must hold integer", dict(receivers=np.array([[[1.0, 2.0]]]))),
    ("receivers 2-D", ValueError, r"receivers must have shape \(nshots, n, 2\)", dict(receivers=np.array([[1, 2], [3, 2]]))),
    ("receivers last dim", ValueError, r"receivers must have shape", dict(receivers=np.array([[[1, 2, 3]]]))),
    ("receivers x<0", ValueError, r"receivers.*off the grid", dict(receivers=np.array([[[-1, 2]]]))),
    ("receivers x>=nx", ValueError, r"receivers.*off the grid", dict(receivers=np.array([[[NX, 2]]]))),
    ("receivers z>=nz", ValueError, r"receivers.*off the grid", dict(receivers=np.array([[[0, NZ]]]))),
    ("receivers z<0", ValueError, r"receivers.*off the grid", dict(receivers=np.array([[[0, -2]]]))),
    ("receivers shots", ValueError, r"receivers has 2 shots but sources has 1", dict(receivers=np.zeros((2, 3, 2), np.int64))),
    ("no receivers", ValueError, r"at least one shot, source and receiver", dict(receivers=np.zeros((1, 0, 2), np.int64))),
    # models
    ("models tensor", TypeError, r"models must be a list", dict(models=tiny_vp())),
    ("models two", ValueError, r"models must hold 1 model", dict(models=[tiny_vp(), tiny_vp()])),
    ("models none", ValueError, r"models must hold 1 model", dict(models=[])),
    ("models shape", ValueError, rf"models: vp must have shape \({NZ}, {NX}\)", dict(models=[tiny_vp()[:, :-1]])),
    ("models transposed", ValueError, r"models: vp must have shape", dict(models=[tiny_vp().T.contiguous()])),
    ("models int", TypeError, r"models: vp must be float32 or float64", dict(models=[tiny_vp().to(torch.int32)])),
    ("models half", TypeError, r"models: vp must be float32 or float64", dict(models=[tiny_vp().half()])),
    ("models list", TypeError, r"models: vp must be a torch.Tensor", dict(models=[[[2000.0] * NX] * NZ])),
    ("models nan", ValueError, r"models: vp contains NaN", dict(models=[tiny_vp().index_fill(0, torch.tensor([3]), float("nan"))])),
    ("models inf", ValueError, r"models: vp contains NaN or inf", dict(models=[tiny_vp().index_fill(0, torch.tensor([3]), float("inf"))])),
    ("models zero", ValueError, r"models: vp must be positive", dict(models=[tiny_vp().index_fill(1, torch.tensor([3]), 0.0)])),
    ("models negative", ValueError, r"models: vp must be positive", dict(models=[-tiny_vp()])),
    ("models meta", ValueError, r"models: vp is on meta", dict(models=[torch.empty(NZ, NX, device="meta")])),
])
def test_bad_call_inputs(name, exc, match, override):
    _call_error(exc, match, **override)


def test_unstable_dt_message_gives_a_stable_dt():
    """The error gives the largest stable dt; that dt runs (and stays bounded), 1.01x it raises."""
    for vmax, dh in ((2000.0, 5.0), (2500.0, 10.0), (3500.0, 10.0)):
        vp = torch.full((NZ, NX), vmax)
        src, rec = tiny_geometry()
        nt = 150
        bad = PropTorch(Acoustic(), (NZ, NX), dh=dh, dt=0.01, nt=nt, abcn=ABCN, impl="eager")
        with pytest.raises(ValueError, match=r"dt=0\.01 s is unstable") as info:
            bad(tiny_wavelet(nt), src, rec, models=[vp])
        m = re.search(r"largest stable dt is ([0-9.eE+-]+) s", str(info.value))
        assert m, str(info.value)
        dt_max = float(m.group(1))
        assert dt_max == pytest.approx(bad.max_stable_dt(vmax), rel=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dispersion warning at these coarse settings is fine here
            ok = PropTorch(Acoustic(), (NZ, NX), dh=dh, dt=dt_max, nt=nt, abcn=ABCN, impl="eager")
            d = ok(tiny_wavelet(nt), src, rec, models=[vp])  # must not raise
            assert bool(torch.isfinite(d).all())
            # bounded: once the source has fired, the field does not grow (it leaves through the PML)
            peak = float(d.abs().max())
            assert peak > 0
            assert float(d[:, nt // 2:].abs().max()) <= peak
            over = PropTorch(Acoustic(), (NZ, NX), dh=dh, dt=1.01 * dt_max, nt=nt, abcn=ABCN, impl="eager")
            with pytest.raises(ValueError, match="unstable"):
                over(tiny_wavelet(nt), src, rec, models=[vp])


@pytest.mark.parametrize("override, exc, match", [
    (dict(equation="acoustic"), TypeError, r"equation must be an Acoustic"),
    (dict(shape=(NZ,)), ValueError, r"shape must be \(nz, nx\)"),
    (dict(shape=(NZ, NX, 1)), ValueError, r"shape must be \(nz, nx\)"),
    (dict(shape="ab"), ValueError, r"shape must be \(nz, nx\)"),
    (dict(shape=(0, NX)), ValueError, r"shape\[0\] \(nz\)"),
    (dict(shape=(NZ, 2.5)), ValueError, r"shape\[1\] \(nx\)"),
    (dict(dh=0.0), ValueError, r"dh must be a positive"),
    (dict(dh=-5.0), ValueError, r"dh must be a positive"),
    (dict(dh=float("inf")), ValueError, r"dh must be a positive"),
    (dict(dh="5"), ValueError, r"dh must be a positive"),
    (dict(dt=0.0), ValueError, r"dt must be a positive"),
    (dict(dt=float("nan")), ValueError, r"dt must be a positive"),
    (dict(dt=-0.001), ValueError, r"dt must be a positive"),
    (dict(nt=0), ValueError, r"nt must be an integer >= 1"),
    (dict(nt=10.5), ValueError, r"nt must be an integer >= 1"),
    (dict(nt=True), ValueError, r"nt must be an integer >= 1"),
    (dict(abcn=-1), ValueError, r"abcn must be an integer >= 0"),
    (dict(space_order=3), ValueError, r"space_order must be one of \(2, 4, 6, 8\)"),
    (dict(space_order=10), ValueError, r"space_order must be one of"),
    (dict(free_surface="yes"), ValueError, r"free_surface must be a bool"),
    (dict(impl="gpu"), ValueError, r"impl must be one of"),
    (dict(impl="cuda"), ValueError, r"impl must be one of"),
    (dict(use_ckpt="yes"), ValueError, r"use_ckpt must be True, False or None"),
    (dict(use_ckpt=1), ValueError, r"use_ckpt must be True, False or None"),
    (dict(ckpt_chunks=0), ValueError, r"ckpt_chunks must be an integer >= 1"),
    (dict(ckpt_chunks=2.0), ValueError, r"ckpt_chunks must be an integer >= 1"),
    (dict(source_type="vx"), ValueError, r"source_type: unknown field 'vx'"),
    (dict(receiver_type="vz"), ValueError, r"receiver_type: unknown field 'vz'"),
    (dict(receiver_type=["p", "vz"]), ValueError, r"receiver_type: unknown field 'vz'"),
    (dict(receiver_type=[]), ValueError, r"receiver_type must name at least one field"),
    (dict(memory="full"), TypeError, r"memory must be a MemoryOptions"),
    (dict(eager_options=dict(use_compile=False)), TypeError, r"eager_options must be a EagerOptions"),
    (dict(cuda_options=MemoryOptions()), TypeError, r"cuda_options must be a CUDAOptions"),
    (dict(pml_freq=0.0), ValueError, r"pml_freq must be a positive"),
])
def test_bad_constructor_args(override, exc, match):
    with pytest.raises(exc, match=match):
        solver(**override)


def test_valid_constructor_variants():
    for order in (2, 4, 6, 8):
        assert solver(space_order=order).radius == order // 2
    prop = solver(abcn=0, free_surface=True)
    assert prop.free_surface is True and prop.abcn == 0
    d = forward(prop)
    assert d.shape == (1, NT, 6, 1) and bool(torch.isfinite(d).all())


@pytest.mark.parametrize("build, match", [
    (lambda: MemoryOptions(strategy="revolve"), r"MemoryOptions\.strategy must be one of"),
    (lambda: MemoryOptions(strategy="boundary", boundary="gpu"), r"MemoryOptions\.boundary must be a BoundaryOptions"),
    (lambda: MemoryOptions(strategy="ckpt", ckpt=100), r"MemoryOptions\.ckpt must be a CkptOptions"),
    (lambda: BoundaryOptions(storage="ssd"), r"BoundaryOptions\.storage must be one of"),
    (lambda: BoundaryOptions(storage_dtype="fp8"), r"BoundaryOptions\.storage_dtype must be one of"),
    (lambda: BoundaryOptions(storage_dtype="float32"), r"BoundaryOptions\.storage_dtype must be one of"),
    (lambda: BoundaryOptions(transfer_interval=0), r"BoundaryOptions\.transfer_interval must be a positive integer"),
    (lambda: BoundaryOptions(transfer_interval=2.5), r"BoundaryOptions\.transfer_interval must be a positive integer"),
    (lambda: BoundaryOptions(pinned_memory="yes"), r"BoundaryOptions\.pinned_memory must be a bool"),
    (lambda: BoundaryOptions(disk_dir=3), r"BoundaryOptions\.disk_dir must be a path"),
    (lambda: CkptOptions(mode="binomial"), r"CkptOptions\.mode must be one of"),
    (lambda: CkptOptions(chunks=0), r"CkptOptions\.chunks must be a positive integer"),
    (lambda: CkptOptions(chunks=-3), r"CkptOptions\.chunks must be a positive integer"),
    (lambda: CkptOptions(chunks=True), r"CkptOptions\.chunks must be a positive integer"),
    (lambda: CkptOptions(count=0), r"CkptOptions\.count must be a positive integer"),
    (lambda: EagerOptions(use_compile="yes"), r"EagerOptions\.use_compile must be a bool"),
    (lambda: CUDAOptions(memory="full"), r"CUDAOptions\.memory must be a MemoryOptions"),
])
def test_option_validation(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_valid_options():
    for storage in ("gpu", "device", "cpu", "disk"):
        for dtype in ("fp32", "fp16", "bf16", "int8"):
            b = BoundaryOptions(storage=storage, storage_dtype=dtype)
            assert (b.storage, b.storage_dtype, b.transfer_interval, b.pinned_memory, b.disk_dir) == \
                (storage, dtype, 8, False, None)
    assert MemoryOptions() == MemoryOptions(strategy="full")
    assert CkptOptions() == CkptOptions(mode="chunk", chunks=100, count=8)
    assert EagerOptions().use_compile is False and CUDAOptions().memory is None


def test_eager_use_compile():
    """torch.compile'd forward steps give the plain eager data and gradient (up to reordering round-off)."""
    compiled = solver(eager_options=EagerOptions(use_compile=True), use_ckpt=True, ckpt_chunks=16)
    plain = solver(use_ckpt=True, ckpt_chunks=16)
    torch.testing.assert_close(forward(compiled), forward(plain), rtol=1e-5, atol=1e-7)
    g_compiled, g_plain = _gradient(compiled), _gradient(plain)
    assert float((g_compiled - g_plain).norm() / g_plain.norm()) < 1e-5


def test_dispersion_warning():
    # 5 Hz Ricker over 400 steps: fmax ~ 11 Hz; vmin = 200 m/s at dh = 25 m -> ~0.7 points per wavelength.
    nt, dt = 400, 0.002
    wav = ricker(np.arange(nt, dtype=np.float32) * dt - 0.2, f=5.0)
    src, rec = tiny_geometry()
    vp = torch.full((NZ, NX), 200.0)
    prop = PropTorch(Acoustic(), (NZ, NX), dh=25.0, dt=dt, nt=nt, abcn=ABCN, impl="eager")
    with pytest.warns(UserWarning, match=r"grid points per shortest wavelength") as rec_w:
        prop(wav, src, rec, models=[vp])
    msg = str([w.message for w in rec_w if "per shortest" in str(w.message)][0])
    assert "dispersion" in msg and "vmin=200" in msg
    # Well sampled: no warning (10 m/s-fine grid: 1000 m/s / 11 Hz / 2 m ~ 45 points).
    prop_ok = PropTorch(Acoustic(), (NZ, NX), dh=2.0, dt=0.0005, nt=nt, abcn=ABCN, impl="eager")
    with warnings.catch_warnings(record=True) as rec_ok:
        warnings.simplefilter("always")
        prop_ok(wav, src, rec, models=[torch.full((NZ, NX), 1000.0)])
    assert no_dispersion_warnings(rec_ok) == []


def test_default_tiny_problem_emits_no_warnings():
    with warnings.catch_warnings(record=True) as rec_w:
        warnings.simplefilter("always")
        forward(solver())
    assert [str(w.message) for w in rec_w] == []
