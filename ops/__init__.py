"""Operator tools for a deployed or local stage (redrive, migrate_keys). Run from the repository root.

They reuse the Lambda package's repositories (the same conditional transitions the API uses),
so `lambdas/` goes on the import path, as in app.py.
"""

import sys
from pathlib import Path

_LAMBDAS = str(Path(__file__).resolve().parent.parent / "lambdas")
if _LAMBDAS not in sys.path:
    sys.path.insert(0, _LAMBDAS)
