"""mkts: the application layer over `engine` (configuration, CLI, server)."""

__all__: list[str] = []
__version__ = "0.1.0"
