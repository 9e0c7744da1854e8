"""Running the service: readiness checks, `videoforge doctor`, Prometheus metrics."""
