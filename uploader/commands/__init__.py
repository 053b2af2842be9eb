"""One module per subcommand (`python -m uploader COMMAND`), each thin: its options, one call into a stage, its
output and exit code. uploader/cli.py imports a command's module only when that command runs. No command module
imports another: what two commands share lives in the stage it belongs to (job/, send/, check/, model/)."""
