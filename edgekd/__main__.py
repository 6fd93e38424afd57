"""`python -m edgekd` (and `torchrun -m edgekd`) runs the CLI."""

from edgekd.cli.app import main

main()
