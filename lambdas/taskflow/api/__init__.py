"""The HTTP API: a Powertools APIGatewayHttpResolver over TaskService (see app.create_app)."""
