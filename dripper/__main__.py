"""Lets `python -m dripper` behave like the `dripper` console script."""

from dripper.cli import main

main()
