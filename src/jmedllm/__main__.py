"""`python -m jmedllm ...`: the same command as `jmedllm ...`."""

import sys

from jmedllm.cli import main

sys.exit(main())
