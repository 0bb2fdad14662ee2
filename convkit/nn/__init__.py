"""Layers that train: convolution on any backend, and the small set around it.

Layers hold NumPy parameters and work on NumPy arrays; each convolution runs on the
layer's ``backend`` (or the active selection), its gradients through
:func:`convkit.conv_vjp`. Names, ``repr``, state dicts and modes follow PyTorch;
:func:`fit`, :func:`evaluate`, :class:`History` and :class:`EarlyStopping` follow
Keras. :mod:`convkit.nn.torch` (imported on its own, it needs torch) has the same
convolutions as ``torch.nn.Module``\\ s inside torch autograd.
"""

from convkit.nn.callbacks import Callback, EarlyStopping, History
from convkit.nn.conv import Conv1d, Conv2d, Conv3d, Conv4d, ConvNd
from convkit.nn.layers import Dropout, Flatten, Linear, ReLU, Sequential
from convkit.nn.losses import CrossEntropyLoss, MSELoss
from convkit.nn.metrics import accuracy, mae, mse
from convkit.nn.module import Module
from convkit.nn.norm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from convkit.nn.optim import SGD, Adam
from convkit.nn.parameter import Parameter
from convkit.nn.pooling import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool
from convkit.nn.train import evaluate, fit, predict

__all__ = [
    "SGD",
    "Adam",
    "AvgPool",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "Callback",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "Conv4d",
    "ConvNd",
    "CrossEntropyLoss",
    "Dropout",
    "EarlyStopping",
    "Flatten",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "History",
    "Linear",
    "MSELoss",
    "MaxPool",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "accuracy",
    "evaluate",
    "fit",
    "mae",
    "mse",
    "predict",
]
