"""Data access: TaskRepository and ConnectionRepository. With clients/, the only boto3 users."""
