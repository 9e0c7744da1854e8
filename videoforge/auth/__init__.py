"""Who is asking: bearer tokens (local or JWKS), browser sessions, passwords, local accounts."""
