"""``python -m forensics`` (and ``torchrun ... -m forensics``): the command line."""

from forensics.cli import main

if __name__ == "__main__":
    main()
