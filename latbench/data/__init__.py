"""Loaders for the data shipped with LatBench (provenance, licences and units in ``SOURCES.md`` here).

* :func:`accuracy` / :func:`load_accuracy`: NAS-Bench-201 accuracies (percent) after 200 epochs, per
  seed and seed mean, and parameter counts (millions) — an :class:`AccuracyTable`.
* :func:`latency` / :func:`load_latency`: the LatBench 2020 release, latencies in milliseconds on 13
  devices — a :class:`LatencyTable` with one :class:`DeviceInfo` per device.

Both read a gzip-compressed (or plain) CSV with the stdlib ``csv`` module into numpy arrays, check every
row against the NB201 index table (row i is index i, and its ``op_code`` and ``arch_str`` agree), and
raise :class:`DataError` naming the file, the line and the problem otherwise. The default tables are
loaded on first use and cached; arrays handed out are read-only because they are shared.
"""

from __future__ import annotations

import csv
import gzip
import io
import operator
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import IO, Literal, NoReturn

import numpy as np

from latbench import nb201

ACCURACY_FILE = "nb201_accuracy_200ep.csv.gz"
LATENCY_FILE = "latbench_latency.csv.gz"
NB101_FILE = "nb101_subset_naslib_500.csv.gz"

PathLike = str | os.PathLike[str]


class DataError(ValueError):
    """A data file that cannot be used: missing, malformed, or disagreeing with the NB201 index table."""


# -- CSV reading -----------------------------------------------------------------------------------
@dataclass
class CsvTable:
    """The rows of one CSV file as text, with what is needed to blame a line when a value is bad."""

    file: str  # how errors name the file
    header: tuple[str, ...]
    rows: list[list[str]]
    lines: Sequence[int]  # line number of each row in the file (the header is line 1)
    _columns: list[list[str]] | None = field(default=None, repr=False)

    def fail(self, row: int | None, problem: str) -> NoReturn:
        """Raise a DataError naming the file and the line of ``row`` (the whole file when None)."""
        where = f"{self.file}, line {self.lines[row]}" if row is not None else self.file
        raise DataError(f"{where}: {problem}")

    def fail_header(self, problem: str) -> NoReturn:
        raise DataError(f"{self.file}, line 1: {problem}")

    def text(self, column: str) -> list[str]:
        if self._columns is None:  # transpose once: zip is much faster than one pass per column
            self._columns = [list(c) for c in zip(*self.rows, strict=True)] or [[] for _ in self.header]
        return self._columns[self.header.index(column)]

    def floats(
        self,
        column: str,
        *,
        missing_ok: bool = True,
        positive: bool = False,
        maximum: float | None = None,
    ) -> np.ndarray:
        """A numeric column as float64; empty cells become nan (or fail when ``missing_ok`` is False)."""
        texts = self.text(column)
        try:
            values = np.array([t or "nan" for t in texts], dtype=np.float64)  # numpy parses the text
        except ValueError:
            for row, t in enumerate(texts):
                try:
                    float(t or "0")
                except ValueError:
                    self.fail(row, f"column {column} holds {t!r}, which is not a number")
            raise  # unreachable: some cell failed above
        missing = np.isnan(values)
        if missing.any():
            for row in np.flatnonzero(missing).tolist():
                if texts[row]:  # a literal "nan" is not how this format writes "not available"
                    self.fail(row, f"column {column} holds {texts[row]!r}; leave the cell empty instead")
                if not missing_ok:
                    self.fail(row, f"column {column} has no value")
        checks: list[tuple[np.ndarray, str]] = [(np.isinf(values), "is not finite")]
        if positive:
            checks.append((values <= 0, "must be positive"))
        else:
            checks.append((values < 0, "is negative"))
        if maximum is not None:
            checks.append((values > maximum, f"is above {maximum:g}"))
        for bad, what in checks:
            if bad.any():
                row = int(np.argmax(bad))
                self.fail(row, f"column {column} value {texts[row]!r} {what}")
        return values


