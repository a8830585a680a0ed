"""Lambda's event source mappings (SQS queues, DynamoDB streams), their filters and results, and TTL."""
