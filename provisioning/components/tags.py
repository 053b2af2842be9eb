"""Azure tags on every taggable resource: the stack's `tags` plus `managed-by: hr-connector`.

One stack transformation instead of a `tags=` argument in every component: any resource the program declares
now or later gets the tags if its azure-native arguments accept `tags` (the generated classes put every
argument in the properties they register, `tags` included, so its presence is the test). A tag the resource
already sets keeps its value. Only azure-native resources: azuread's `tags` are app-registration keywords and
docker-build's `tags` are image names, neither is an Azure tag.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

AZURE_NATIVE = "azure-native:"


def tag_transformation(tags: Mapping[str, str]) -> pulumi.ResourceTransformation:
    """A transformation adding `tags` to every azure-native resource that takes tags."""
    fixed = dict(tags)

    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not args.type_.startswith(AZURE_NATIVE) or "tags" not in args.props:
            return None
        own = args.props.get("tags")
        merged = pulumi.Output.from_input(own).apply(lambda o: {**fixed, **(o or {})}) if own else fixed
        return pulumi.ResourceTransformationResult({**args.props, "tags": merged}, args.opts)

    return transform


def apply_tags(tags: Mapping[str, str]) -> None:
    """Register the transformation for every resource declared after this call (call it first)."""
    pulumi.runtime.register_stack_transformation(tag_transformation(tags))
