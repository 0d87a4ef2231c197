"""enkrypted-ui-web: the chat in a browser, served on 127.0.0.1 from verified bytes (slot ``ui``).

The plugin object is :data:`enkrypted_ui_web.plugin.plugin` (entry point ``ui-web``);
``enkrypted --ui ui-web chat`` starts it (docs/webui.md).
"""

__all__ = ["__version__"]

__version__ = "0.2.0"
