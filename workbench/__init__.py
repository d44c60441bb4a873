"""BNN Workbench: design, train, inspect and ship binary neural networks.

The library works without Streamlit: spec -> model -> training -> run store -> packing -> engine -> reports.
"""

__version__ = "0.1.0"
