"""players: the player club — cards, rated sessions, points, tiers and exclusion (docs/players.md)."""
