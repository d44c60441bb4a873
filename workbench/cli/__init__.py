"""The ``bnn-workbench`` command: one module per subcommand, the only place argparse lives.

Each subcommand module has ``add_parser(commands)`` and ``run(args)``; the body of ``run`` is a thin call into
the library. Modules import the library inside ``run``, so ``--help`` and the torch-free commands start fast.
"""

from workbench.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
