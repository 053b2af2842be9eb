"""`python -m uploader`: see uploader.cli."""

from .cli import main

raise SystemExit(main())
