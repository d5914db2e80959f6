"""Message types are told apart by number alone: two types sharing one would be handled as
each other (a daemon's OBJ_PIN taken for a REAP_QUERY)."""

from ownrun.engine.rpc import protocol as P

VALUE_KINDS = {"VALUE_INLINE", "VALUE_SHM", "VALUE_ERROR"}  # a separate numbering, inside messages


def test_every_message_type_has_its_own_number():
    types = {name: value for name, value in vars(P).items()
             if name.isupper() and isinstance(value, int) and name not in VALUE_KINDS | P.FIELDS}
    by_number: dict[int, list[str]] = {}
    for name, value in types.items():
        by_number.setdefault(value, []).append(name)
    shared = {number: names for number, names in by_number.items() if len(names) > 1}
    assert not shared, f"message types sharing a number: {shared}"


def test_a_push_task_header_holds_each_field_where_its_name_says():
    from ownrun.engine.ownership.task_manager import NORMAL, TaskEntry

    entry = TaskEntry(task_id=b"t" * 20, name="f", kind=NORMAL, fn_id="fn", fn_blob=b"code", arg_frames=[b"a"],
                      positions=[0], deps=[], nested=None, return_ids=[b"r" * 20, b"s" * 20], retries_left=0,
                      retry_exceptions=False, shape=(), resources={}, extra={"namespace": "x"})
    entry.dep_meta = [["meta"]]
    h = entry.header("ipc://owner", send_fn_blob=True)
    assert h[0] == P.PUSH_TASK and len(h) == P.PUSH_EXTRA + 1
    assert (h[P.PUSH_CALLER], h[P.PUSH_TASK_ID], h[P.PUSH_NAME], h[P.PUSH_KIND], h[P.PUSH_FN_ID]) == \
        ("ipc://owner", b"t" * 20, "f", NORMAL, "fn")
    assert (h[P.PUSH_FN_BLOB], h[P.PUSH_NUM_RETURNS], h[P.PUSH_NUM_ARG_FRAMES], h[P.PUSH_POSITIONS]) == \
        (b"code", 2, 1, [0])
    assert (h[P.PUSH_DEP_META], h[P.PUSH_ACTOR_ID], h[P.PUSH_EXTRA]) == ([["meta"]], None, {"namespace": "x"})
    assert entry.header("ipc://owner", send_fn_blob=False)[P.PUSH_FN_BLOB] is None
