from tests.console.town import client, town  # noqa: F401  (fixtures)
