"""``python -m dp``: the `dp` command."""

import sys

from dp.cli import main

sys.exit(main())
