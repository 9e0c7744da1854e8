"""HTTP layer: routes, handlers, request schemas, middlewares, templates and static files."""
