"""`python -m local --stage dev --cdk-out cdk.out`: see local/cli.py and docs/local-stack.md."""

from local.cli import main

raise SystemExit(main())
