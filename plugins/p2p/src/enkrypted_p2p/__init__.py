"""enkrypted-p2p: the transport plugin (slot ``p2p``)."""

__version__ = "0.1.0"
