"""Fixtures of the agent's unit tests: an in-memory OS keyring for every test."""

from tests.memkeyring import MemoryKeyring, memory_keyring  # noqa: F401 - autouse fixture
