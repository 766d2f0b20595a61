"""The benchmark figures, from synthetic results (no propagation)."""
import matplotlib
import pytest
from matplotlib.text import Text

from sweep.bench.plots import plot_strategies, plot_sweep, strategies_figure, sweep_figure
from sweep.bench.tradeoff import pareto_front, plot_tradeoff, tradeoff_figure

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


def _legend_entries_drawn(legend, axes) -> list[str]:
    """Every entry of ``legend`` names an artist on ``axes`` that has data; returns the entries."""
    artists = {a.get_label(): a for ax in axes for a in ax.lines + ax.collections}
    names = [t.get_text() for t in legend.get_texts()]
    for name in names:
        artist = artists[name]
        data = artist.get_xydata() if hasattr(artist, "get_xydata") else artist.get_offsets()
        assert len(data) > 0, name
    return names


def test_sweep_legend_entries_are_drawn_references_included():
    sweep = _sweep("transfer_interval", [1, 8, 64], labels=("c · bdy cpu · fp32", "c · bdy disk · fp32"))
    sweep["rows"].insert(0, _row("c · full", value=None, seconds=1.2, tracked_peak_mib=735.0, peak_rss_mib=745.0))
    sweep["rows"].append(_row("c · bdy gpu · fp32", value=8, seconds=None, tracked_peak_mib=None, peak_rss_mib=None))
    sweep["setup"] = dict(device="cpu")
    fig = sweep_figure(sweep)
    ax_t, ax_m = fig.axes
    times = _legend_entries_drawn(ax_t.get_legend(), [ax_t])
    memory = _legend_entries_drawn(ax_m.get_legend(), [ax_m])
    assert "c · full (reference)" in times and "c · full (reference): measured peak" in memory
    assert not any("gpu" in name or "bdy device" in name for name in times)  # nothing measured: no entry
    assert ax_m.get_yscale() == "log"  # 735 MiB beside 10-30 MiB


def test_labels_say_device_on_a_cpu():
    rows = [_row("c · bdy gpu · fp16"), _row("c · bdy cpu · fp16")]
    ticks = [t.get_text() for t in strategies_figure(dict(setup=dict(device="cpu"), rows=rows)).axes[0].get_yticklabels()]
    assert ticks == ["c · bdy device · fp16", "c · bdy cpu · fp16"]
    ticks = [t.get_text() for t in strategies_figure(dict(setup=dict(device="cuda:0"), rows=rows)).axes[0].get_yticklabels()]
    assert ticks == ["c · bdy gpu · fp16", "c · bdy cpu · fp16"]


def test_pareto_front():
    points = [(1, 100), (2, 50), (3, 60), (2, 50), (4, 10), (5, 10), (0.5, 200), (1, 120), (6, 5)]
    # (3, 60) is beaten by (2, 50), (5, 10) by (4, 10), (1, 120) by (1, 100); equal points both stay
    assert pareto_front(points) == [6, 0, 1, 3, 4, 8]
    assert pareto_front([]) == [] and pareto_front([(1.0, 1.0)]) == [0]
    assert pareto_front([(1, 1), (2, 2), (3, 3)]) == [0]


def _tradeoff_rows(n_crowd: int) -> list[dict]:
    rows = [_row("c · full", seconds=1.1, peak_rss_mib=745.0, err_whole=0.0),
            _row("eager · full", seconds=25.0, peak_rss_mib=817.0, err_whole=0.0),
            _row("deepwave · disk", seconds=3.2, peak_rss_mib=12.8, err_whole=None),
            _row("c · bdy disk · int8", seconds=0.8, peak_rss_mib=18.0, err_whole=7e-4),
            _row("c · chunk-ckpt", status="failed", error="boom", seconds=None, peak_rss_mib=None)]
    rows += [_row(f"c · bdy gpu · v{k}", seconds=0.85 + 0.01 * k, peak_rss_mib=30.0 + 0.7 * k, err_whole=10.0 ** (-6 + k % 4))
             for k in range(n_crowd)]  # a crowd: one point per case, all within a few pixels
    return rows


@pytest.mark.parametrize("n_crowd", [0, 12])
def test_tradeoff_figure(n_crowd):
    rows = _tradeoff_rows(n_crowd)
    fig = tradeoff_figure(dict(setup=dict(device="cpu", peak_kind="rss"), rows=rows))
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == (2 if n_crowd else 1)  # a crowd is drawn again, zoomed
    assert all(ax.get_xscale() == ax.get_yscale() == "log" for ax in panels)
    (legend,) = fig.legends
    names = _legend_entries_drawn(legend, panels)
    assert any(n.startswith("Pareto front") for n in names) and any(n.startswith("exact") for n in names)
    # the front: c · bdy disk · int8 (fastest), then deepwave · disk (smaller), as a staircase
    (front,) = [line for line in panels[0].lines if line.get_label().startswith("Pareto")]
    assert [tuple(p) for p in front.get_xydata()] == [(0.8, 18.0), (3.2, 12.8)] and front.get_drawstyle() == "steps-post"
    # every point that ran is labelled once, on the CPU with 'device' for 'gpu', the failed one nowhere
    texts = [t for ax in panels for t in ax.texts if t.get_text() != "zoomed on the right"]
    shown = sorted(t.get_text() for t in texts)
    assert shown == sorted(["c full", "eager full", "deepwave disk", "c bdy disk int8"] +
                           [f"c bdy device v{k}" for k in range(n_crowd)])
    renderer = fig.canvas.get_renderer()
    for ax in panels:  # the labels (without their leader lines) overlap one another nowhere
        boxes = []
        for t in ax.texts:
            t.update_positions(renderer)
            boxes.append(Text.get_window_extent(t, renderer))
        assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[:i] if a.overlaps(b)]


