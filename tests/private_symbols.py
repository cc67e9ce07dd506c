"""The check each module that uses another package's private parts has: every symbol it names still exists."""

import importlib


def assert_each_exists(symbols: list[tuple[str, str]], switch: str) -> None:
    for module, path in symbols:
        value = importlib.import_module(module)
        for part in path.split("."):
            assert hasattr(value, part), f"{module}.{path} is gone: set {switch}=false and adapt the module"
            value = getattr(value, part)
