from tests.console.town import client, redis_url, town  # noqa: F401  (fixtures)
