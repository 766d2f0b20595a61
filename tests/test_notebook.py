"""examples/strategy_comparison.ipynb runs end to end (on sweep-bench --quick's shot, 5 or more grid points per
wavelength: no dispersion warning) and cleans up after itself."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

from sweep.bench.cases import notebook_strategies  # noqa: E402
from sweep.bench.shot import QUICK_DECIMATE, QUICK_FREQ, QUICK_NT, ricker_delay  # noqa: E402
from sweep.propagator.c import library_available, load_error  # noqa: E402

pytestmark = pytest.mark.skipif(not library_available(), reason=f"impl='c' not built: {load_error()}")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "strategy_comparison.ipynb"
# sweep-bench --quick's shot: 71 x 341 at 50 m, 500 steps, a 2 Hz Ricker (7.4 points per wavelength).
SMALL = f"nt = {QUICK_NT}\ndecimate = {QUICK_DECIMATE}\nfreq, delay = {QUICK_FREQ}, {ricker_delay(QUICK_FREQ)}\n"
# The seed notebook's 21 strategies, in its order (cell 3).
LABELS = [label for label, _ in notebook_strategies(disk_dir="unused")]


def _kernel_dir(root: Path) -> Path:
    """A 'python3' kernelspec that runs this interpreter (the venv's), first on JUPYTER_PATH."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)", "language": "python"}))
    return root


def _stream(cell, name: str = "stdout") -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", ())
                   if o.get("output_type") == "stream" and o.get("name") == name)


def test_strategy_comparison_notebook_runs(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Committed without outputs.
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"\._[A-Za-z]|_ebs|_backend_impl", code)  # public API only
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", ())]
    assert len(params) == 1
    # Papermill style: the injected cell follows the defaults and overrides them.
    injected = nbformat.v4.new_code_cell(SMALL, id="injected-parameters")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(params[0] + 1, injected)

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_dir(tmp_path / "jupyter")))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TMPDIR", str(scratch))  # the kernel's tempfile.mkdtemp goes here
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a 71 x 341 grid: threads only add overhead

    probe = nbformat.v4.new_code_cell("import sys\nprint('python:', sys.executable)\nprint('disk_dir:', disk_dir)",
                                      id="probe-disk-dir")
    nb.cells.append(probe)  # after the figure cell that removes it

    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError if any cell fails

    by_id = {c.get("id"): c for c in nb.cells}
    probed = dict(line.split(": ", 1) for line in _stream(by_id["probe-disk-dir"]).splitlines())
    assert Path(probed["python"]).resolve() == Path(sys.executable).resolve()  # the kernel runs this venv
    assert "shape: (71, 341)" in _stream(by_id["setup"])
    assert "observed: (1, 500, 100, 1)" in _stream(by_id["observed"])
    warned = [c.get("id") for c in nb.cells if "grid points per shortest wavelength" in _stream(c, "stderr")]
    assert not warned, warned  # the small run samples its wavelet as finely as the library asks

    out = _stream(by_id["measure"])
    assert "memory_report().peak_memory_bytes" in out  # CPU run: the tracked peak, and it says so
    labels = LABELS
    assert len(labels) == 21
    rows = [line for line in out.splitlines() if line.startswith(tuple(labels))]
    assert [r[:24].rstrip() for r in rows] == labels, out
    row_re = re.compile(r"peak=\s*([\d.]+)MiB stored\[device\s+([\d.]+) \| host\s+([\d.]+) \| disk\s+([\d.]+)\] MiB"
                        r"\s+([\d.]+)s\s+rms\(g\)=(\S+)\s+rel=(\S+)")
    parsed = {}
    for label, row in zip(labels, rows):
        m = row_re.search(row)
        assert m, row
        parsed[label] = dict(zip(("peak", "device", "host", "disk", "time", "rms", "rel"), map(float, m.groups())))
    for label, r in parsed.items():
        assert r["peak"] > 0 and r["rms"] > 0, (label, r)
        assert r["rel"] < 1e-2, (label, r)
        where = {"full": "device", "ckpt": "device", "gpu": "device", "cpu": "host", "disk": "disk"}[
            next(w for w in ("disk", "cpu", "gpu", "ckpt", "full") if w in label)]
        assert r[where] > 0 and all(r[k] == 0 for k in ("device", "host", "disk") if k != where), (label, r)
    for label in ("eager · full", "c · full", "eager · chunk-ckpt", "c · chunk-ckpt", "c · recursive-ckpt"):
        assert parsed[label]["rel"] == 0.0, (label, parsed[label])  # checkpointing is bit-identical

    # The figure cell ran and removed the temporary disk_dir, which was created where we look.
    disk_dir = Path(probed["disk_dir"])
    assert disk_dir.parent == scratch and disk_dir.name.startswith("sweep_bdy_nb_"), disk_dir
    assert not disk_dir.exists()
    assert not list(scratch.glob("sweep_bdy_nb_*")), list(scratch.iterdir())
    assert not list(scratch.glob("sweep-*"))
