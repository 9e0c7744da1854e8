"""Webhooks: endpoints users register, events written with the changes they report, deliveries."""
