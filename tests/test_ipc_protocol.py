"""Request checks of protocol v1 without sockets: every shape of bad input gets its code and message."""

from __future__ import annotations

import json

import pytest

from qwen_tray_client import protocol
from qwen_tray_client.protocol import Rejected, parse_request


def req(**fields) -> dict:
    base = {"v": 1, "id": "r1", "op": "generate", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def frames(obj, *blobs: bytes) -> list[bytes]:
    return [json.dumps(obj).encode() if not isinstance(obj, bytes) else obj, *blobs]


def reject(obj, *blobs: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        parse_request(frames(obj, *blobs))
    assert info.value.code in protocol.REJECT_CODES
    assert len(info.value.message) > 15  # a sentence a person can act on
    return info.value


def test_a_good_generate_parses() -> None:
    r = parse_request(frames(req(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "image", "blob": 0}, {"type": "text", "text": "What is"},
                                         {"type": "image", "blob": 1, "raw": {"width": 2, "height": 1,
                                                                             "mode": "BGRA"}},
                                         {"type": "text", "text": "this?"}]},
        ],
        options={"max_new_tokens": 5, "temperature": 0.5, "top_p": 1, "stop": ["\n\n"], "priority": "interactive"},
    ), b"png", b"12345678"))
    assert r.op == "generate" and r.id == "r1"
    sys_msg, user = r.messages
    assert sys_msg.role == "system" and sys_msg.text == "Be brief." and sys_msg.images == ()
    assert user.text == "What is\nthis?"
    assert [i.blob for i in user.images] == [0, 1]
    assert user.images[1].raw == protocol.RawSpec(2, 1, "BGRA") and user.images[1].raw.nbytes == 8
    assert r.options == protocol.Options(5, 0.5, 1.0, ("\n\n",), "interactive")
    forced = parse_request(frames(req(options={"max_new_tokens": 7, "min_new_tokens": 7})))
    assert (forced.options.max_new_tokens, forced.options.min_new_tokens) == (7, 7)


def test_defaults_and_other_ops() -> None:
    assert parse_request(frames(req())).options == protocol.Options()
    assert parse_request(frames({"v": 1, "id": "p", "op": "ping"})).op == "ping"
    assert parse_request(frames({"v": 1, "id": "s", "op": "status"})).op == "status"
    assert parse_request(frames({"v": 1, "id": "x", "op": "shutdown"})).op == "shutdown"
    c = parse_request(frames({"v": 1, "id": "c", "op": "cancel", "target": "r1"}))
    assert c.target == "r1"


@pytest.mark.parametrize("frame0, fragment", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"text"', "must be a JSON object"),
    (b"\xff\xfe{}", "UTF-8"),
    (b'{"v": 1, "id": "a", "op": "ping", "x": NaN}', "not strict JSON"),
    (b'{"v": 1, "id": "a", "op": "ping", "x": Infinity}', "not strict JSON"),
    (b'{"v": 1, "id": "a", "op": "ping", "x": -Infinity}', "not strict JSON"),
    (b'{"v": 1, "id": "a", "op": "ping", "x": 1e999}', "out of range"),
    (b'{"v": 1, "id": "a", "id": "b", "op": "ping"}', "appears twice"),
    (b'{"v": 1, "id": "a", "op": "ping", "x": "\\ud800"}', "surrogate"),
    (b'{"v": 1, "id": "a", "op": "ping", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "nested"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"v": 1, "id": "a", "op": "ping", "x": ' + b"1" * 5000 + b"}", "not JSON"),
    (b"", "not JSON"),
])
def test_frame0_must_be_a_strict_json_object(frame0: bytes, fragment: str) -> None:
    r = reject(frame0)
    assert r.code == "bad_request" and r.request_id is None
    assert fragment in r.message


