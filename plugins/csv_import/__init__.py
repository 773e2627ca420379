"""Self-service CSV import."""
