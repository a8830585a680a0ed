"""API Gateway on 127.0.0.1: the HTTP API, the WebSocket API and what runs before their functions."""
