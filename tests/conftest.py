"""Every service a test needs is real and started here, on free ports, by the tests themselves.

Each plugin below is a module of fixtures, available to every test without an import. A module
comes after the ones it imports (pytest rewrites a plugin's asserts only if it imports it first).
"""

pytest_plugins = [
    "tests.fixtures.config",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
    "tests.fixtures.redis",
    "tests.fixtures.sqs",
    "tests.fixtures.jwks",
    "tests.storage_support",
    "tests.gallery_support",
    "tests.jobs_support",
    "tests.worker_support",
    "tests.webhook_support",
    "tests.browser_support",
]