def _open_text(source: PathLike | Traversable, file: str) -> IO[str]:
    try:
        raw = open(source, "rb") if isinstance(source, str | os.PathLike) else source.open("rb")  # noqa: SIM115
    except FileNotFoundError:
        raise DataError(f"{file}: file not found") from None
    except OSError as exc:
        raise DataError(f"{file}: cannot open ({exc.strerror or exc})") from None
    data = raw.read()
    raw.close()
    if data[:2] == b"\x1f\x8b":  # gzip magic: decide by content, not by the file name
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{file}: not a readable gzip file ({exc})") from None
    try:
        return io.StringIO(data.decode("utf-8"), newline="")
    except UnicodeDecodeError as exc:
        raise DataError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_csv(
    path: PathLike | None,
    default: str,
    *,
    required: Iterable[str],
    allowed: Iterable[str] | None = None,
) -> CsvTable:
    """Read a CSV (gzip or plain) with a header row; ``path=None`` reads the shipped file ``default``.

    Checks that every ``required`` column is there, that no column outside ``allowed`` is (when given),
    and that every row has as many fields as the header.
    """
    if path is None:
        source: PathLike | Traversable = resources.files(__name__) / default
        file = f"latbench/data/{default}"
    else:
        source, file = path, os.fspath(path)
    with _open_text(source, file) as f:
        reader = csv.reader(f)
        try:
            header = tuple(name.strip() for name in next(reader))
        except StopIteration:
            raise DataError(f"{file}: empty file, expected a header row") from None
        table = CsvTable(file=file, header=header, rows=[], lines=[])
        _check_header(table, required, allowed)
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise DataError(f"{file}, line {reader.line_num}: malformed CSV ({exc})") from None
        if reader.line_num == len(rows) + 1 and all(rows):
            table.rows, table.lines = rows, range(2, len(rows) + 2)  # one line per row: the fast path
        else:  # blank lines or quoted line breaks: read again, noting where each row starts
            f.seek(0)
            reader = csv.reader(f)
            next(reader)
            lines: list[int] = []
            start = reader.line_num + 1
            for row in reader:
                if row:
                    table.rows.append(row)
                    lines.append(start)
                start = reader.line_num + 1
            table.lines = lines
    width = len(header)
    for k, row in enumerate(table.rows):
        if len(row) != width:
            table.fail(k, f"expected {width} fields, found {len(row)}")
    return table


def _check_header(table: CsvTable, required: Iterable[str], allowed: Iterable[str] | None) -> None:
    names = table.header
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        table.fail_header(f"duplicate column(s) {', '.join(duplicates)}")
    missing = [n for n in required if n not in names]
    if missing:
        table.fail_header(f"missing column(s) {', '.join(missing)}")
    if allowed is not None:
        known = set(allowed)
        extra = [n for n in names if n not in known]
        if extra:
            table.fail_header(f"unexpected column(s) {', '.join(extra)}")


# -- NB201 row checks ------------------------------------------------------------------------------
NB201_ID_COLUMNS = ("arch_index", "arch_str", "op_code")


@cache
def _arch_strs() -> tuple[str, ...]:
    return tuple(nb201.Arch.from_op_code(code).arch_str for code in nb201.op_codes_by_index())


@cache
def _index_texts() -> list[str]:
    return [str(i) for i in range(nb201.NUM_ARCHS)]


def check_nb201_rows(table: CsvTable) -> None:
    """Row i must be NB201 index i, with the op code and arch string of the shipped index table."""
    n = len(table.rows)
    if n != nb201.NUM_ARCHS:
        row = nb201.NUM_ARCHS if n > nb201.NUM_ARCHS else None
        table.fail(row, f"expected {nb201.NUM_ARCHS} rows (one per NB201 index), found {n}")
    indices, strs, codes = (table.text(c) for c in NB201_ID_COLUMNS)
    if indices != _index_texts():  # fast path first; then find and name the first bad row
        for row, text in enumerate(indices):
            if not text.strip().isdigit() or int(text) != row:
                table.fail(row, f"row out of order: arch_index is {text!r} where {row} was expected")
    expected_codes = nb201.op_codes_by_index()
    if tuple(codes) != expected_codes:
        for row, code in enumerate(codes):
            if code != expected_codes[row]:
                table.fail(
                    row,
                    f"op_code {code!r} disagrees with the NB201 index table (index {row} is {expected_codes[row]})",
                )
    expected_strs = _arch_strs()
    if tuple(strs) != expected_strs:
        for row, text in enumerate(strs):
            if text != expected_strs[row]:
                table.fail(row, f"arch_str {text!r} disagrees with op_code {codes[row]} ({expected_strs[row]})")


def _check_index(index: int) -> int:
    i = operator.index(index)
    if not 0 <= i < nb201.NUM_ARCHS:
        raise nb201.ArchError(f"NB201 index must be in 0..{nb201.NUM_ARCHS - 1}, got {index}")
    return i


