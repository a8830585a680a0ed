"""The embedded AWS: moto in a supervised child process, patched, provisioned from the template."""

# What the stack (supervisor.py) may write to the emulator's stdin (server.py), one per line; the
# end of stdin stops the emulator.
CLOSE_RECEIVES = "close-receives"  # the stack is stopping: hand out no more SQS messages
