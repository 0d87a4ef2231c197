"""enkrypted-ui-cli: the terminal UI plugin (slot ``ui``).

The plugin object is :data:`enkrypted_ui_cli.plugin.plugin` (entry point ``ui-cli``); other code
reaches it only through the shell's contracts.
"""

__all__ = ["__version__"]

__version__ = "0.2.0"