def _frozen(values: np.ndarray) -> np.ndarray:
    values.setflags(write=False)
    return values


# -- accuracies ------------------------------------------------------------------------------------
BRP_SEED = 888  # the seed BRP-NAS trains its accuracy predictor on (CIFAR-100 validation)
SEEDS: tuple[int, ...] = (777, 888, 999)
Seed = int | Literal["mean"]

# dataset -> its splits. cifar10valid is trained on 25k images and validated on the other 25k;
# cifar10 is trained on all 50k and only its seed-mean test accuracy is published.
DATASETS: dict[str, tuple[str, ...]] = {
    "cifar10valid": ("valid",),
    "cifar10": ("test",),
    "cifar100": ("valid", "test", "oritest"),
    "imagenet16": ("valid", "test", "oritest"),
}
PARAMS_DATASETS = ("cifar10", "cifar100", "imagenet16")
_NO_SEEDS = {("cifar10", "test")}  # mean only
_NO_MEAN_COLUMN = {"oritest"}  # mean computed here from the seeds


def _accuracy_columns() -> list[str]:
    names: list[str] = []
    for dataset, splits in DATASETS.items():
        for split in splits:
            if (dataset, split) not in _NO_SEEDS:
                names += [f"{dataset}_{split}_acc_s{seed}" for seed in SEEDS]
            if split not in _NO_MEAN_COLUMN:
                names.append(f"{dataset}_{split}_acc_mean")
    return names


ACCURACY_COLUMNS: tuple[str, ...] = (
    *NB201_ID_COLUMNS,
    "unique_str",
    "n_seeds_200ep",
    *_accuracy_columns(),
    *(f"params_M_{d}" for d in PARAMS_DATASETS),
)


class AccuracyTable:
    """NB201 accuracies (percent) and parameter counts (millions), row i = index i.

    Datasets and splits: ``cifar10valid``/``valid``, ``cifar10``/``test`` (seed mean only), and
    ``cifar100``, ``imagenet16`` with ``valid``, ``test`` and ``oritest``. ``seed`` is 777, 888, 999
    or ``"mean"`` (over the seeds available; for ``oritest`` computed here, otherwise as published).
    """

    def __init__(
        self,
        source: str,
        accuracies: dict[tuple[str, str, Seed], np.ndarray],
        params: dict[str, np.ndarray],
        n_seeds: np.ndarray,
        unique_str: tuple[str, ...],
    ) -> None:
        self.source = source
        self._acc = accuracies
        self._params = params
        self.n_seeds = _frozen(n_seeds)
        self.unique_str = unique_str  # NATS-Bench get_unique_str per index

    def __len__(self) -> int:
        return len(self.n_seeds)

    def __repr__(self) -> str:
        return f"AccuracyTable({self.source!r}, {len(self)} archs)"

    @staticmethod
    def _key(dataset: str, split: str, seed: Seed) -> tuple[str, str, Seed]:
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
        if split not in DATASETS[dataset]:
            splits = ", ".join(DATASETS[dataset])
            raise ValueError(f"dataset {dataset} has no split {split!r}; it has: {splits}")
        allowed: list[Seed] = ["mean"] if (dataset, split) in _NO_SEEDS else [*SEEDS, "mean"]
        if isinstance(seed, bool) or seed not in allowed:
            raise ValueError(f"{dataset}/{split} has no seed {seed!r}; allowed: {', '.join(str(s) for s in allowed)}")
        return dataset, split, seed

    def column(self, dataset: str = "cifar100", split: str = "valid", seed: Seed = "mean") -> np.ndarray:
        """Accuracy (percent) of every index; nan where that seed was not run. Read-only."""
        return self._acc[self._key(dataset, split, seed)]

    def value(self, index: int, dataset: str = "cifar100", split: str = "valid", seed: Seed = "mean") -> float:
        return float(self.column(dataset, split, seed)[_check_index(index)])

    def seeds(self, index: int, dataset: str = "cifar100") -> list[int]:
        """The seeds with a per-seed accuracy for this index (empty for cifar10: only its mean exists)."""
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
        split = DATASETS[dataset][0]
        if (dataset, split) in _NO_SEEDS:
            return []
        i = _check_index(index)
        return [s for s in SEEDS if not np.isnan(self._acc[dataset, split, s][i])]

    def params_column(self, dataset: str = "cifar10") -> np.ndarray:
        """Parameters (millions) of every index; the classifier, hence the count, depends on the dataset."""
        name = "cifar10" if dataset == "cifar10valid" else dataset
        if name not in self._params:
            raise ValueError(f"no parameter counts for dataset {dataset!r}; known: {', '.join(DATASETS)}")
        return self._params[name]

    def params_m(self, index: int, dataset: str = "cifar10") -> float:
        return float(self.params_column(dataset)[_check_index(index)])


