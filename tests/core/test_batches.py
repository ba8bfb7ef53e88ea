"""How many tasks a number of due timers or webhook escalations becomes."""

from gateway.tasks import batches


def sizes(n: int, size: int = 200) -> list[int]:
    return [len(b) for b in batches(list(range(n)), size)]


def test_a_straggler_rides_with_its_batch_instead_of_costing_a_task_of_its_own():
    assert sizes(250) == [250]
    assert sizes(1) == [1]


def test_more_than_one_and_a_half_batches_split_evenly():
    assert sizes(300) == [150, 150]
    assert sizes(2000) == [200] * 10
    assert sizes(2300) == [192] * 11 + [188]


def test_every_task_carries_between_half_and_one_and_a_half_batches():
    for n in range(100, 5000, 7):
        assert all(100 <= s <= 300 for s in sizes(n)), n


def test_every_item_goes_exactly_once_in_order():
    for n in (0, 1, 199, 200, 201, 299, 301, 1234):
        assert [x for b in batches(list(range(n)), 200) for x in b] == list(range(n))
