"""The pure parts of the builder: stage plans, cache keys and why a step missed."""
from __future__ import annotations

import pytest

from lamina.build.cachekey import CacheKey, base_key, explain_miss, files_digest
from lamina.build.plan import plan_build, stage_ref
from lamina.dockerfile.stages import global_args, load_dockerfile
from lamina.errors import DockerfileError
from lamina.store.cache import CacheRecord

DOCKERFILE = """\
ARG BASE=busybox
FROM $BASE AS deps
RUN true
FROM deps AS build
COPY --from=tools /bin/x /x
FROM busybox AS tools
FROM busybox AS lonely
FROM build AS final
RUN --mount=type=bind,from=lonely,target=/l true
"""


def plan_of(text: str, target: str | None = None, args: dict | None = None):
    df = load_dockerfile(text)
    return plan_build(df, target, global_args(df, args or {}))


def test_only_the_stages_the_target_reaches_in_order():
    with pytest.raises(DockerfileError, match="needs to be defined before"):
        plan_of(DOCKERFILE)
    fixed = DOCKERFILE.replace("FROM busybox AS tools\n", "").replace(
        "FROM deps AS build", "FROM busybox AS tools\nFROM deps AS build")
    plan = plan_of(fixed)
    assert [p.stage.name for p in plan.stages] == ["deps", "tools", "build", "lonely", "final"]
    assert plan.stage(2).base_stage == 0 and plan.stage(2).needs == {1}
    assert [p.stage.name for p in plan_of(fixed, "build").stages] == ["deps", "tools", "build"]
    assert [p.stage.name for p in plan_of(fixed, "1").stages] == ["tools"]
    assert plan.stage(0).from_.base_name == "busybox"   # global ARGs applied
    assert plan_of(fixed, "deps", {"BASE": "alpine"}).stage(0).from_.base_name == "alpine"


def test_stage_refs_and_images():
    df = load_dockerfile("FROM busybox AS one\nFROM busybox AS Two\nFROM scratch\n")
    assert stage_ref(df, "one", df.stages[2]).index == 0
    assert stage_ref(df, "TWO", df.stages[2]).index == 1
    assert stage_ref(df, "1", df.stages[2]).index == 1
    assert stage_ref(df, "busybox:latest", df.stages[2]) is None
    with pytest.raises(DockerfileError, match="invalid stage index 7"):
        stage_ref(df, "7", None)
    with pytest.raises(DockerfileError, match="variable expansion is not supported"):
        plan_of("FROM busybox\nCOPY --from=$X /a /a\n")


def test_keys_change_with_each_part_and_only_then():
    key = CacheKey(base_key("scratch", "linux/amd64"), "RUN x", (("A", "1"),), None)
    same = CacheKey(base_key("scratch", "linux/amd64"), "RUN x", (("A", "1"),), None)
    assert key.digest == same.digest and key.digest.startswith("sha256:")
    variants = [CacheKey(base_key("scratch", "linux/arm64"), "RUN x", (("A", "1"),)),
                CacheKey(key.parent, "RUN y", (("A", "1"),)),
                CacheKey(key.parent, "RUN x", (("A", "2"),)),
                CacheKey(key.parent, "RUN x", (("A", "1"),), files_digest({"a": "f644:1"}))]
    assert len({key.digest, *(v.digest for v in variants)}) == 5
    assert files_digest({"a": "1", "b": "2"}) == files_digest({"b": "2", "a": "1"})


def record(key: CacheKey, files: dict[str, str] | None = None) -> CacheRecord:
    return CacheRecord(key.digest, key.parts(), b"{}", (), None, {"files": files or {}})


def test_a_miss_is_explained_against_the_records_on_the_same_parent():
    parent = base_key("scratch", "linux/amd64")
    old_files = {"app.py": "f644:1", "lib.py": "f644:2", "gone.py": "f644:3"}
    old = CacheKey(parent, "COPY . /app", (), files_digest(old_files))
    new_files = {"app.py": "f644:9", "lib.py": "f644:2", "new.py": "f644:4"}
    new = CacheKey(parent, "COPY . /app", (), files_digest(new_files))
    assert explain_miss(new, new_files, [record(old, old_files)]) == (
        "1 file changed: app.py; 1 file added: new.py; 1 file removed: gone.py (of 3 files)")
    args = CacheKey(parent, "RUN x", (("V", "2"),))
    assert explain_miss(args, {}, [record(CacheKey(parent, "RUN x", (("V", "1"),)))]) == \
        "build args changed: V"
    assert explain_miss(CacheKey(parent, "RUN other"), {}, [record(old)]) == \
        "the instruction changed"
    assert explain_miss(new, new_files, []) is None
