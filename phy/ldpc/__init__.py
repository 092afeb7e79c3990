"""LDPC codes: 5G NR, DVB-S2 and any parity-check matrix; encoders and decoders."""
