"""`python -m local.chaos`: see local/chaos/cli.py."""

from local.chaos.cli import main

raise SystemExit(main())
