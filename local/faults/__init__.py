"""Local-only fault injection for chaos runs: what the stack injects, and the hooks in the workers."""
