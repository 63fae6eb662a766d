"""latbench.data: the shipped accuracy and latency tables, and how bad files are reported."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from latbench import data, nb201
from latbench.data import BRP_SEED, PAPER_DEVICES, DataError, DeviceInfo, load_accuracy, load_latency, read_csv
from latbench.graph import encode_all_nb201

BEST_CIFAR100 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

Rows = list[list[str]]


@cache
def _shipped(name: str) -> tuple[tuple[str, ...], ...]:
    with (resources.files("latbench") / "data" / name).open("rb") as raw:
        text = gzip.decompress(raw.read()).decode()
    return tuple(tuple(row) for row in csv.reader(io.StringIO(text)))


def shipped(name: str) -> Rows:
    """A fresh, editable copy of a shipped CSV (header first)."""
    return [list(row) for row in _shipped(name)]


def write(path: Path, rows: Rows, gz: bool = False) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    raw = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(raw, compresslevel=1) if gz else raw)
    return path


def set_cell(rows: Rows, index: int, column: str, value: str) -> Rows:
    rows[index + 1][rows[0].index(column)] = value
    return rows


def line_of(index: int) -> str:
    return f"line {index + 2}"  # the header is line 1


# -- the shipped accuracy table ----------------------------------------------------------------------
def test_accuracy_table_shape_and_cache() -> None:
    acc = data.accuracy()
    assert acc is data.accuracy() is load_accuracy()
    assert len(acc) == nb201.NUM_ARCHS
    assert len(acc.unique_str) == nb201.NUM_ARCHS
    assert len(set(acc.unique_str)) == 6_466
    assert set(acc.n_seeds.tolist()) == {2, 3}
    assert int((acc.n_seeds == 3).sum()) == 8_169


def test_accuracy_sanity_values_published_for_nb201() -> None:
    acc = data.accuracy()
    best = nb201.Arch.from_str(BEST_CIFAR100).index
    assert best == 9930
    assert int(np.argmax(acc.column("cifar100", "valid"))) == best
    assert acc.value(best) == pytest.approx(73.493333)
    assert int(np.argmax(acc.column("cifar10", "test"))) == 6111
    assert acc.value(6111, "cifar10", "test") == pytest.approx(94.373333)
    assert acc.value(6111, "cifar10valid", "valid") == pytest.approx(91.607, abs=1e-3)
    assert int(np.argmax(acc.column("imagenet16", "valid"))) == 10676
    assert int(np.argmax(acc.column("imagenet16", "test"))) == 857


def test_accuracy_per_seed_values_and_means() -> None:
    acc = data.accuracy()
    # index 0, straight from the CSV's first row
    assert acc.value(0, "cifar100", "valid", 777) == 51.88
    assert acc.value(0, "cifar100", "valid", BRP_SEED) == 53.08
    assert acc.value(0, "cifar100", "oritest", 999) == 53.11
    assert acc.value(0, "cifar100", "test", "mean") == 52.913333
    # oritest has no mean column: it is the mean of the seeds
    assert acc.value(0, "cifar100", "oritest") == pytest.approx((51.93 + 53.38 + 53.11) / 3)
    # index 347 has two seeds: 999 is nan, the mean is over 777 and 888
    assert acc.seeds(347) == [777, 888]
    assert np.isnan(acc.value(347, seed=999))
    assert acc.value(347, "cifar100", "oritest") == pytest.approx((62.28 + 62.65) / 2)
    assert acc.seeds(0, "imagenet16") == [777, 888, 999]
    assert acc.seeds(0, "cifar10") == []  # only the mean is published
    seed888 = acc.column(seed=BRP_SEED)
    assert seed888.shape == (nb201.NUM_ARCHS,)
    assert not np.isnan(seed888).any()  # BRP-NAS's seed exists for every cell
    assert np.isnan(acc.column(seed=999)).sum() == nb201.NUM_ARCHS - 8_169


def test_accuracy_params() -> None:
    acc = data.accuracy()
    assert acc.params_m(0) == 0.129306
    assert acc.params_m(0, "cifar100") == 0.135156
    assert acc.params_m(0, "imagenet16") == 0.136456
    assert acc.params_m(0, "cifar10valid") == acc.params_m(0, "cifar10")
    assert (acc.params_column("cifar100") > acc.params_column("cifar10")).all()  # bigger classifier
    with pytest.raises(ValueError, match="known: cifar10valid, cifar10, cifar100, imagenet16"):
        acc.params_column("mnist")


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (("mnist", "valid", "mean"), "unknown dataset 'mnist'; known: cifar10valid, cifar10, cifar100"),
        (("cifar10", "valid", "mean"), "dataset cifar10 has no split 'valid'; it has: test"),
        (("cifar100", "train", "mean"), "it has: valid, test, oritest"),
        (("cifar100", "valid", 123), "allowed: 777, 888, 999, mean"),
        (("cifar10", "test", 888), "allowed: mean"),
        (("cifar100", "valid", "median"), "has no seed 'median'"),
    ],
)
def test_accuracy_bad_queries_list_allowed_values(args: tuple[str, str, int | str], hint: str) -> None:
    with pytest.raises(ValueError) as info:
        data.accuracy().column(*args)  # type: ignore[arg-type]
    assert hint in str(info.value)


def test_accuracy_bad_index() -> None:
    with pytest.raises(nb201.ArchError, match=r"0\.\.15624"):
        data.accuracy().value(15_625)
    with pytest.raises(ValueError, match="unknown dataset"):
        data.accuracy().seeds(0, "cifar")


def test_arrays_are_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        data.accuracy().column()[0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        data.latency().column(PAPER_DEVICES[0])[0] = 0.0


# -- the shipped latency table -----------------------------------------------------------------------
def test_latency_devices() -> None:
    lat = data.latency()
    assert lat is data.latency() is load_latency()
    devices = lat.devices()
    assert len(devices) == 13
    assert [d.name for d in devices if d.in_paper] == sorted(PAPER_DEVICES, key=[d.name for d in devices].index)
    assert len(PAPER_DEVICES) == 6
    assert {d.device_class for d in devices} == set(data.DEVICE_CLASSES)
    cpu = lat.device("desktop_cpu_core_i7_7820x_fp32")
    assert cpu == DeviceInfo(
        name="desktop_cpu_core_i7_7820x_fp32",
        column="desktop_cpu_core_i7_7820x_fp32_ms",
        device_class="desktop_cpu",
        hardware="Intel Core i7-7820X",
        precision="fp32",
        in_paper=True,
        runs_default=1000,
    )
    assert lat.device("embedded_gpu_jetson_nano_fp32").in_paper
    assert not lat.device("embedded_gpu_jetson_nano_fp16").in_paper
    dsp = lat.device("mobile_dsp_snapdragon_855_hexagon_690_int8_ms")  # the column name works too
    assert (dsp.device_class, dsp.precision, dsp.runs_default, dsp.in_paper) == ("mobile_dsp", "int8", 10, True)
    assert "Hexagon 690" in dsp.hardware
    assert "Adreno 612" in lat.device(PAPER_DEVICES[4]).hardware


def test_latency_values() -> None:
    lat = data.latency()
    assert lat.value("desktop_cpu_core_i7_7820x_fp32", 0) == 3.896706
    assert lat.value("mobile_gpu_snapdragon_855_adreno_640_int8", 1) == 6.173
    invalid = np.flatnonzero(~encode_all_nb201().valid)
    for device in lat.devices():
        column = lat.column(device.name)
        assert column.shape == (nb201.NUM_ARCHS,)
        assert np.isnan(column[invalid]).all(), device.name  # no latency for a disconnected cell
        assert (column[~np.isnan(column)] > 0).all()
        assert lat.value(device.name, int(invalid[0])) is None
    present = {d.name: int((~np.isnan(lat.column(d.name))).sum()) for d in lat.devices()}
    assert present["embedded_tpu_edgetpu_int8"] == 15_284
    assert present["mobile_gpu_snapdragon_675_adreno_612_int8"] == 15_261
    assert present["mobile_cpu_snapdragon_450_cortex_a53_int8"] == 15_252
    # the Jetson fp16 column is the faster one (see SOURCES.md)
    fp16, fp32 = (np.nanmedian(lat.column(f"embedded_gpu_jetson_nano_{p}")) for p in ("fp16", "fp32"))
    assert fp16 < fp32


def test_latency_unknown_device_lists_known_names() -> None:
    with pytest.raises(ValueError) as info:
        data.latency().column("desktop_gpu_rtx_4090_fp32")
    assert "unknown device 'desktop_gpu_rtx_4090_fp32'" in str(info.value)
    assert "desktop_gpu_gtx_1080ti_fp32" in str(info.value)


def test_device_info_from_other_names() -> None:
    info = DeviceInfo.from_name("desktop_cpu_amd_epyc_9654_fp32")
    assert (info.device_class, info.precision, info.hardware, info.in_paper) == (
        "desktop_cpu",
        "fp32",
        "amd epyc 9654",
        False,
    )
    with pytest.raises(ValueError, match="precision one of fp32, fp16, int8"):
        DeviceInfo.from_name("desktop_cpu_amd_epyc_bf16")
    with pytest.raises(ValueError, match="class one of desktop_cpu"):
        DeviceInfo.from_name("server_cpu_xeon_fp32")


# -- files: good ones in other forms -----------------------------------------------------------------
def test_plain_and_gzip_copies_load_the_same(tmp_path: Path) -> None:
    rows = shipped("latbench_latency.csv.gz")
    plain = load_latency(write(tmp_path / "lat.csv", rows))
    packed = load_latency(write(tmp_path / "lat.csv.gz", rows, gz=True))
    for device in data.latency().devices():
        np.testing.assert_array_equal(plain.column(device.name), data.latency().column(device.name))
        np.testing.assert_array_equal(packed.column(device.name), data.latency().column(device.name))


def test_a_latency_file_with_fewer_devices(tmp_path: Path) -> None:
    rows = [row[:4] for row in shipped("latbench_latency.csv.gz")]
    lat = load_latency(write(tmp_path / "one.csv", rows))
    assert [d.name for d in lat.devices()] == ["desktop_cpu_core_i7_7820x_fp32"]


def test_accuracy_copy_loads(tmp_path: Path) -> None:
    acc = load_accuracy(write(tmp_path / "acc.csv.gz", shipped("nb201_accuracy_200ep.csv.gz"), gz=True))
    assert acc is not data.accuracy()
    np.testing.assert_array_equal(acc.column(seed=BRP_SEED), data.accuracy().column(seed=BRP_SEED))


# -- files: bad ones name the file, the line and the problem -----------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv.gz"
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: file not found"):
        load_accuracy(path)
    with pytest.raises(DataError, match="file not found"):
        load_latency(str(path))


def _drop_column(name: str) -> Callable[[Rows], Rows]:
    def edit(rows: Rows) -> Rows:
        k = rows[0].index(name)
        return [row[:k] + row[k + 1 :] for row in rows]

    return edit


def _swap_rows(a: int, b: int) -> Callable[[Rows], Rows]:
    def edit(rows: Rows) -> Rows:
        rows[a + 1], rows[b + 1] = rows[b + 1], rows[a + 1]
        return rows

    return edit


def _set(index: int, column: str, value: str) -> Callable[[Rows], Rows]:
    return lambda rows: set_cell(rows, index, column, value)


ACC = "nb201_accuracy_200ep.csv.gz"
LAT = "latbench_latency.csv.gz"
CPU = "desktop_cpu_core_i7_7820x_fp32_ms"

BAD_FILES: list[tuple[str, str, Callable[[Rows], Rows], str]] = [
    # (shipped file, case, edit, expected message fragment)
    (ACC, "missing column", _drop_column("cifar100_valid_acc_s888"), "line 1: missing column(s) cifar100_valid"),
    (LAT, "missing id column", _drop_column("op_code"), "line 1: missing column(s) op_code"),
    (ACC, "unexpected column", lambda r: [[*row, "x"] for row in r], "line 1: unexpected column(s) x"),
    (LAT, "not a latency column", lambda r: [[*row, "x"] for row in r], "line 1: column 'x' is not a latency column"),
    (LAT, "duplicate column", lambda r: [[*row, row[3]] for row in r], "duplicate column(s) desktop_cpu"),
    (ACC, "row out of order", _swap_rows(5, 6), f"{line_of(5)}: row out of order: arch_index is '6' where 5"),
    (LAT, "row out of order", _swap_rows(0, 15_624), f"{line_of(0)}: row out of order"),
    (ACC, "op_code disagrees", _set(100, "op_code", "000000"), f"{line_of(100)}: op_code '000000' disagrees"),
    (LAT, "arch_str disagrees", _set(7, "arch_str", "|none~0|"), f"{line_of(7)}: arch_str '|none~0|' disagrees"),
    (ACC, "garbage number", _set(300, "cifar100_valid_acc_s888", "7O.1"), f"{line_of(300)}: column cifar100_"),
    (LAT, "garbage number", _set(42, CPU, "fast"), f"{line_of(42)}: column {CPU} holds 'fast', which is not"),
    (ACC, "negative value", _set(10, "params_M_cifar10", "-0.1"), f"{line_of(10)}: column params_M_cifar10"),
    (LAT, "negative latency", _set(11, CPU, "-3.5"), f"{line_of(11)}: column {CPU} value '-3.5' must be pos"),
    (LAT, "zero latency", _set(12, CPU, "0"), f"{line_of(12)}: column {CPU} value '0' must be positive"),
    (LAT, "infinite latency", _set(13, CPU, "inf"), f"{line_of(13)}: column {CPU} value 'inf' is not finite"),
    (LAT, "nan text", _set(14, CPU, "nan"), f"{line_of(14)}: column {CPU} holds 'nan'; leave the cell empty"),
    (ACC, "accuracy over 100", _set(20, "cifar10valid_valid_acc_mean", "100.5"), f"{line_of(20)}: column"),
    (ACC, "required value missing", _set(30, "cifar100_valid_acc_mean", ""), f"{line_of(30)}: column cifar100"),
    (ACC, "seed count", _set(0, "cifar100_valid_acc_s999", ""), f"{line_of(0)}: cifar100_valid_acc_s* has 2 seeds"),
    (ACC, "n_seeds not whole", _set(1, "n_seeds_200ep", "2.5"), f"{line_of(1)}: n_seeds_200ep must be a whole"),
    (ACC, "too few rows", lambda r: r[:-1], "expected 15625 rows (one per NB201 index), found 15624"),
    (LAT, "too many rows", lambda r: [*r, r[-1]], f"{line_of(15_625)}: expected 15625 rows"),
    (LAT, "short row", lambda r: [*r[:50], r[50][:-1], *r[51:]], f"{line_of(49)}: expected 16 fields, found 15"),
]


@pytest.mark.parametrize(("name", "case", "edit", "message"), BAD_FILES, ids=[f"{n[:3]}-{c}" for n, c, *_ in BAD_FILES])
def test_bad_file_is_reported(tmp_path: Path, name: str, case: str, edit: Callable[[Rows], Rows], message: str) -> None:
    path = write(tmp_path / "bad.csv", edit(shipped(name)))
    loader = load_accuracy if name == ACC else load_latency
    with pytest.raises(DataError) as info:
        loader(path)
    text = str(info.value)
    assert text.startswith(f"{path}"), text
    assert message in text


def test_bad_device_column_name(tmp_path: Path) -> None:
    rows = [[*row, "1.0"] for row in shipped(LAT)]
    rows[0][-1] = "desktop_cpu_pentium_fp64_ms"
    with pytest.raises(DataError, match=r"column 'desktop_cpu_pentium_fp64_ms': device name .* precision one of"):
        load_latency(write(tmp_path / "dev.csv", rows))


def test_no_device_columns(tmp_path: Path) -> None:
    rows = [row[:3] for row in shipped(LAT)]
    with pytest.raises(DataError, match="no latency columns"):
        load_latency(write(tmp_path / "ids.csv", rows))


def test_unreadable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=rf"{re.escape(str(empty))}: empty file"):
        load_latency(empty)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(b"arch_index,arch_str\n" * 100)[:40])
    with pytest.raises(DataError, match=rf"{re.escape(str(broken))}: not a readable gzip file"):
        load_latency(broken)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("arch_index,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"{re.escape(str(latin))}: not UTF-8 text"):
        load_latency(latin)


# -- read_csv: line numbers survive blank lines and quoted line breaks -------------------------------
def test_read_csv_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,x\n\n2,"two\nlines"\n-3,y\n')
    table = read_csv(path, "unused", required=["a", "b"])
    assert table.rows == [["1", "x"], ["2", "two\nlines"], ["-3", "y"]]
    assert list(table.lines) == [2, 4, 6]
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}, line 6: column a value '-3' is negative"):
        table.floats("a")
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}, line 2: column b holds 'x', which is not a number"):
        table.floats("b")


def test_read_csv_fast_path_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n2\n-3\n")
    table = read_csv(path, "unused", required=["a"])
    assert list(table.lines) == [2, 3, 4]
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}, line 4: column a value '-3' is negative"):
        table.floats("a")
