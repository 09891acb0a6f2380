"""Entry point of the serving image and of ``twin serve up``: ``python -m twin_lib.serving``."""

from twin_lib.serving.server import main

if __name__ == "__main__":
    main()
