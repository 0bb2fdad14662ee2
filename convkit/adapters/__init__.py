"""Real data in and out: audio files, images, text.

- :mod:`convkit.adapters.audio`: soundfile I/O, resampling, FIR filtering, Conv1d helper;
- :mod:`convkit.adapters.image`: Pillow I/O, per-channel filtering;
- :mod:`convkit.adapters.arrays`: ``.npy`` and Zarr arrays filtered out of core;
- :mod:`convkit.adapters.text`: tokens, vocabulary, one-hot and embedding encodings;
- :mod:`convkit.adapters.kernels`: named kernels (``gaussian:sigma=2``, ``lowpass:cutoff=1000``).
"""
