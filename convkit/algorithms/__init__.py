"""Convolution algorithms written once against the Python array API standard, for the
backends that want them: a backend passes its array namespace (``numpy``,
``array_api_compat.torch``, ...) and, optionally, its FFT module, and the same code runs
on its arrays and devices. They call nothing above them: no selection, no planning, no
registry.

- :mod:`~convkit.algorithms.direct`: ``convolve`` as one grouped ``conv``; a backend's
  ``conv`` as the algorithms call it;
- :mod:`~convkit.algorithms.fft`: ``convolve`` by FFT or overlap-add; ``conv`` with the
  channel sum per frequency;
- :mod:`~convkit.algorithms.vjp`: ``conv``'s gradients and adjoint from its forward;
- :mod:`~convkit.algorithms.integers`: integers through floating arithmetic, exactly.

Padding and its adjoint are :mod:`convkit.padding`.
"""
