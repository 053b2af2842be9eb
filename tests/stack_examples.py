"""The worked example stack files (examples/stacks/): the tests' own fixtures for the program over every cloud.

stacks/ (Pulumi.yaml's stackConfigDir) is the user's and starts empty, so no test reads it; a test that needs
real-looking stack files reads these, or copies them into tmp_path, and passes the folder as --stacks-dir.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "stacks"


def example_stacks() -> list[Path]:
    """Every example stack file, sorted (one per cloud)."""
    return sorted(EXAMPLES.glob("Pulumi.*.yaml"))
