"""sagin-hil: hardware-in-the-loop SDR link emulator for space-air-ground image links."""

__version__ = "0.1.0"
