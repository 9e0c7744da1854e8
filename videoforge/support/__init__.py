"""Small building blocks with no domain in them, usable from any layer."""
