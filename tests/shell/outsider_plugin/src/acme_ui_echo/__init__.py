"""acme-ui-echo: a minimal third-party Enkrypted ``ui`` plugin."""

__version__ = "0.1.0"
