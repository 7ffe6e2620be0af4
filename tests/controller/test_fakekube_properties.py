"""Invariants of the fake API server's patch logic and versioning (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakekube import Store
from tests.fakekube.patch import merge_patch, strategic_merge_patch

keys = st.text(alphabet="abcde", min_size=1, max_size=2)
scalars = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans())
documents = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=4), max_leaves=12)
objects = st.dictionaries(keys, documents, max_size=4)


@given(objects)
def test_merge_patch_with_itself_is_identity(doc) -> None:
    assert merge_patch(doc, doc) == doc


@given(objects, objects)
def test_merge_patch_sets_every_key_it_names(target, patch) -> None:
    out = merge_patch(target, patch)
    for key, value in patch.items():
        if not isinstance(value, dict):
            assert out[key] == value
    for key in target:
        if key not in patch:
            assert out[key] == target[key]


@given(objects, objects)
def test_strategic_equals_merge_without_merge_keyed_lists(target, patch) -> None:
    assert strategic_merge_patch(target, patch) == merge_patch(target, patch)


@settings(max_examples=30)
@given(st.lists(st.sampled_from(["create", "update", "status", "delete"]), min_size=1, max_size=15))
def test_resource_versions_strictly_increase(ops) -> None:
    store = Store()
    rtype = store.find_type("apps", "v1", "deployments")
    seen = [0]
    exists = False
    for op in ops:
        if op == "create" and not exists:
            obj = store.create(rtype, "ns", {"metadata": {"name": "d"}, "spec": {"replicas": 1}})
            exists = True
        elif op == "update" and exists:
            obj = store.get(rtype, "ns", "d")
            obj["spec"]["replicas"] += 1
            obj = store.replace(rtype, "ns", "d", obj)
        elif op == "status" and exists:
            obj = store.get(rtype, "ns", "d")
            obj["status"]["observedGeneration"] = 9
            obj = store.replace(rtype, "ns", "d", obj, subresource="status")
        elif op == "delete" and exists:
            obj = store.delete(rtype, "ns", "d")
            exists = False
        else:
            continue
        rv = int(obj["metadata"]["resourceVersion"])
        assert rv > seen[-1]
        seen.append(rv)
    assert [e.rv for e in store.log] == sorted(e.rv for e in store.log)
