"""Use cases: one class per job, each called by one thin handler. No boto3 here either:
they work through the repositories and clients they are given."""
