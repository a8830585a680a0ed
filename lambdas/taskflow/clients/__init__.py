"""Thin wrappers over boto3 clients (SQS, API Gateway Management API): created lazily, injectable,
and translating botocore errors into taskflow errors."""
