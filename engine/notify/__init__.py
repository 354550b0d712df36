"""Notifications that reach people: e-mail and webhooks, durable deliveries, templates (docs/notifications.md)."""
