"""Starlette integration: routes, parameter binding, event streams."""
