"""The task domain: model, statuses, allowed transitions, the processing step. No boto3 here."""
