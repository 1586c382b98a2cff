"""`python -m gankit` runs the CLI."""

from .cli import main

main()
