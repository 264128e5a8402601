"""``python -m ddic`` is the ``ddic`` command."""

import sys

from .cli.main import main

sys.exit(main())
