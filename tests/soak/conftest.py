"""The soak reuses the p2p tests' ``redis-server`` fixture (started on loopback, stopped by PID)."""

from tests.p2p.conftest import redis_server

__all__ = ["redis_server"]
