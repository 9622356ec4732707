"""Floating-point operations of a network per sample, from its layer shapes (pure tf_keras).

Counted: multiply-adds of convolutions and dense layers, 2 FLOPs each (one multiply, one add):

- ``Conv2D``: ``2 * k_h * k_w * (c_in / groups) * c_out * H_out * W_out``;
- ``Dense``: ``2 * inputs * units`` (per position, for inputs of more than one axis).

Biases, activations, batch norm, pooling and dropout are left out: a few operations per
output element, far fewer than a convolution's, and bound by memory rather than arithmetic.
Training costs about 3x the forward pass: the backward pass computes the gradient with
respect to the layer's input and to its kernel, each a convolution (matrix product) the size
of the forward one. (The first layer needs no input gradient, so 3x overstates it slightly.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TRAINING_FACTOR = 3
_OTHER_CONVS = {"Conv1D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Conv1DTranspose",
                "Conv3DTranspose", "SeparableConv1D", "DepthwiseConv1D"}


@dataclass(frozen=True)
class LayerFlops:
    name: str
    kind: str  # "conv2d" | "dense"
    input_shape: tuple[int, ...]  # per sample (no batch axis)
    output_shape: tuple[int, ...]
    kernel: tuple[int, ...]  # (k_h, k_w, c_in / groups, c_out) or (inputs, units)
    forward: int  # FLOPs per sample


def conv2d_flops(kernel_hw: Sequence[int], c_in: int, c_out: int, out_hw: Sequence[int], groups: int = 1) -> int:
    """Forward FLOPs per sample of a 2-D convolution (channels-last output ``out_hw`` x ``c_out``)."""
    k_h, k_w = kernel_hw
    h_out, w_out = out_hw
    if c_in % groups:
        raise ValueError(f"conv2d_flops: c_in {c_in} is not a multiple of groups {groups}")
    return 2 * k_h * k_w * (c_in // groups) * c_out * h_out * w_out


def dense_flops(inputs: int, units: int, positions: int = 1) -> int:
    """Forward FLOPs per sample of a dense layer applied at ``positions`` positions."""
    return 2 * inputs * units * positions


def layer_flops(model) -> list[LayerFlops]:
    """Conv2D and Dense layers of a built tf_keras model (channels-last), in order; other
    convolution types (transposed, depthwise, 1-D, 3-D) are refused rather than miscounted."""
    import tf_keras as keras

    found = []
    for layer in model.layers:
        if (isinstance(layer, keras.layers.Conv2D) and type(layer) is not keras.layers.Conv2D) or (
            type(layer).__name__ in _OTHER_CONVS
        ):
            raise ValueError(f"layer {layer.name}: {type(layer).__name__} is not counted (Conv2D and Dense only)")
        if isinstance(layer, keras.layers.Conv2D):
            if layer.data_format != "channels_last":
                raise ValueError(f"layer {layer.name}: only channels_last convolutions are counted")
            inp, out = _shape(layer.input_shape), _shape(layer.output_shape)
            c_in, c_out = inp[-1], out[-1]
            groups = getattr(layer, "groups", 1)
            kernel = (*layer.kernel_size, c_in // groups, c_out)
            flops = conv2d_flops(layer.kernel_size, c_in, c_out, out[:2], groups)
            found.append(LayerFlops(layer.name, "conv2d", inp, out, kernel, flops))
        elif isinstance(layer, keras.layers.Dense):
            inp, out = _shape(layer.input_shape), _shape(layer.output_shape)
            positions = math.prod(inp[:-1]) if len(inp) > 1 else 1
            flops = dense_flops(inp[-1], layer.units, positions)
            found.append(LayerFlops(layer.name, "dense", inp, out, (inp[-1], layer.units), flops))
    return found


def forward_flops_per_sample(model) -> int:
    return sum(layer.forward for layer in layer_flops(model))


def training_flops_per_sample(model) -> int:
    """Forward + backward, ~3x the forward pass (module docstring)."""
    return TRAINING_FACTOR * forward_flops_per_sample(model)


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, list):  # a layer called once has one input
        if len(shape) != 1:
            raise ValueError(f"layer with {len(shape)} inputs: not counted")
        shape = shape[0]
    dims = tuple(shape[1:])
    if any(d is None for d in dims):
        raise ValueError(f"shape {tuple(shape)}: every axis but the batch must be known")
    return tuple(int(d) for d in dims)
