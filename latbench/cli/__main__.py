"""``python -m latbench.cli`` = ``eagle``."""

import sys

from latbench.cli import main

sys.exit(main())
