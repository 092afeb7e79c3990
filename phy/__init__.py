"""phy layer of sagin-hil (see docs/architecture.md)."""
