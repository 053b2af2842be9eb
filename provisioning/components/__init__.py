"""The Pulumi program's parts: one Azure concern per module, each a ComponentResource (or a dynamic provider
with its resource), composed by the repository's __main__.py."""
