"""``python -m gancore``: the command line."""

import sys

from gancore.cli import main

sys.exit(main())
