import io

from twin_lib.hashing import combined_hash, content_uuid, sha256_bytes, sha256_json, sha256_stream


def test_content_uuid_is_stable_and_sensitive_to_every_part():
    first = content_uuid("Chunk", "doc-1", "0", "abc")
    assert first == content_uuid("Chunk", "doc-1", "0", "abc")
    assert first != content_uuid("Chunk", "doc-1", "1", "abc")
    assert content_uuid("a", "bc") != content_uuid("ab", "c")


def test_combined_hash_ignores_order_but_not_content():
    assert combined_hash(["a", "b", "c"]) == combined_hash(["c", "a", "b"])
    assert combined_hash(["a", "b"]) != combined_hash(["a", "b", "b"])


def test_json_hash_ignores_key_order():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})


def test_stream_hash_matches_bytes_hash():
    data = b"x" * (3 * 1024 * 1024 + 7)
    assert sha256_stream(io.BytesIO(data)) == sha256_bytes(data)
