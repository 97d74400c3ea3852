"""The example app: orders over HTTP and message patterns, with live updates."""
