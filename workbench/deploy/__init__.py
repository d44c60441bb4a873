"""The packed model and everything that runs or ships it: ``PackedModel``, the ``.bnn`` file, the kernels
(``_xnor``, compiled from ext/), the engine and its memory and speed reports.

May import: NumPy, ``workbench.core`` and ``workbench.deploy``. Never torch: a device, a server or a user's
script runs a ``.bnn`` file with NumPy and the compiled kernels alone.
"""
