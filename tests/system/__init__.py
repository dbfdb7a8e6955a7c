"""ledgerd system tests: the real binary, spoken to over HTTP (see conftest.py)."""
