"""Test-only p2p plugin of acme-vault-probe."""
