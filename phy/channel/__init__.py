"""phy/channel layer of sagin-hil (see docs/architecture.md)."""
