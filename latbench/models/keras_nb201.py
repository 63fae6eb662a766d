"""The NB201 network in Keras (channels-last), built from a cell graph.

Skeleton (as NAS-Bench-201 / NATS-Bench): stem Conv3x3(no bias) + BN; stages of ``cells_per_stage``
cells at ``channels``; between stages a ResNet basic block with stride 2 (ReLU-Conv3x3/2-BN,
ReLU-Conv3x3-BN, shortcut AvgPool2x2/2 + Conv1x1 without bias, summed); then BN + ReLU, global average
pooling and ``Dense(num_classes)``. :mod:`latbench.cost` counts the same network analytically.

The cell is built from a :class:`~latbench.graph.CellGraph`: every live op node applies its op to the
sum of its predecessors' outputs (node 0 is the cell input) and the output node is the sum of its
predecessors. Ops: ``nor_conv_kxk`` = ReLU-Conv(k, same, no bias)-BN; ``avg_pool_3x3`` = AvgPool 3x3
stride 1 SAME (TF excludes the padding from the average, like PyTorch's ``count_include_pad=False``);
``skip_connect`` = identity; ``none`` = zeros. A pruned cell (``nb201_cell``) has only conv and pool
nodes. An unpruned cell (``nb201_unpruned``) gives the full NB201 network with every trained op: its
"none" nodes become ``x * 0`` (a ``Rescaling(0)`` layer), so an op fed only by "none" still exists
and is applied to zeros, as in NB201's own network, and the trainable params equal NATS-Bench's.

BatchNorm moving statistics: a freshly initialised network's activations grow through the summed
branches of 15 cells (by orders of magnitude), which would overflow fp16 delegates and make int8
calibration meaningless. So by default the moving mean/variance are set from one forward pass of a
random batch (:func:`calibrate_batchnorm`); weights are then a plausible trained-like network. Timings
do not depend on values except through such overflows.

TensorFlow / Keras are imported inside the functions so ``import latbench`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from latbench.cost import CONV_KERNELS, POOL_LABELS, check_cell, check_skeleton
from latbench.graph import CellGraph

if TYPE_CHECKING:
    import keras

# PyTorch's BatchNorm2d defaults (NB201 trains with them); Keras defaults differ (1e-3, 0.99).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


class LayerFactory:
    """Creates the layers of one model with distinct, reproducible initialiser seeds."""

    def __init__(self, seed: int) -> None:
        import keras

        self.keras = keras
        self.seed = seed
        self.count = 0

    def _next_seed(self) -> int:
        self.count += 1
        return self.seed * 100_003 + self.count

    def conv(self, filters: int, kernel: int, name: str, strides: int = 1) -> Any:
        return self.keras.layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_initializer=self.keras.initializers.HeNormal(seed=self._next_seed()),
            name=name,
        )

    def bn(self, name: str) -> Any:
        return self.keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)

    def relu(self, name: str) -> Any:
        return self.keras.layers.ReLU(name=name)

    def relu_conv_bn(self, x: Any, filters: int, kernel: int, name: str, strides: int = 1) -> Any:
        x = self.relu(f"{name}_relu")(x)
        x = self.conv(filters, kernel, f"{name}_conv", strides)(x)
        return self.bn(f"{name}_bn")(x)

    def avg_pool3(self, name: str) -> Any:
        return self.keras.layers.AveragePooling2D(pool_size=3, strides=1, padding="same", name=name)

    def add(self, tensors: list[Any], name: str) -> Any:
        if len(tensors) == 1:
            return tensors[0]
        return self.keras.layers.Add(name=name)(tensors)

    def dense(self, units: int, name: str) -> Any:
        return self.keras.layers.Dense(
            units, kernel_initializer=self.keras.initializers.GlorotUniform(seed=self._next_seed()), name=name
        )

    # -- blocks -------------------------------------------------------------------------------------
    def stem(self, x: Any, filters: int) -> Any:
        x = self.conv(filters, 3, "stem_conv")(x)
        return self.bn("stem_bn")(x)

    def cell_op(self, label: str, x: Any, channels: int, name: str) -> Any:
        """One op node of a cell applied to ``x`` (``channels`` in and out, stride 1)."""
        if label in CONV_KERNELS:
            return self.relu_conv_bn(x, channels, CONV_KERNELS[label], name)
        if label in POOL_LABELS:
            return self.avg_pool3(name)(x)
        if label == "skip_connect":
            return x
        if label == "none":
            return self.keras.layers.Rescaling(0.0, name=name)(x)
        raise ValueError(f"unknown cell op {label!r} at {name}")

    def cell(self, cell: CellGraph, x: Any, channels: int, name: str) -> Any:
        outputs: dict[int, Any] = {0: x}
        for node in cell.op_nodes:
            label = cell.labels[node]
            assert label is not None
            preds = cell.preds(node)
            if not preds:  # cannot happen for nb201_cell / nb201_unpruned graphs
                raise ValueError(f"{name}: op node {node} ({label}) has no inputs")
            inp = self.add([outputs[p] for p in preds], f"{name}_n{node}_in")
            outputs[node] = self.cell_op(label, inp, channels, f"{name}_n{node}_{label}")
        preds = cell.preds(cell.output)
        return self.add([outputs[p] for p in preds], f"{name}_out")

    def reduction(self, x: Any, filters: int, name: str) -> Any:
        branch = self.relu_conv_bn(x, filters, 3, f"{name}_a", strides=2)
        branch = self.relu_conv_bn(branch, filters, 3, f"{name}_b")
        shortcut = self.keras.layers.AveragePooling2D(pool_size=2, strides=2, name=f"{name}_pool")(x)
        shortcut = self.conv(filters, 1, f"{name}_shortcut")(shortcut)
        return self.keras.layers.Add(name=f"{name}_add")([shortcut, branch])

    def head(self, x: Any, num_classes: int) -> Any:
        x = self.bn("head_bn")(x)
        x = self.relu("head_relu")(x)
        x = self.keras.layers.GlobalAveragePooling2D(name="head_gap")(x)
        return self.dense(num_classes, "head_dense")(x)


def build_nb201(
    cell: CellGraph,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    seed: int = 0,
    channels: tuple[int, ...] = (16, 32, 64),
    cells_per_stage: int = 5,
    calibrate: bool = True,
) -> keras.Model:
    """Build the NB201 network around ``cell`` (see the module docstring).

    Raises :class:`latbench.cost.InvalidCellError` for a cell whose output is unreachable. The same
    ``seed`` gives the same weights. ``calibrate`` sets BatchNorm moving statistics from a random batch.
    Call ``keras.backend.clear_session()`` between models in long-running processes.
    """
    check_cell(cell)
    h, w, _ = input_shape
    check_skeleton(min(h, w), channels, cells_per_stage, num_classes)
    if h != w:
        check_skeleton(max(h, w), channels, cells_per_stage, num_classes)
    import keras

    layers = LayerFactory(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.stem(inputs, channels[0])
    for stage, c in enumerate(channels):
        if stage > 0:
            x = layers.reduction(x, c, f"s{stage}_reduction")
        for index in range(cells_per_stage):
            x = layers.cell(cell, x, c, f"s{stage}_c{index}")
    outputs = layers.head(x, num_classes)
    model = keras.Model(inputs, outputs, name="nb201")
    if calibrate:
        calibrate_batchnorm(model, seed=seed)
    return model


def calibrate_batchnorm(model: keras.Model, seed: int = 0, batch: int = 8) -> None:
    """Set every BatchNorm's moving mean/variance to the statistics of one random batch.

    One forward pass in training mode with momentum 0 makes each BN's moving statistics exactly the
    batch statistics it normalised with, layer after layer, so inference on that batch reproduces the
    training-mode activations (normalised, no blow-up). Momentum is restored afterwards.
    """
    import keras
    import numpy as np

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    shape = tuple(int(d) for d in model.input_shape[1:])
    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype("float32")
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    try:
        model(x, training=True)
    finally:
        for bn, momentum in zip(bns, saved, strict=True):
            bn.momentum = momentum


def trainable_params(model: keras.Model) -> int:
    """Learnable parameters (what :func:`latbench.cost.network_cost` counts): no BN moving stats."""
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))
