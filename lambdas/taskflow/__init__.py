"""Lambda code of the task backend: thin handlers over a domain package.

This folder (`lambdas/`) is the single Lambda asset; `taskflow` is its top-level package.
Dependencies point inward: handlers -> domain/repositories/clients -> domain.
"""
