"""An emulated ADALM-Pluto speaking the iiod network protocol."""
