"""Examples that use only the framework's public API (not part of the ``framework`` package)."""
