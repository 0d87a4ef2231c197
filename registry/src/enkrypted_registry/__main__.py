"""``python -m enkrypted_registry``."""

import sys

from .cli import main

sys.exit(main())
