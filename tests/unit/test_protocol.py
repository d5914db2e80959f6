"""Message types are told apart by number alone: two types sharing one would be handled as
each other (a daemon's OBJ_PIN taken for a REAP_QUERY)."""

from ownrun.engine.rpc import protocol as P

VALUE_KINDS = {"VALUE_INLINE", "VALUE_SHM", "VALUE_ERROR"}  # a separate numbering, inside messages


def test_every_message_type_has_its_own_number():
    types = {name: value for name, value in vars(P).items()
             if name.isupper() and isinstance(value, int) and name not in VALUE_KINDS}
    by_number: dict[int, list[str]] = {}
    for name, value in types.items():
        by_number.setdefault(value, []).append(name)
    shared = {number: names for number, names in by_number.items() if len(names) > 1}
    assert not shared, f"message types sharing a number: {shared}"
