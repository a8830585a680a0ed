"""What the embedded AWS served and what it would cost: requests by caller, DynamoDB capacity units."""
