"""The names of placement group resources, in one place (Ray's scheme).

Reserving bundle i of group G (hex id) on a node adds, for each resource R of the bundle,
`R_group_i_G` (this bundle's) and `R_group_G` (any bundle of G on this node), plus
`bundle_group_i_G` / `bundle_group_G` (1000 units each: mark where the bundle is held, and
let a task that needs nothing else be tied to it). A task in a group asks for those names
instead of R: `in_group`. Pure functions.
"""

from __future__ import annotations


def bundle_resources(pg_hex: str, index: int, bundle: dict) -> dict:
    """What reserving bundle `index` of a group adds to its node: each resource under the
    bundle's name and the group's, and the `bundle` marker (Ray's scheme)."""
    added = {}
    for name, amount in bundle.items():
        if amount > 0:
            added[group_resource(name, pg_hex, index)] = float(amount)
            added[group_resource(name, pg_hex)] = float(amount)
    added[group_resource(BUNDLE, pg_hex, index)] = BUNDLE_UNITS
    added[group_resource(BUNDLE, pg_hex)] = BUNDLE_UNITS
    return added


def group_resource(name: str, pg_hex: str, index: int | None = None) -> str:
    """The resource a bundle's `name` becomes on its node (Ray's naming): `CPU_group_0_<hex>`
    for bundle 0, `CPU_group_<hex>` for any bundle of the group."""
    if index is None:
        return f"{name}_group_{pg_hex}"
    return f"{name}_group_{index}_{pg_hex}"


BUNDLE = "bundle"  # the resource every reserved bundle adds (1000 units): marks where it is held
BUNDLE_UNITS = 1000.0


def is_group_resource(name: str) -> bool:
    return "_group_" in name


def held_bundles(total: dict) -> set[tuple[str, int]]:
    """{(pg hex, bundle index)} a node holds, read from the total resources it reports."""
    held = set()
    prefix = f"{BUNDLE}_group_"
    for name, amount in total.items():
        if amount > 0 and name.startswith(prefix):  # (0: released, a lease still holds it)
            rest = name[len(prefix):].split("_", 1)
            if len(rest) == 2 and rest[0].isdigit():
                held.add((rest[1], int(rest[0])))
    return held


def base_resources(resources: dict) -> dict:
    """A node's resources without the placement groups' ones."""
    return {k: v for k, v in resources.items() if not is_group_resource(k)}


def in_group(resources: dict, pg_hex: str, index: int) -> dict:
    """A task's or actor's resources as it asks for them in bundle `index` of a group (-1:
    any bundle): each under the bundle's (and the group's) name, plus a sliver of the bundle
    marker so it runs where the bundle is even if it needs nothing else."""
    asked = {}
    for name, amount in resources.items():
        if amount > 0:
            asked[group_resource(name, pg_hex)] = amount
            if index >= 0:
                asked[group_resource(name, pg_hex, index)] = amount
    marker = group_resource(BUNDLE, pg_hex, index if index >= 0 else None)
    asked[marker] = 0.001
    return asked


def group_of(resources: dict) -> str | None:
    """The hex id of the group whose bundle a request asks for resources from, if any."""
    for name in resources:
        if "_group_" in name:
            return name.rsplit("_", 1)[1]
    return None
