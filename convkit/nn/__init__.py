"""Layers that train: convolution on any backend, and the small set around it.

Layers hold NumPy parameters and work on NumPy arrays; each convolution runs on the
layer's ``backend`` (or the active selection), its gradients through
:func:`convkit.conv_vjp`. For torch autograd, call :func:`convkit.conv` on tensors.
"""

from convkit.nn.layers import (
    AvgPool,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvNd,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    Linear,
    MaxPool,
    ReLU,
    Sequential,
)
from convkit.nn.losses import CrossEntropyLoss, MSELoss
from convkit.nn.module import Module, Parameter
from convkit.nn.optim import SGD, Adam
from convkit.nn.train import fit

__all__ = [
    "SGD",
    "Adam",
    "AvgPool",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvNd",
    "CrossEntropyLoss",
    "Flatten",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "Linear",
    "MSELoss",
    "MaxPool",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "fit",
]
