"""`python -m app` is the `switchyard` command."""

import sys

from app.cli import main

sys.exit(main())
