"""`python -m uploader`: see uploader.cli. The last catch (an interrupt or an error while starting, exceptions at
exit) is uploader.model.sink.run_main, which also keeps the streams from failing on a character their encoding
lacks; an interrupt while even that loads ends the run quietly with 130."""

try:
    from uploader.model.sink import run_main
except KeyboardInterrupt:
    raise SystemExit(130) from None

raise SystemExit(run_main("uploader.cli"))