def load_accuracy(path: PathLike | None = None) -> AccuracyTable:
    """Load an NB201 accuracy CSV (the shipped one, cached, when ``path`` is None)."""
    if path is None:
        return accuracy()
    return _read_accuracy(path)


def _read_accuracy(path: PathLike | None) -> AccuracyTable:
    table = read_csv(path, ACCURACY_FILE, required=ACCURACY_COLUMNS, allowed=ACCURACY_COLUMNS)
    check_nb201_rows(table)
    n_seeds = table.floats("n_seeds_200ep", missing_ok=False, positive=True, maximum=len(SEEDS))
    bad = n_seeds != np.round(n_seeds)
    if bad.any():
        table.fail(int(np.argmax(bad)), "n_seeds_200ep must be a whole number")
    accuracies: dict[tuple[str, str, Seed], np.ndarray] = {}
    for dataset, splits in DATASETS.items():
        for split in splits:
            prefix = f"{dataset}_{split}_acc"
            per_seed: list[np.ndarray] = []
            if (dataset, split) not in _NO_SEEDS:
                per_seed = [table.floats(f"{prefix}_s{s}", maximum=100.0) for s in SEEDS]
                present = np.sum([~np.isnan(v) for v in per_seed], axis=0)
                bad = present != n_seeds
                if bad.any():
                    row = int(np.argmax(bad))
                    table.fail(row, f"{prefix}_s* has {present[row]} seeds but n_seeds_200ep says {n_seeds[row]:g}")
                for s, values in zip(SEEDS, per_seed, strict=True):
                    accuracies[dataset, split, s] = _frozen(values)
            if split in _NO_MEAN_COLUMN:
                mean = np.nanmean(np.stack(per_seed), axis=0)
            else:
                mean = table.floats(f"{prefix}_mean", missing_ok=False, maximum=100.0)
            accuracies[dataset, split, "mean"] = _frozen(mean)
    params = {d: _frozen(table.floats(f"params_M_{d}", missing_ok=False, positive=True)) for d in PARAMS_DATASETS}
    return AccuracyTable(
        source=table.file,
        accuracies=accuracies,
        params=params,
        n_seeds=n_seeds.astype(np.int64),
        unique_str=tuple(table.text("unique_str")),
    )


# -- latencies -------------------------------------------------------------------------------------
DEVICE_CLASSES = (
    "desktop_cpu",
    "desktop_gpu",
    "embedded_gpu",
    "embedded_tpu",
    "mobile_cpu",
    "mobile_dsp",
    "mobile_gpu",
)
PRECISIONS = ("fp32", "fp16", "int8")

# The paper's six devices, in the paper's order (Jetson Nano: the fp32 column matches its Table S4).
PAPER_DEVICES: tuple[str, ...] = (
    "desktop_cpu_core_i7_7820x_fp32",
    "desktop_gpu_gtx_1080ti_fp32",
    "embedded_gpu_jetson_nano_fp32",
    "embedded_tpu_edgetpu_int8",
    "mobile_gpu_snapdragon_675_adreno_612_int8",
    "mobile_dsp_snapdragon_855_hexagon_690_int8",
)

# Human names of the hardware behind the LatBench columns (keyed by the part between class and precision).
HARDWARE: dict[str, str] = {
    "core_i7_7820x": "Intel Core i7-7820X",
    "gtx_1080ti": "NVIDIA GeForce GTX 1080 Ti",
    "jetson_nano": "NVIDIA Jetson Nano",
    "edgetpu": "Google Coral Edge TPU",
    "snapdragon_450_cortex_a53": "Qualcomm Snapdragon 450, Cortex-A53 CPU",
    "snapdragon_675_kryo_460": "Qualcomm Snapdragon 675, Kryo 460 CPU",
    "snapdragon_855_kryo_485": "Qualcomm Snapdragon 855, Kryo 485 CPU",
    "snapdragon_675_hexagon_685": "Qualcomm Snapdragon 675, Hexagon 685 DSP",
    "snapdragon_855_hexagon_690": "Qualcomm Snapdragon 855, Hexagon 690 DSP",
    "snapdragon_450_adreno_506": "Qualcomm Snapdragon 450, Adreno 506 GPU",
    "snapdragon_675_adreno_612": "Qualcomm Snapdragon 675, Adreno 612 GPU",
    "snapdragon_855_adreno_640": "Qualcomm Snapdragon 855, Adreno 640 GPU",
}

