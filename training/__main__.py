"""`python -m training` is the `rasid` command."""

from training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
