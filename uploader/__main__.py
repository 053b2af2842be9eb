"""`python -m uploader`: see uploader.cli."""

from uploader.cli import main
from uploader.model.portable import tolerant_streams

tolerant_streams()
raise SystemExit(main())
