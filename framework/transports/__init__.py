"""Transports: ``base`` is the public contract; one module per transport."""
