"""`python -m bench`: the local stack's end-to-end throughput (bench/local_throughput.py)."""

import sys

from bench.local_throughput import main

sys.exit(main())
