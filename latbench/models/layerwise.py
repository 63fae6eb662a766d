"""Per-op (layer-wise) models: every op of an NB201 network built alone, for the layer-wise baseline.

The paper's layer-wise latency baseline predicts a network's latency as the sum of the latencies of its
operations timed one by one. The ops are those of :func:`latbench.cost.op_costs`: the stem (conv3x3 +
BN), every live conv / pool op of every cell of every stage, each reduction block (the whole ResNet
basic block, stride 2) and the head (BN + ReLU + global average pooling + dense). Identities, zeros
and the sums joining branches are not ops here. Each op becomes a tiny Keras model whose input has
the op's real shape in the network (batch 1 is what gets timed), built with the same layers as
:func:`latbench.models.keras_nb201.build_nb201`.

Deduplication: ops with the same (kind, input shape, stride) are the same computation, so by default
each such group is built once and carries a ``count`` (the baseline multiplies its latency by it);
``dedupe=False`` gives one model per op occurrence with ``count == 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from latbench.cost import HEAD, REDUCTION, STEM, OpCost, op_costs
from latbench.graph import CellGraph

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class OpSpec:
    """One distinct op of a network and how many times it occurs (no TensorFlow needed)."""

    name: str  # name of the first occurrence (see latbench.cost.op_costs)
    kind: str
    input_shape: tuple[int, int, int]
    stride: int
    output_shape: tuple[int, ...]
    count: int
    flops: int  # of one occurrence
    params: int  # of one occurrence
    names: tuple[str, ...]  # every occurrence

    @property
    def key(self) -> tuple[str, tuple[int, int, int], int]:
        return (self.kind, self.input_shape, self.stride)


@dataclass(frozen=True)
class OpModel:
    spec: OpSpec
    model: keras.Model

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.spec.input_shape

    @property
    def stride(self) -> int:
        return self.spec.stride

    @property
    def count(self) -> int:
        return self.spec.count


def op_specs(
    cell: CellGraph,
    num_classes: int = 10,
    input_hw: int = 32,
    channels: tuple[int, ...] = (16, 32, 64),
    cells_per_stage: int = 5,
    dedupe: bool = True,
) -> list[OpSpec]:
    """The ops of the network in first-occurrence order, grouped by (kind, input shape, stride)."""
    costs = op_costs(cell, num_classes, input_hw, channels, cells_per_stage)
    if not dedupe:
        return [_spec([c]) for c in costs]
    groups: dict[tuple[str, tuple[int, int, int], int], list[OpCost]] = {}
    for cost in costs:
        groups.setdefault((cost.kind, cost.input_shape, cost.stride), []).append(cost)
    return [_spec(group) for group in groups.values()]


def _spec(group: list[OpCost]) -> OpSpec:
    first = group[0]
    return OpSpec(
        name=first.name,
        kind=first.kind,
        input_shape=first.input_shape,
        stride=first.stride,
        output_shape=first.output_shape,
        count=len(group),
        flops=first.flops,
        params=first.params,
        names=tuple(c.name for c in group),
    )


def per_op_models(
    cell: CellGraph,
    num_classes: int = 10,
    input_hw: int = 32,
    channels: tuple[int, ...] = (16, 32, 64),
    cells_per_stage: int = 5,
    dedupe: bool = True,
    seed: int = 0,
) -> list[OpModel]:
    """Build a tiny Keras model for every op (or every distinct op, with a count) of the network.

    Raises :class:`latbench.cost.InvalidCellError` for an invalid cell, like the network builder.
    """
    specs = op_specs(cell, num_classes, input_hw, channels, cells_per_stage, dedupe)
    return [OpModel(spec, build_op_model(spec, seed=seed + k)) for k, spec in enumerate(specs)]


def build_op_model(spec: OpSpec, seed: int = 0) -> keras.Model:
    """The Keras model of one op: input of shape ``spec.input_shape``, the op's layers, nothing else."""
    import keras

    from latbench.models.keras_nb201 import LayerFactory, calibrate_batchnorm

    layers = LayerFactory(seed)
    inputs = keras.Input(shape=spec.input_shape, name="x")
    out_channels = spec.output_shape[-1]
    x: Any
    if spec.kind == STEM:
        x = layers.stem(inputs, out_channels)
    elif spec.kind == REDUCTION:
        x = layers.reduction(inputs, out_channels, "reduction")
    elif spec.kind == HEAD:
        x = layers.head(inputs, out_channels)
    else:
        x = layers.cell_op(spec.kind, inputs, out_channels, spec.kind)
    model = keras.Model(inputs, x, name=_model_name(spec))
    calibrate_batchnorm(model, seed=seed)
    return model


def _model_name(spec: OpSpec) -> str:
    h, w, c = spec.input_shape
    return f"{spec.kind}_{h}x{w}x{c}_s{spec.stride}"
