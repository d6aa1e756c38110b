"""The web layer: API machinery, pages, operations endpoints. Thin callers of the services."""