def test_plot_tradeoff_writes_png(tmp_path):
    path = tmp_path / "tradeoff.png"
    assert plot_tradeoff(dict(setup=dict(device="cpu"), rows=_tradeoff_rows(3)), str(path)) == str(path)
    assert _is_png(path)
    plot_tradeoff(dict(setup={}, rows=[]), str(tmp_path / "empty.png"))
    assert _is_png(tmp_path / "empty.png")


def test_refused_rows_at_one_level_share_it_and_a_disk_refusal_draws_none():
    """Rows the guard (or a peer's estimate) refused draw a level at their memory need: needs within 15% of
    each other one level with the labels joined and the largest need; a row refused for disk alone none."""
    def refused(label, needed, have):
        return dict(label=label, status="does not fit", needed_mib=needed, available_mib=have)

    rows = [refused("c · full", {"host": 31550.0}, {"host": 22400.0}),
            refused("deepwave · device · 8-bit", {"host": 29140.0}, {"host": 22700.0}),
            refused("deepwave · device", {"host": 81280.0}, {"host": 22700.0}),
            refused("deepwave · disk", {"host": 450.0, "disk": 64770.0}, {"host": 22700.0, "disk": 38200.0}),
            dict(label="c · bdy device · fp32", seconds=90.0, peak_rss_mib=2770.0, status="ok")]
    fig = tradeoff_figure(dict(setup=dict(device="cpu", peak_kind="rss"), rows=rows))
    texts = [t.get_text() for t in fig.axes[0].texts]
    refusals = sorted(t for t in texts if "does not fit" in t)
    assert refusals == ["deepwave device 8-bit, c full: does not fit, predicted up to 30.8 GiB",
                        "deepwave device: does not fit, predicted 79.4 GiB"], refusals
    assert not any("deepwave disk" in t for t in texts)


# (label, seconds, peak MiB, err_whole) of an eager VRZ quick run whose rows all lie within 3x in time: a
# crowd so wide that no label column started inside the axes, which raised a TypeError.
WIDE_CROWD = [
    ("full", 6.39, 168.7, 0.0), ("bdy device · fp32", 8.99, 81.3, 6.7e-05),
    ("bdy device · fp16", 6.29, 79.9, 3.9e-04), ("bdy device · bf16", 7.15, 81.3, 3.3e-03),
    ("bdy device · int8", 9.14, 79.8, 1.4e-02), ("bdy cpu · fp32", 8.53, 83.3, 6.7e-05),
    ("bdy cpu · fp16", 8.41, 80.9, 3.9e-04), ("bdy cpu · bf16", 7.55, 80.4, 3.3e-03),
    ("bdy cpu · int8", 8.55, 78.7, 1.4e-02), ("bdy disk · fp32", 9.86, 78.0, 6.7e-05),
    ("bdy disk · fp16", 9.88, 77.6, 3.9e-04), ("bdy disk · bf16", 11.25, 78.5, 3.3e-03),
    ("bdy disk · int8", 7.82, 80.0, 1.4e-02), ("chunk-ckpt", 10.29, 103.5, 0.0),
    ("recursive-ckpt", 16.83, 87.0, 0.0), ("multistage(4 + 16 disk)", 11.01, 82.7, 0.0),
    ("bdy device · zfp 1e-4", 6.85, 108.6, 8.0e-05), ("bdy device · zfp rate 16", 7.98, 80.7, 6.7e-05),
    ("bdy device · fp32 · skip zeros", 9.72, 52.4, 6.7e-05), ("chunk-ckpt · zfp 1e-6", 10.65, 98.8, 7.5e-05),
    ("auto 64 MiB", 11.01, 80.8, 6.7e-05), ("auto 8 MiB + disk", 11.13, 81.8, 6.7e-05)]


def test_tradeoff_labels_a_crowd_wider_than_its_columns(tmp_path):
    rows = [_row(f"eager · {label}", seconds=s, peak_rss_mib=peak, err_whole=err)
            for label, s, peak, err in WIDE_CROWD]
    result = dict(setup=dict(shape=[71, 341], nt=500, device="cpu", threads=1, peak_kind="rss"), rows=rows)
    fig = tradeoff_figure(result)
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert all(any(f"eager {label.replace(' · ', ' ')}" == t for t in labels) for label, *_ in WIDE_CROWD)
    plot_tradeoff(result, str(tmp_path / "t.png"))
    assert _is_png(tmp_path / "t.png")
