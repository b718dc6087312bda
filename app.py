"""Command line for the audio similarity search service: ``python app.py --help``.

The commands live in the ``cli`` package (``cli/main.py`` is the parser).
"""

from cli.main import main

if __name__ == "__main__":
    main()