RUNS_DESKTOP_EMBEDDED = 1000  # paper §6: 1000 runs on desktop/embedded devices, 10 on phones
RUNS_MOBILE = 10


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # e.g. desktop_gpu_gtx_1080ti_fp32
    column: str  # the CSV column: name + "_ms"
    device_class: str  # one of DEVICE_CLASSES
    hardware: str
    precision: str  # one of PRECISIONS
    in_paper: bool
    runs_default: int

    @classmethod
    def from_name(cls, name: str) -> DeviceInfo:
        """Describe a device from its LatBench name ``<class>_<hardware>_<precision>``."""
        parts = name.split("_")
        device_class, precision = "_".join(parts[:2]), parts[-1]
        if len(parts) < 4 or device_class not in DEVICE_CLASSES or precision not in PRECISIONS:
            raise ValueError(
                f"device name {name!r} must look like <class>_<hardware>_<precision> with class one of "
                f"{', '.join(DEVICE_CLASSES)} and precision one of {', '.join(PRECISIONS)}"
            )
        key = "_".join(parts[2:-1])
        return cls(
            name=name,
            column=f"{name}_ms",
            device_class=device_class,
            hardware=HARDWARE.get(key, key.replace("_", " ")),
            precision=precision,
            in_paper=name in PAPER_DEVICES,
            runs_default=RUNS_MOBILE if device_class.startswith("mobile") else RUNS_DESKTOP_EMBEDDED,
        )


class LatencyTable:
    """LatBench latencies (milliseconds) per device, row i = NB201 index i; nan where not measured."""

    def __init__(self, source: str, devices: Sequence[DeviceInfo], columns: dict[str, np.ndarray]) -> None:
        self.source = source
        self._devices = {d.name: d for d in devices}
        self._columns = columns

    def __repr__(self) -> str:
        return f"LatencyTable({self.source!r}, {len(self._devices)} devices)"

    def devices(self) -> list[DeviceInfo]:
        return list(self._devices.values())

    def device(self, name: str) -> DeviceInfo:
        key = name.removesuffix("_ms")
        if key not in self._devices:
            raise ValueError(f"unknown device {name!r}; known: {', '.join(self._devices)}")
        return self._devices[key]

    def column(self, device: str) -> np.ndarray:
        """Latency (ms) of every index on ``device``; nan where missing. Read-only."""
        return self._columns[self.device(device).name]

    def value(self, device: str, index: int) -> float | None:
        """Latency (ms) of one index, or None when LatBench has none (invalid cell, failed run)."""
        v = self.column(device)[_check_index(index)]
        return None if np.isnan(v) else float(v)


def load_latency(path: PathLike | None = None) -> LatencyTable:
    """Load a LatBench latency CSV (the shipped one, cached, when ``path`` is None)."""
    if path is None:
        return latency()
    return _read_latency(path)


def _read_latency(path: PathLike | None) -> LatencyTable:
    table = read_csv(path, LATENCY_FILE, required=NB201_ID_COLUMNS)
    devices: list[DeviceInfo] = []
    for name in table.header:
        if name in NB201_ID_COLUMNS:
            continue
        if not name.endswith("_ms"):
            table.fail_header(f"column {name!r} is not a latency column (<device>_ms)")
        try:
            devices.append(DeviceInfo.from_name(name.removesuffix("_ms")))
        except ValueError as exc:
            table.fail_header(f"column {name!r}: {exc}")
    if not devices:
        table.fail_header("no latency columns (<device>_ms)")
    check_nb201_rows(table)
    columns = {d.name: _frozen(table.floats(d.column, positive=True)) for d in devices}
    return LatencyTable(source=table.file, devices=devices, columns=columns)


# -- cached defaults -------------------------------------------------------------------------------
@cache
def accuracy() -> AccuracyTable:
    """The shipped NB201 accuracy table (loaded once)."""
    return _read_accuracy(None)


@cache
def latency() -> LatencyTable:
    """The shipped LatBench latency table (loaded once)."""
    return _read_latency(None)
