"""``python -m fer_zoo`` is ``fer-zoo``."""

from fer_zoo.watchdog import start_orphan_watchdog

if __name__ == "__main__":
    start_orphan_watchdog()  # before torch and Lightning load: a rank whose launcher dies while importing ends too
    from fer_zoo.cli import main

    main()
