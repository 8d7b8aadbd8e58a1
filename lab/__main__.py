"""`python -m lab` is `lab`."""

import sys

from .cli import main

sys.exit(main())
