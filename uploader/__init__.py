"""hr-connector uploader: validated, resumable, certificate-signed uploads to the Purview HR connector.

This package must never import Pulumi: it is what the container image runs.
"""

__version__ = "0.1.0"
