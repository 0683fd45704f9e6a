"""``python -m org_instance``: the org instance server (the container image's entry point)."""

import sys

from org_instance.server import main

sys.exit(main())
