"""What the uploader and the Pulumi program share: the scenario catalogue, the connector mapping, globs,
certificates and the stack-file reader. Imports nothing from the uploader's stages (check, send, job, commands),
so provisioning can use it without them."""
