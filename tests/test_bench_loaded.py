"""The loaded section of the speed benchmark: which cases it times and how it flags the targets (its
timings are benchmarks, never asserted)."""
from sweep.bench.loaded import loaded_cases, loaded_table


def test_every_strategy_store_and_codec_is_timed(tmp_path):
    cases = dict(loaded_cases(str(tmp_path)))
    c = {label for label, kw in cases.items() if kw["impl"] == "c"}
    assert {"c · full", "c · chunk-ckpt", "c · recursive-ckpt", "c · multistage(4 + 8 disk)"} <= c
    for storage in ("device", "cpu", "disk"):
        for codec in ("fp32", "fp16", "bf16", "int8"):
            assert f"c · bdy {storage} · {codec}" in c
    assert "c · bdy device · zfp 1e-4" in c and "c · chunk-ckpt · zfp 1e-6" in c
    eager = {label for label, kw in cases.items() if kw["impl"] == "eager"}
    assert eager == {"eager · full", "eager · chunk-ckpt", "eager · bdy device · fp16"}
    disk = [kw["memory"] for label, kw in cases.items() if "disk" in label]
    assert all(str(tmp_path) in str(m.boundary.disk_dir or m.ckpt.disk_dir) for m in disk)


def test_table_flags_ratios_over_their_targets():
    row = dict(case="c · full", nt=2000, threads=2, quiet=1.0, loaded=2.0, loaded_1=2.0, ratio_to_1=1.0,
               ratio_to_quiet=2.0)
    slow = dict(row, case="c · slow", loaded=4.0, ratio_to_1=2.0, ratio_to_quiet=4.0)
    lines = loaded_table([row, slow]).splitlines()
    assert "!" not in lines[1] and lines[2].count("!") == 2
