"""The operator tools behind `python -m provisioning` (new-stack, check, render, render-diff, matrix, fleet,
certs) and the offline harness that evaluates the real program under Pulumi's mocks."""
