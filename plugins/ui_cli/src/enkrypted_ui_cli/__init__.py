"""enkrypted-ui-cli: the terminal UI plugin (slot ``ui``)."""

__version__ = "0.1.0"
