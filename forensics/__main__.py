"""``python -m forensics`` (and ``torchrun ... -m forensics``): the command line."""

from forensics.app.cli import main

if __name__ == "__main__":
    main()
