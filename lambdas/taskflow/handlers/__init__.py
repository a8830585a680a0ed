"""Lambda entry points: one module per function, each a thin adapter from its event to one
service call. Dependencies are built on the first invocation (taskflow.lazy.Lazy)."""
