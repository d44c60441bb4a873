"""Streamlit widgets and Plotly figures shared by the pages in ``pages/``.

May import: Streamlit, Plotly and every room of the library. Nothing in the library imports ``workbench.ui``.
"""
