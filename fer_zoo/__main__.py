"""``python -m fer_zoo`` is ``fer-zoo``."""

from fer_zoo.cli import main

if __name__ == "__main__":
    main()
