"""The durable state (one SQLite file per stack), its two writers, and a running stack's state file."""
