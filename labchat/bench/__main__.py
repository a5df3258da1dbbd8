"""`python -m labchat.bench`: the same as `labchat-bench`."""

import sys

from .cli import main

sys.exit(main())
