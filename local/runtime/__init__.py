"""The local Lambda service: functions as warm worker processes, their runtime, hot reload."""
