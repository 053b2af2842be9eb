"""`python -m uploader`: see uploader.cli."""

from uploader.cli import main

raise SystemExit(main())
