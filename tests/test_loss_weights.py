"""How much each training example weighs in the loss: rare labels count more, within a task or within a target."""

import pytest

from serving.bundle import TaskSpec
from training.features import MIN_TARGET_ROWS, loss_weights, repeat_examples

STANCE = TaskSpec(name="stance", labels=("Against", "Favor", "None"), input="pair")
TOPIC = TaskSpec(name="topic", labels=("a", "b"), input="single")


def columns(examples):
    """(task id, target, label id) triples as build_examples' columns."""
    task_ids, targets, labels = zip(*examples) if examples else ((), (), ())
    return {"task_ids": list(task_ids), "target": list(targets), "labels": list(labels)}


# target "vaccine": Against common; target "digital": Against rare (as in Mawqif); both large enough to count alone
VACCINE = [(0, "vaccine", 0)] * 100 + [(0, "vaccine", 1)] * 100
DIGITAL = [(0, "digital", 0)] * 20 + [(0, "digital", 1)] * 180


def weights_by_example(weigh, examples):
    return dict(zip(examples, weigh(columns(examples))))


def test_rare_labels_weigh_more_and_the_mean_weight_stays_one():
    train = columns([(1, None, 0)] * 90 + [(1, None, 1)] * 10)
    weights = loss_weights(train, [STANCE, TOPIC], power=1.0)(train)
    assert weights[0] == pytest.approx(100 / (2 * 90)) and weights[-1] == pytest.approx(100 / (2 * 10))
    assert sum(weights) / len(weights) == pytest.approx(1.0)
    assert set(loss_weights(train, [STANCE, TOPIC], power=0.0)(train)) == {1.0}


def test_by_target_a_label_rare_toward_one_target_weighs_more_there_than_where_it_is_common():
    train = columns(VACCINE + DIGITAL)
    by_task = weights_by_example(loss_weights(train, [STANCE], power=1.0), VACCINE + DIGITAL)
    assert by_task[(0, "digital", 0)] == by_task[(0, "vaccine", 0)]
    by_target = weights_by_example(loss_weights(train, [STANCE], power=1.0, by_target=True), VACCINE + DIGITAL)
    assert by_target[(0, "digital", 0)] == pytest.approx(200 / (3 * 20) / (2 * 200 / 3 / 200))
    assert by_target[(0, "digital", 0)] > by_task[(0, "digital", 0)] > by_target[(0, "vaccine", 0)]
    assert by_target[(0, "vaccine", 0)] == by_target[(0, "vaccine", 1)]  # balanced already


def test_a_target_with_few_examples_and_an_unseen_target_are_weighted_by_the_task():
    small = [(0, "rare claim", 0)] * 3
    assert len(small) < MIN_TARGET_ROWS
    train = columns(VACCINE + DIGITAL + small)
    by_task = loss_weights(train, [STANCE], power=0.5)
    by_target = loss_weights(train, [STANCE], power=0.5, by_target=True)
    val = columns([(0, "unseen claim", 0), (0, "rare claim", 0)])
    assert by_target(val) == pytest.approx(by_task(val))
    assert by_target(val)[0] == pytest.approx(by_target(val)[1])


def test_a_task_can_have_its_own_power_while_the_others_keep_the_common_one():
    skewed_stance, skewed_topic = (
        [(0, "vaccine", 1)] * 90 + [(0, "vaccine", 2)] * 10,
        [(1, None, 0)] * 90 + [(1, None, 1)] * 10,
    )
    train = columns(skewed_stance + skewed_topic)
    weights = weights_by_example(
        loss_weights(train, [STANCE, TOPIC], power=1.0, task_powers={"stance": 0.0}), skewed_stance + skewed_topic
    )
    assert weights[(0, "vaccine", 1)] == weights[(0, "vaccine", 2)] == pytest.approx(1.0)  # stance: unweighted
    assert weights[(1, None, 1)] == pytest.approx(100 / (2 * 10))  # topic: fully balanced, as --class-weight-power


def test_per_task_options_are_read_as_task_equals_number_pairs():
    from serving.errors import RasidError
    from training.train import task_values

    assert task_values("stance=0, topic=1", "--x", "stance=0") == {"stance": 0.0, "topic": 1.0}
    assert task_values("", "--x", "stance=0") == {}
    for bad in ("stance", "stance=high", "=0", "stance=0,stance=1"):
        with pytest.raises(RasidError, match="--task-repeat.*(TASK=NUMBER|names no task|twice)"):
            task_values(bad, "--task-repeat", "stance=2")


def test_sampling_by_task_repeats_one_tasks_examples_and_keeps_the_others_once():
    examples = [(0, "vaccine", 0)] * 10 + [(1, None, 1)] * 30
    train = columns(examples)
    train["weight"] = [0.5] * 10 + [1.0] * 30
    twice = repeat_examples(train, [STANCE, TOPIC], {"stance": 2.0}, seed=13)
    assert twice["task_ids"].count(0) == 20 and twice["task_ids"].count(1) == 30
    assert all(w == 0.5 for t, w in zip(twice["task_ids"], twice["weight"]) if t == 0)  # weights travel along


def test_a_fractional_repeat_takes_a_seeded_share_of_the_tasks_examples():
    train = columns([(0, "vaccine", k % 3) for k in range(100)] + [(1, None, 0)] * 10)
    train["text"] = [f"row {k}" for k in range(110)]
    half = repeat_examples(train, [STANCE, TOPIC], {"stance": 0.5, "topic": 1.5}, seed=13)
    assert half["task_ids"].count(0) == 50 and half["task_ids"].count(1) == 15
    assert half == repeat_examples(train, [STANCE, TOPIC], {"stance": 0.5, "topic": 1.5}, seed=13)
    assert half != repeat_examples(train, [STANCE, TOPIC], {"stance": 0.5, "topic": 1.5}, seed=14)


def test_a_small_share_of_a_tiny_task_still_keeps_one_example():
    train = columns([(0, "vaccine", 0), (1, None, 0), (1, None, 1)])
    assert repeat_examples(train, [STANCE, TOPIC], {"stance": 0.1}, seed=13)["task_ids"].count(0) == 1
