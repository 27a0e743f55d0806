"""`python -m mathtune` runs the command line."""

from mathtune.cli import main

main()
