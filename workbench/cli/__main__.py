"""``python -m workbench.cli``: the same command as ``bnn-workbench`` (the worker processes start this way)."""

import sys

from workbench.cli.main import main

sys.exit(main())
