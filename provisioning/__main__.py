"""`python -m provisioning COMMAND`: the operator tools (provisioning/tools/cli.py)."""

import sys

from provisioning.tools.cli import main

sys.exit(main())
