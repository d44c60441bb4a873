"""Runs: the run store (SQLite + safetensors checkpoints), starting a run, the worker process that trains it,
and a run's trained model and packed model.

May import: ``workbench.core``, ``workbench.deploy``, ``workbench.train`` and ``workbench.runs``; never the CLI
or Streamlit. ``store`` and ``launch`` stay torch-free so that pages and commands read runs and start them
without loading the training stack.
"""
