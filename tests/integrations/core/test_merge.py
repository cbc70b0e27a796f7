"""The three-way merge, field by field: the conflict matrix at its smallest."""

from integrations.core.merge import ASK, CONCORD, REMOTE, three_way

BASE = {"name": "Acme", "city": "Leeds", "terms": 30}


def merge(local, remote, policy=ASK, read_only=()):
    return three_way(
        base=BASE, local={**BASE, **local}, remote={**BASE, **remote}, policy=lambda _: policy, read_only=read_only
    )


def test_nothing_changed_is_a_noop():
    assert merge({}, {}).is_noop


def test_a_local_only_change_goes_to_the_remote_side():
    result = merge({"city": "York"}, {})
    assert result.to_remote == {"city": "York"} and not result.to_local and not result.conflicts


def test_a_remote_only_change_comes_to_concord():
    result = merge({}, {"city": "York"})
    assert result.to_local == {"city": "York"} and not result.to_remote and not result.conflicts


def test_changes_to_different_fields_merge_both_ways():
    result = merge({"city": "York"}, {"terms": 45})
    assert result.to_remote == {"city": "York"}
    assert result.to_local == {"terms": 45}
    assert result.agreed == {"name": "Acme", "city": "York", "terms": 45}


def test_the_same_change_on_both_sides_is_agreed_without_a_conflict():
    result = merge({"city": "York"}, {"city": "York"})
    assert result.is_noop and result.agreed["city"] == "York"


def test_different_changes_to_one_field_ask_a_person_by_default():
    result = merge({"city": "York"}, {"city": "Hull"})
    assert result.conflicts == ["city"]
    assert not result.to_local and not result.to_remote
    # The field keeps its base value until someone decides.
    assert result.agreed["city"] == "Leeds"


def test_concord_wins_when_the_field_policy_says_so():
    result = merge({"city": "York"}, {"city": "Hull"}, policy=CONCORD)
    assert result.to_remote == {"city": "York"} and not result.conflicts


def test_the_remote_side_wins_when_the_field_policy_says_so():
    result = merge({"city": "York"}, {"city": "Hull"}, policy=REMOTE)
    assert result.to_local == {"city": "Hull"} and not result.conflicts


def test_an_overlap_asks_only_for_the_overlapping_field():
    result = merge({"city": "York", "name": "Acme Ltd"}, {"city": "Hull"})
    assert result.conflicts == ["city"]
    assert result.to_remote == {"name": "Acme Ltd"}


def test_read_only_fields_are_taken_from_the_remote_side_and_never_merged():
    result = merge({"terms": 60}, {"terms": 45}, read_only=("terms",))
    assert result.is_noop and result.agreed["terms"] == 45


def test_without_a_base_every_difference_counts_as_a_change_on_both_sides():
    result = three_way(base={}, local={"city": "York"}, remote={"city": "Hull"}, policy=lambda _: ASK)
    assert result.conflicts == ["city"]