@pytest.mark.parametrize("fields, code, fragment", [
    ({"v": ...}, "bad_request", '"v" must be the integer 1'),
    ({"v": "1"}, "bad_request", '"v" must be'),
    ({"v": 1.0}, "bad_request", '"v" must be'),
    ({"v": True}, "bad_request", '"v" must be'),
    ({"v": 2}, "unsupported_version", "version 2 is not supported"),
    ({"v": 0}, "unsupported_version", "version 0"),
    ({"op": ...}, "bad_request", '"op" must be a string'),
    ({"op": 3}, "bad_request", '"op" must be a string'),
    ({"op": "explode"}, "unknown_op", "unknown op 'explode'"),
    ({"extra": 1}, "bad_request", "unknown field for generate: extra"),
    ({"messages": ...}, "bad_request", '"messages" must be a non-empty list'),
    ({"messages": []}, "bad_request", "non-empty list"),
    ({"messages": "hi"}, "bad_request", "non-empty list"),
    ({"messages": ["hi"]}, "bad_request", "messages[0] must be an object"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "bad_request", "messages[0].role must be one of"),
    ({"messages": [{"role": "user"}]}, "bad_request", "messages[0].content must be"),
    ({"messages": [{"role": "user", "content": 5}]}, "bad_request", "messages[0].content must be"),
    ({"messages": [{"role": "user", "content": ""}]}, "bad_request", "messages[0] is empty"),
    ({"messages": [{"role": "user", "content": "  \n"}]}, "bad_request", "messages[0] is empty"),
    ({"messages": [{"role": "user", "content": []}]}, "bad_request", "messages[0] is empty"),
    ({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, "bad_request", "unknown fields: name"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, "bad_request",
     "last message must be the user's"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "bad_request", '.type must be "text"'),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "bad_request", '"type": "text"'),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "bad_request", '"type": "text"'),
    ({"messages": [{"role": "user", "content": ["hi"]}]}, "bad_request", "content[0] must be an object"),
    ({"options": []}, "bad_request", '"options" must be an object'),
    ({"options": {"max_tokens": 5}}, "bad_request", "unknown option max_tokens"),
    ({"options": {"max_new_tokens": 0}}, "bad_request", "options.max_new_tokens"),
    ({"options": {"max_new_tokens": 2.5}}, "bad_request", "options.max_new_tokens"),
    ({"options": {"max_new_tokens": True}}, "bad_request", "options.max_new_tokens"),
    ({"options": {"max_new_tokens": 10**7}}, "bad_request", "options.max_new_tokens"),
    ({"options": {"min_new_tokens": -1}}, "bad_request", "options.min_new_tokens"),
    ({"options": {"min_new_tokens": 1.5}}, "bad_request", "options.min_new_tokens"),
    ({"options": {"min_new_tokens": 10, "max_new_tokens": 5}}, "bad_request", "must not be more than"),
    ({"options": {"temperature": -0.1}}, "bad_request", "options.temperature"),
    ({"options": {"temperature": "hot"}}, "bad_request", "options.temperature"),
    ({"options": {"top_p": 0}}, "bad_request", "options.top_p"),
    ({"options": {"top_p": 1.5}}, "bad_request", "options.top_p"),
    ({"options": {"stop": "x"}}, "bad_request", "options.stop"),
    ({"options": {"stop": [""]}}, "bad_request", "options.stop"),
    ({"options": {"stop": ["x"] * 17}}, "bad_request", "options.stop"),
    ({"options": {"priority": "urgent"}}, "bad_request", "options.priority"),
])
def test_bad_fields_are_rejected_with_the_request_id(fields: dict, code: str, fragment: str) -> None:
    r = reject(req(**fields))
    assert (r.code, r.request_id) == (code, "r1")
    assert fragment in r.message


@pytest.mark.parametrize("rid", [..., "", "x" * 129, 5, None, ["a"]])
def test_a_missing_or_invalid_id_is_answered_with_a_null_id(rid) -> None:
    r = reject(req(id=rid))
    assert r.code == "bad_request" and r.request_id is None and '"id" must be' in r.message
    assert parse_request(frames(req(id="x" * 128))).id == "x" * 128


def test_blob_references_are_checked() -> None:
    def image_msg(*parts):
        return req(messages=[{"role": "user", "content": [*parts, {"type": "text", "text": "q"}]}])

    r = reject(image_msg({"type": "image", "blob": 1}), b"one")
    assert r.code == "bad_request" and "refers to blob 1, but there is 1 blob" in r.message
    r = reject(image_msg({"type": "image", "blob": 0}))
    assert "there are 0 blobs" in r.message
    assert "non-negative integer" in reject(image_msg({"type": "image", "blob": -1}), b"x").message
    assert "non-negative integer" in reject(image_msg({"type": "image", "blob": "0"}), b"x").message
    assert "non-negative integer" in reject(image_msg({"type": "image"}), b"x").message
    r = reject(image_msg({"type": "image", "blob": 0}), b"a", b"b")
    assert "blob 1 is not used" in r.message
    r = reject(image_msg({"type": "image", "blob": 0, "raw": {"width": 0, "height": 1, "mode": "RGB"}}), b"x")
    assert "at least 1" in r.message
    r = reject(image_msg({"type": "image", "blob": 0, "raw": {"width": 1, "height": 1, "mode": "RGBA"}}), b"x")
    assert 'raw.mode must be "RGB" or "BGRA"' in r.message
    r = reject(image_msg({"type": "image", "blob": 0, "raw": {"width": 1, "height": 1}}), b"x")
    assert "raw must be" in r.message
    r = reject(image_msg({"type": "image", "blob": 0, "url": "http://x"}), b"x")
    assert "unknown fields: url" in r.message
    # the same blob may be used twice
    assert len(parse_request(frames(image_msg({"type": "image", "blob": 0}, {"type": "image", "blob": 0}),
                                    b"x")).messages[0].images) == 2


def test_other_ops_take_no_blobs_and_cancel_needs_a_target() -> None:
    r = reject({"v": 1, "id": "p", "op": "ping"}, b"blob")
    assert r.code == "bad_request" and "takes no binary frames" in r.message
    r = reject({"v": 1, "id": "c", "op": "cancel"})
    assert r.code == "bad_request" and '"target"' in r.message
    r = reject({"v": 1, "id": "c", "op": "cancel", "target": ""})
    assert '"target"' in r.message
    r = reject({"v": 1, "id": "s", "op": "status", "verbose": True})
    assert "unknown field for status: verbose" in r.message
    r = reject({"v": 1, "id": "s", "op": "generate"})
    assert '"messages"' in r.message


def test_replies_are_strict_compact_json() -> None:
    frame = protocol.reply("r1", "token", text="é\n")
    assert json.loads(frame) == {"v": 1, "id": "r1", "event": "token", "text": "é\n"}
    assert "é".encode() in frame and b" " not in frame
    assert json.loads(protocol.rejected(None, "busy", "full")) == {
        "v": 1, "id": None, "event": "rejected", "code": "busy", "message": "full"}
    with pytest.raises(ValueError):
        protocol.reply("r", "done", x=float("nan"))
    assert json.loads(protocol.reply("r", "token", text="a\ud800b"))["text"] == "a?b"
