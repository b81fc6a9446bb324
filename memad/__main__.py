"""``python -m memad`` (and ``torchrun -m memad``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
