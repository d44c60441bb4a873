"""Everything that needs torch: quantizers, layers, the model built from a spec, optimizers (Bop),
distillation, the training loop, checkpoints, evaluation, and packing a trained model into a ``PackedModel``.

May import: torch, ``workbench.core``, ``workbench.deploy`` (packing produces its data) and ``workbench.train``.
Never the run store, the CLI or Streamlit: training is a function of specs and data.
"""
