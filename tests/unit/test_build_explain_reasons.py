"""Why a step missed the cache, compared with the closest record on the same parent."""
from __future__ import annotations

from lamina.build.cachekey import CacheKey, base_key, explain_miss, files_digest
from lamina.store.cache import CacheRecord

PARENT = base_key("scratch", "linux/amd64")


def record(key: CacheKey, files: dict[str, str] | None = None,
           step: str | None = None) -> CacheRecord:
    extra: dict = {"files": files or {}}
    if step is not None:
        extra["step"] = step
    return CacheRecord(key.digest, key.parts(), b"{}", (), None, extra)


def copy_key(files: dict[str, str], args=()) -> CacheKey:
    return CacheKey(PARENT, "Copy(. /app)", tuple(args), files_digest(files))


def test_the_old_instruction_is_named_as_written():
    old = record(CacheKey(PARENT, "Run(echo a)"), step="RUN echo a")
    other = record(CacheKey(PARENT, "Copy(x /x)"), step="COPY x /x")
    # The most similar instruction is the one named, not the newest.
    assert explain_miss(CacheKey(PARENT, "Run(echo b)"), {}, [other, old], "RUN echo b") == \
        "the instruction changed (was: RUN echo a)"


def test_an_instruction_written_the_same_but_expanded_otherwise():
    old = record(CacheKey(PARENT, "Copy($SRC=a /x)"), step="COPY $SRC /x")
    assert explain_miss(CacheKey(PARENT, "Copy($SRC=b /x)"), {}, [old], "COPY $SRC /x") == \
        "the instruction changed: its variables expand differently (COPY $SRC /x)"


def test_build_args_added_changed_and_removed_are_named():
    old = record(CacheKey(PARENT, "Run(x)", (("A", "1"), ("B", "1"), ("C", "1"))))
    new = CacheKey(PARENT, "Run(x)", (("A", "1"), ("B", "2"), ("D", "1")))
    assert explain_miss(new, {}, [old]) == "build args changed: B, C, D"


def test_files_changed_added_removed_with_a_few_names_and_the_count():
    old_files = {"src": "d755", **{f"src/{n}.py": f"f644:{n}" for n in range(10)}}
    new_files = dict(old_files)
    for n in range(5):
        new_files[f"src/{n}.py"] = "f644:new"
    del new_files["src/9.py"]
    new_files["src/new.py"] = "f644:x"
    assert explain_miss(copy_key(new_files), new_files, [record(copy_key(old_files),
                                                                old_files)]) == (
        "5 files changed: src/0.py, src/1.py, src/2.py (+2 more); 1 file added: src/new.py; "
        "1 file removed: src/9.py (of 10 files)")


def test_the_closest_record_explains_not_the_newest():
    a = {"a": "f644:1", "b": "f644:1", "c": "f644:1"}
    b = {**a, "a": "f644:2", "b": "f644:2"}        # the newest, two files away
    new = {**a, "c": "f644:3"}                      # one file away from a
    records = [record(copy_key(b), b), record(copy_key(a), a)]
    assert explain_miss(copy_key(new), new, records) == "1 file changed: c (of 3 files)"


def test_a_copy_from_another_stage_that_changed():
    old = record(CacheKey(PARENT, "Copy(--from=build)", (), files_digest({"from": "k1"})))
    new = CacheKey(PARENT, "Copy(--from=build)", (), files_digest({"from": "k2"}))
    assert explain_miss(new, {}, [old]) == "the stage or image it copies from changed"


def test_nothing_to_compare_with():
    assert explain_miss(CacheKey(PARENT, "Run(x)"), {}, []) is None
