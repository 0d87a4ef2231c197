"""Test-only ui plugin of acme-vault-probe."""
