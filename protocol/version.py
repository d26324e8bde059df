"""The product version, defined once: the package, server, agent and installer read it here."""

__version__ = "0.1.0"
