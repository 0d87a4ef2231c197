"""enkrypted-p2p: the transport plugin (slot ``p2p``).

The plugin object is :mod:`enkrypted_p2p.plugin` (entry point ``p2p-webrtc``); other code reaches
it only through the shell's contracts.
"""

__all__ = ["__version__"]

__version__ = "0.2.0"
