"""Run the CLI: ``python -m dedup``."""

import sys

from .cli import main

sys.exit(main())
