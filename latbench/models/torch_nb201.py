"""The NB201 network in PyTorch (channels-first), built from the same pruned cell graph as the Keras model.

Same skeleton and ops as :mod:`latbench.models.keras_nb201` (and so the same learnable parameter count
as :func:`latbench.cost.network_cost`): stem Conv3x3 (no bias) + BN; stages of ``cells_per_stage``
cells; a ResNet basic block with stride 2 between stages; BN + ReLU, global average pooling, Linear.
Every live op node applies its op to the sum of its predecessors' outputs; ``avg_pool_3x3`` excludes
the padding from the average (``count_include_pad=False``, as TensorFlow's SAME pooling does).

Padding of the stride-2 conv: PyTorch's NB201 pads 1 on every side; TensorFlow's SAME pads 0 before
and 1 after for a 3x3/2 conv on an even size. Both give the same output size and cost; ``tf_padding``
picks TensorFlow's, so that with :func:`load_keras_weights` the two frameworks compute the same
numbers (the tests check it). Module names are the Keras layer names, which is what the weight
transfer matches on.

Weights are seeded (He-normal convs, Glorot-uniform dense) and BatchNorm statistics are calibrated on
one random batch by default, for the same reason as the Keras builder: a fresh network's activations
grow through the summed branches and would overflow fp16.

``torch`` is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from latbench.cost import CONV_KERNELS, POOL_LABELS, check_cell, check_skeleton
from latbench.graph import CellGraph
from latbench.models.keras_nb201 import BN_EPSILON

if TYPE_CHECKING:
    import torch


def build_nb201_torch(
    cell: CellGraph,
    num_classes: int = 10,
    input_hw: int = 32,
    in_channels: int = 3,
    seed: int = 0,
    channels: tuple[int, ...] = (16, 32, 64),
    cells_per_stage: int = 5,
    calibrate: bool = True,
    tf_padding: bool = False,
) -> torch.nn.Module:
    """The NB201 network around ``cell`` as a ``torch.nn.Module`` in eval mode (input ``N x C x H x W``).

    Raises :class:`latbench.cost.InvalidCellError` for a cell whose output is unreachable.
    """
    import torch

    check_cell(cell)
    check_skeleton(input_hw, channels, cells_per_stage, num_classes)
    generator = torch.Generator().manual_seed(seed)
    net = _nb201_module(cell, num_classes, in_channels, channels, cells_per_stage, tf_padding)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu", generator=generator)
            elif isinstance(module, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(module.weight, generator=generator)
                torch.nn.init.zeros_(module.bias)
    if calibrate:
        calibrate_batchnorm(net, (in_channels, input_hw, input_hw), seed=seed)
    return net.eval()


def calibrate_batchnorm(net: torch.nn.Module, chw: tuple[int, int, int], seed: int = 0, batch: int = 8) -> None:
    """Set every BatchNorm's running mean/variance to the statistics of one random batch.

    In training mode each BN normalises with its batch's statistics, layer after layer; momentum 1
    makes the running statistics exactly those, so eval mode then reproduces the training-mode
    activations (normalised, no blow-up). Momenta are restored afterwards.
    """
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, *chw), generator=generator)
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 1.0
    net.train()
    try:
        with torch.no_grad():
            net(x)
    finally:
        for bn, momentum in zip(bns, saved, strict=True):
            bn.momentum = momentum
        net.eval()


def trainable_params_torch(net: torch.nn.Module) -> int:
    """Learnable parameters (what :func:`latbench.cost.network_cost` counts; no BN running stats)."""
    return int(sum(p.numel() for p in net.parameters() if p.requires_grad))


def load_keras_weights(net: torch.nn.Module, keras_model: Any) -> int:
    """Copy the weights of the Keras model of the same cell into ``net``; returns the tensors copied.

    Conv kernels go from ``(kh, kw, in, out)`` to ``(out, in, kh, kw)``, dense from ``(in, out)`` to
    ``(out, in)``; BatchNorm copies gamma, beta and the moving statistics. Every Keras layer with
    weights must have a module of the same name, and the reverse.
    """
    import numpy as np
    import torch

    layers: Any = getattr(net, "layers", None)
    if not isinstance(layers, torch.nn.ModuleDict):
        raise ValueError("net is not a network from build_nb201_torch (no layers table)")
    keras_layers = {layer.name: layer for layer in keras_model.layers if layer.weights}
    if set(keras_layers) != set(layers.keys()):
        only_keras = sorted(set(keras_layers) - set(layers.keys()))[:5]
        only_torch = sorted(set(layers.keys()) - set(keras_layers))[:5]
        raise ValueError(f"the models differ: only in Keras {only_keras}, only in PyTorch {only_torch}")
    copied = 0
    with torch.no_grad():
        for name, layer in keras_layers.items():
            module = layers[name]
            values = [np.asarray(w.numpy()) for w in layer.weights]
            if isinstance(module, torch.nn.Conv2d):
                module.weight.copy_(torch.from_numpy(values[0].transpose(3, 2, 0, 1).copy()))
            elif isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.from_numpy(values[0].T.copy()))
                module.bias.copy_(torch.from_numpy(values[1]))
            elif isinstance(module, torch.nn.BatchNorm2d):
                gamma, beta, mean, var = values  # Keras order: gamma, beta, moving_mean, moving_variance
                module.weight.copy_(torch.from_numpy(gamma))
                module.bias.copy_(torch.from_numpy(beta))
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.copy_(torch.from_numpy(mean))
                module.running_var.copy_(torch.from_numpy(var))
            else:
                raise ValueError(f"do not know how to copy weights into {name} ({type(module).__name__})")
            copied += len(values)
    return copied


def _nb201_module(
    cell: CellGraph,
    num_classes: int,
    in_channels: int,
    channels: tuple[int, ...],
    cells_per_stage: int,
    tf_padding: bool,
) -> torch.nn.Module:
    import torch
    import torch.nn.functional as F

    class NB201(torch.nn.Module):
        """Layers in ``self.layers`` under their Keras names; ``self.plan`` is the forward pass."""

        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleDict()
            self.plan: list[tuple[str, Any]] = []
            self.cell = cell
            self._tf_padding = tf_padding
            self._stem(channels[0])
            for stage, c in enumerate(channels):
                if stage > 0:
                    self._reduction(channels[stage - 1], c, f"s{stage}_reduction")
                for index in range(cells_per_stage):
                    self._cell(c, f"s{stage}_c{index}")
            self.layers["head_bn"] = torch.nn.BatchNorm2d(channels[-1], eps=BN_EPSILON)
            self.layers["head_dense"] = torch.nn.Linear(channels[-1], num_classes)
            self.plan.append(("head", None))

        # -- construction ---------------------------------------------------------------------
        def _conv(self, name: str, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
            padding = 0 if (stride == 2 and self._tf_padding) else k // 2
            self.layers[name] = torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False)

        def _bn(self, name: str, c: int) -> None:
            self.layers[name] = torch.nn.BatchNorm2d(c, eps=BN_EPSILON)

        def _stem(self, c: int) -> None:
            self._conv("stem_conv", in_channels, c, 3)
            self._bn("stem_bn", c)
            self.plan.append(("stem", None))

        def _relu_conv_bn(self, name: str, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
            self._conv(f"{name}_conv", c_in, c_out, k, stride)
            self._bn(f"{name}_bn", c_out)

        def _reduction(self, c_in: int, c: int, name: str) -> None:
            self._relu_conv_bn(f"{name}_a", c_in, c, 3, stride=2)
            self._relu_conv_bn(f"{name}_b", c, c, 3)
            self._conv(f"{name}_shortcut", c_in, c, 1)
            self.plan.append(("reduction", name))

        def _cell(self, c: int, name: str) -> None:
            for node in cell.op_nodes:
                label = cell.labels[node]
                if label in CONV_KERNELS:
                    self._relu_conv_bn(f"{name}_n{node}_{label}", c, c, CONV_KERNELS[label])
            self.plan.append(("cell", name))

        # -- forward --------------------------------------------------------------------------
        def _rcb(self, x: torch.Tensor, name: str) -> torch.Tensor:
            conv: Any = self.layers[f"{name}_conv"]
            x = F.relu(x)
            if conv.stride[0] == 2 and self._tf_padding:
                x = F.pad(x, (0, 1, 0, 1))  # TensorFlow SAME for 3x3/2 on an even size
            return self.layers[f"{name}_bn"](conv(x))

        def _forward_cell(self, x: torch.Tensor, name: str) -> torch.Tensor:
            outputs: dict[int, torch.Tensor] = {0: x}
            for node in self.cell.op_nodes:
                label = self.cell.labels[node]
                preds = self.cell.preds(node)
                inp = outputs[preds[0]]
                for p in preds[1:]:
                    inp = inp + outputs[p]
                if label in CONV_KERNELS:
                    outputs[node] = self._rcb(inp, f"{name}_n{node}_{label}")
                elif label in POOL_LABELS:
                    outputs[node] = F.avg_pool2d(inp, 3, stride=1, padding=1, count_include_pad=False)
                elif label == "skip_connect":
                    outputs[node] = inp
                elif label == "none":
                    outputs[node] = inp * 0.0
                else:
                    raise ValueError(f"unknown cell op {label!r} at {name}")
            preds = self.cell.preds(self.cell.output)
            out = outputs[preds[0]]
            for p in preds[1:]:
                out = out + outputs[p]
            return out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for kind, name in self.plan:
                if kind == "stem":
                    x = self.layers["stem_bn"](self.layers["stem_conv"](x))
                elif kind == "reduction":
                    branch = self._rcb(self._rcb(x, f"{name}_a"), f"{name}_b")
                    shortcut = self.layers[f"{name}_shortcut"](F.avg_pool2d(x, 2, stride=2))
                    x = shortcut + branch
                elif kind == "cell":
                    x = self._forward_cell(x, name)
                else:  # head
                    x = F.relu(self.layers["head_bn"](x))
                    x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
                    x = self.layers["head_dense"](x)
            return x

    return NB201()
