"""Session-wide fixtures live in tests/fixtures/<area>.py, one module per area, registered here."""

pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.triton",
    "tests.fixtures.inpainter",
    "tests.fixtures.stack",
    "tests.fixtures.deploy",
]
