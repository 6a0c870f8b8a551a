"""The facts world's generators: one answer per question, unseen names and forms disjoint from
training's, negatives without an answer."""

from __future__ import annotations

import pytest

from services.qa.world import facts, facts_unseen, names

pytestmark = pytest.mark.unit


def test_every_item_has_exactly_one_whole_word_answer_in_its_context() -> None:
    for item in facts.qa_items(3, 300) + facts_unseen.unseen_items(count=200):
        assert item.answer and facts.occurrences(item.context, item.answer) == 1, item
        assert item.context[item.answer_start:item.answer_start + len(item.answer)] == item.answer


def test_the_unseen_generator_shares_no_sentence_or_question_form_with_training() -> None:
    def forms(kinds: dict[str, facts.Kind]) -> set[str]:
        out: set[str] = set()
        for kind in kinds.values():
            for template in (*kind.says, *(q for ask in kind.asks for q in ask.forms)):
                # every wording a template can take
                pending = [template]
                while pending:
                    t = pending.pop()
                    m = facts.ALTERNATIVES.search(t)
                    if m is None:
                        out.add(t)
                    else:
                        pending += [t[:m.start()] + alt + t[m.end():] for alt in m.group(1).split("|")]
        return out

    assert not forms(facts.KINDS) & forms(facts_unseen.KINDS)


def test_unseen_names_can_never_be_training_names() -> None:
    import random

    rng = random.Random(0)
    train = [names.word(rng) for _ in range(2000)] + [names.city(rng) for _ in range(500)]
    unseen = [names.word(rng, names.UNSEEN) for _ in range(2000)] + [names.city(rng, names.UNSEEN)
                                                                    for _ in range(500)]
    assert not any(w.split()[-1][:2].lower() in names.CLUSTERS for w in train)
    assert all(w.split()[-1][:2].lower() in names.CLUSTERS for w in unseen)


def test_unanswerable_items_do_not_hold_their_answer() -> None:
    for item in facts.unanswerable_items(7, 100):
        assert item.answer == "" and item.kind == "none"


def test_training_never_asks_a_held_out_question_form() -> None:
    held_out = facts_unseen.question_pattern()
    asked = [it.question for it in facts.qa_items(11, 3000)]
    assert not [q for q in asked if held_out.fullmatch(q)]
    assert all(held_out.fullmatch(it.question) for it in facts_unseen.unseen_items(count=200))
