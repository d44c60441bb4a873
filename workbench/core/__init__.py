"""What every side shares, in plain Python and NumPy: the network and training specs, presets, the quantizer
catalogue, shape arithmetic, the model summary, datasets and the model card.

May import: the standard library, NumPy and ``workbench.core``. Never torch, Streamlit or another room.
"""
