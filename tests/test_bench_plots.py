"""The benchmark figures, from synthetic results (no propagation)."""
import matplotlib
import pytest

from sweep.bench.plots import plot_strategies, plot_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def _row(label, **kw):
    row = dict(label=label, status="ok", cuda_peak_mib=None, peak_rss_mib=120.0, tracked_peak_mib=80.0,
               stored_mib={"device": 50.0}, seconds=1.5, err_whole=1e-4)
    row.update(kw)
    return row


def _result(peak_kind="rss"):
    rows = [
        _row("eager · full", err_whole=0.0, stored_mib={"device": 700.0}),
        _row("c · bdy cpu · fp16", stored_mib={"device": 2.0, "host": 30.0}, err_whole=3e-4),
        _row("c · bdy disk · int8", stored_mib={"device": 1.0, "host": 4.0, "disk": 16.0}, err_whole=2e-2),
        _row("deepwave", stored_mib=None, err_whole=None, cuda_peak_mib=300.0),
        _row("c · recursive-ckpt", status="failed", error="RuntimeError: out of memory " * 5,
             seconds=None, peak_rss_mib=None, stored_mib=None, err_whole=None),
        _row("c · bdy gpu · fp32", peak_rss_mib=None, stored_mib={}, err_whole=1e-9),
    ]
    setup = dict(shape=[176, 300], nt=1000, device="cpu", threads=8, peak_kind=peak_kind)
    return dict(setup=setup, rows=rows)


@pytest.mark.parametrize("peak_kind", ["rss", "cuda"])
def test_plot_strategies_writes_png(tmp_path, peak_kind):
    backend = matplotlib.get_backend()
    path = tmp_path / "strategies.png"
    assert plot_strategies(_result(peak_kind), str(path)) == str(path)
    assert _is_png(path)
    assert matplotlib.get_backend() == backend


def test_plot_strategies_edge_cases(tmp_path):
    only_failed = dict(setup={}, rows=[_row("x", status="failed", error=None, peak_rss_mib=None)])
    plot_strategies(only_failed, str(tmp_path / "a.png"))
    assert _is_png(tmp_path / "a.png")
    all_zero = dict(setup=dict(peak_kind="cuda"), rows=[_row("a", err_whole=0.0), _row("b", err_whole=0.0)])
    plot_strategies(all_zero, str(tmp_path / "b.png"))
    assert _is_png(tmp_path / "b.png")
    plot_strategies(dict(setup={}, rows=[]), str(tmp_path / "c.png"))
    assert _is_png(tmp_path / "c.png")


def _sweep(knob, values, labels=("c · bdy gpu · fp32",)):
    rows = []
    for label in labels:
        for i, v in enumerate(values):
            rows.append(_row(label, value=v, seconds=1.0 + 0.1 * i, tracked_peak_mib=10.0 * (i + 1)))
    rows[1] = dict(rows[1], status="failed", error="boom")
    return dict(knob=knob, values=list(values), rows=rows, inert=None)


def test_plot_sweep_inert_writes_nothing(tmp_path):
    sweep = _sweep("pinned_memory", ["on", "off"])
    sweep["inert"] = "pinned memory has no effect without CUDA"
    path = tmp_path / "inert.png"
    assert plot_sweep(sweep, str(path)) is None
    assert not path.exists()


@pytest.mark.parametrize("knob, values", [
    ("transfer_interval", [1, 2, 4, 8, 16, 32, 64, 128]),
    ("chunks", [10, 50.0, 100]),
    ("storage", ["device", "cpu", "disk"]),
    ("pinned_memory", ["on", "off"]),
    ("mixed", [1, "auto", 4]),
])
def test_plot_sweep_numeric_and_categorical(tmp_path, knob, values):
    path = tmp_path / f"{knob}.png"
    sweep = _sweep(knob, values, labels=("c · bdy cpu · fp32", "c · bdy cpu · int8"))
    sweep["rows"][-1]["cuda_peak_mib"] = 42.0
    assert plot_sweep(sweep, str(path)) == str(path)
    assert _is_png(path)


def test_plot_sweep_all_failed(tmp_path):
    sweep = _sweep("storage", ["device", "cpu"])
    sweep["rows"] = [dict(r, status="failed", error="x") for r in sweep["rows"]]
    path = tmp_path / "failed.png"
    assert plot_sweep(sweep, str(path)) == str(path)
    assert _is_png(path)
