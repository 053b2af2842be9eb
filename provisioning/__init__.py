"""The Pulumi program's building blocks: config validation, one component per Azure concern, offline tools."""
