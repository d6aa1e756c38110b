"""reports: see docs/architecture.md; its services arrive with their issue."""
