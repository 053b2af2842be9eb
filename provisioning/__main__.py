"""`python -m provisioning COMMAND`: the operator tools (provisioning/tools/cli.py). The last catch (an interrupt
or an error while starting, exceptions at exit) is uploader.model.sink.run_main, as for the uploader."""

try:
    from uploader.model.sink import run_main
except KeyboardInterrupt:
    raise SystemExit(130) from None

raise SystemExit(run_main("provisioning.tools.cli"))
