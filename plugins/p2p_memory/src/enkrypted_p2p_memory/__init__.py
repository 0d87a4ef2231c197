"""enkrypted-p2p-memory: the in-process transport plugin (slot ``p2p``, contract 2.0).

Endpoints meet on a process-wide switchboard instead of a broker, and links are bounded memory
pipes: for tests, plugin authors and the offline demo.  The plugin object is
:mod:`enkrypted_p2p_memory.plugin` (entry point ``p2p-memory``).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
