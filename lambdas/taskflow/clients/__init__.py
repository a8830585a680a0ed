"""Thin wrappers over boto3 clients (SQS, API Gateway Management API), created lazily, injectable,
and translating botocore errors into taskflow errors; and the one HTTP client, for a token issuer's
signing keys (oidc_keys, the $connect authorizer's only)."""
