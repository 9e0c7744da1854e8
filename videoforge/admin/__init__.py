"""What admins do to keep the service healthy: steer jobs, reclaim storage, see who uses it."""
