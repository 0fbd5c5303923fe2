"""`python -m l3prune`: the command line, as the workflow's jobs run it."""

import sys

from l3prune.cli import main

sys.exit(main())
