"""The HTTP server: JSON API, web console, health and metrics (engine.server.app builds it)."""
