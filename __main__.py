"""`python -m sagin_hil` is the `sagin-hil` command."""
from sagin_hil.cli import main

main()
