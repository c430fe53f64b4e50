pytest_plugins = [
    "tests.fixtures.dockerd",
    "tests.fixtures.kafka",
    "tests.fixtures.mariadb",
    "tests.fixtures.browser",
    "tests.fixtures.prometheus",
]
