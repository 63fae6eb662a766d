"""Analytic FLOPs and parameter counts of NB201 networks (no TensorFlow needed).

The network is the NAS-Bench-201 / NATS-Bench skeleton (``latbench.models.keras_nb201`` builds the same
thing): stem Conv3x3(in->C0, no bias) + BN; ``len(channels)`` stages of ``cells_per_stage`` cells;
between stages a ResNet basic block with stride 2 (ReLU-Conv3x3/2-BN, ReLU-Conv3x3-BN, shortcut
AvgPool2x2/2 + Conv1x1 without bias or BN); then BN + ReLU, global average pooling and a dense head.

Conventions:

* **FLOPs** are multiply-accumulates (MACs) of the convolution and dense layers at batch size 1: a
  KxK conv producing an HxWxC_out map from C_in channels costs ``H*W*K*K*C_in*C_out``; the dense head
  ``in*out`` (its bias add is not counted). BatchNorm, ReLU, pooling, the sums of cell/residual
  branches and the "none" zero op are **excluded**; they have no MACs. (NATS-Bench's own "flops" also
  counts some of these, so its numbers are slightly larger.)
* **Params** are the learnable parameters, as NATS-Bench counts them (PyTorch ``parameters()``): conv
  weights, BatchNorm gamma and beta (2 per channel), dense weight and bias. BatchNorm moving
  mean/variance are state, not parameters.

A cell is any :class:`~latbench.graph.CellGraph` over NB201 labels. Every live op node is costed:
in a pruned cell (``nb201_cell``) only the ops that survive pruning; in an unpruned cell
(``nb201_unpruned``) every conv, as NB201 trains them all ("none" and "skip_connect" nodes cost
nothing). Cell ops keep the channel count and spatial size of their stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from latbench.graph import INPUT, OUTPUT, CellGraph

# Labels of cell nodes that compute nothing: the zero op and the identity.
FREE_LABELS = frozenset({"none", "skip_connect"})
CONV_KERNELS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
POOL_LABELS = frozenset({"avg_pool_3x3"})

# Op kinds of :class:`OpCost` (cell ops use their NB201 label as kind).
STEM, REDUCTION, HEAD = "stem", "reduction", "head"


class InvalidCellError(ValueError):
    """A cell whose output cannot be reached from its input: no network can be built from it."""


@dataclass(frozen=True, slots=True)
class NetworkCost:
    flops: int  # MACs at batch 1 (see module docstring)
    params: int  # learnable parameters

    @property
    def flops_m(self) -> float:
        return self.flops / 1e6

    @property
    def params_m(self) -> float:
        return self.params / 1e6


@dataclass(frozen=True, slots=True)
class OpCost:
    """One operation of the network, built alone by the layer-wise baseline.

    ``input_shape`` is (H, W, C) without the batch axis; ``output_shape`` likewise ((classes,) for the
    head). ``stride`` is the op's spatial stride (2 for the reduction block, 1 otherwise).
    """

    name: str
    kind: str
    input_shape: tuple[int, int, int]
    flops: int
    params: int
    stride: int = 1
    output_shape: tuple[int, ...] = ()


def check_cell(cell: CellGraph) -> None:
    """Raise :class:`InvalidCellError` or ``ValueError`` if no NB201 network can be built from ``cell``."""
    if not cell.valid:
        raise InvalidCellError(
            "the cell's output is not reachable from its input (an invalid NB201 cell after pruning); "
            "no network can be built from it"
        )
    for node in cell.op_nodes:
        label = cell.labels[node]
        if label not in FREE_LABELS and label not in CONV_KERNELS and label not in POOL_LABELS:
            raise ValueError(
                f"cell node {node} has unknown op {label!r}; NB201 cells use none, "
                "skip_connect, nor_conv_1x1, nor_conv_3x3 and avg_pool_3x3"
            )
    if cell.labels[0] != INPUT or cell.labels[cell.output] != OUTPUT:
        raise ValueError(f"a cell must start with an {INPUT!r} node and end with an {OUTPUT!r} node")


def check_skeleton(input_hw: int, channels: tuple[int, ...], cells_per_stage: int, num_classes: int) -> None:
    if not channels or any(c <= 0 for c in channels):
        raise ValueError(f"channels must be a non-empty tuple of positive ints, got {channels!r}")
    if cells_per_stage < 0 or num_classes <= 0:
        raise ValueError(f"need cells_per_stage >= 0 and num_classes > 0, got {cells_per_stage} and {num_classes}")
    step = 2 ** (len(channels) - 1)
    # The shortcut's 2x2 pool floors odd sizes while the strided conv rounds up: they must agree.
    if input_hw <= 0 or input_hw % step:
        raise ValueError(f"input size must be a positive multiple of {step} for {len(channels)} stages, got {input_hw}")


def _bn(c: int) -> int:
    return 2 * c


def cell_op_costs(cell: CellGraph, hw: int, c: int, prefix: str = "") -> list[OpCost]:
    """Cost of each op node of one cell at spatial size ``hw`` with ``c`` channels (free ops left out)."""
    costs: list[OpCost] = []
    for node in cell.op_nodes:
        label = cell.labels[node]
        assert label is not None
        if label in CONV_KERNELS:
            k = CONV_KERNELS[label]
            flops, params = hw * hw * k * k * c * c, k * k * c * c + _bn(c)
        elif label in POOL_LABELS:
            flops, params = 0, 0
        else:  # none / skip_connect: no op to run
            continue
        shape = (hw, hw, c)
        costs.append(OpCost(f"{prefix}n{node}_{label}", label, shape, flops, params, output_shape=shape))
    return costs


def op_costs(
    cell: CellGraph,
    num_classes: int = 10,
    input_hw: int = 32,
    channels: tuple[int, ...] = (16, 32, 64),
    cells_per_stage: int = 5,
    in_channels: int = 3,
) -> list[OpCost]:
    """Every costed op of the network in execution order; their sums equal :func:`network_cost`.

    Names: ``stem``, ``s{stage}_c{cell}_n{node}_{op}``, ``s{stage}_reduction``, ``head``. The stem is
    conv3x3 + BN, a reduction block is the whole ResNet basic block, the head is BN + ReLU + global
    average pooling + dense.
    """
    check_cell(cell)
    check_skeleton(input_hw, channels, cells_per_stage, num_classes)
    c0 = channels[0]
    hw = input_hw
    stem_flops, stem_params = hw * hw * 9 * in_channels * c0, 9 * in_channels * c0 + _bn(c0)
    costs = [OpCost(STEM, STEM, (hw, hw, in_channels), stem_flops, stem_params, output_shape=(hw, hw, c0))]
    for stage, c in enumerate(channels):
        if stage > 0:
            c_in, out_hw = channels[stage - 1], hw // 2
            flops = out_hw * out_hw * (9 * c_in * c + 9 * c * c + c_in * c)
            params = 9 * c_in * c + _bn(c) + 9 * c * c + _bn(c) + c_in * c
            costs.append(
                OpCost(f"s{stage}_{REDUCTION}", REDUCTION, (hw, hw, c_in), flops, params, 2, (out_hw, out_hw, c))
            )
            hw = out_hw
        for index in range(cells_per_stage):
            costs.extend(cell_op_costs(cell, hw, c, prefix=f"s{stage}_c{index}_"))
    c_last = channels[-1]
    head_params = _bn(c_last) + c_last * num_classes + num_classes
    costs.append(OpCost(HEAD, HEAD, (hw, hw, c_last), c_last * num_classes, head_params, output_shape=(num_classes,)))
    return costs


def network_cost(
    cell: CellGraph,
    num_classes: int = 10,
    input_hw: int = 32,
    channels: tuple[int, ...] = (16, 32, 64),
    cells_per_stage: int = 5,
    in_channels: int = 3,
) -> NetworkCost:
    """FLOPs (MACs) and learnable params of the NB201 network built from ``cell``.

    Raises :class:`InvalidCellError` for a cell whose output is unreachable (pruned invalid cells).
    """
    costs = op_costs(cell, num_classes, input_hw, channels, cells_per_stage, in_channels)
    return NetworkCost(flops=sum(c.flops for c in costs), params=sum(c.params for c in costs))
