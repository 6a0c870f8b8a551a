"""Pronounceable made-up names: people, places, countries and things no vocabulary holds.

The tokenizer spells such words in pieces, so a QA model trained on them learns to copy
spans of several pieces, not only whole-vocabulary words. Two disjoint inventories:

* ``TRAIN``: every name starts with a vowel or a single consonant (``Tolami``, ``Esvaren``);
* ``UNSEEN``: every name starts with a two-consonant cluster (``Brellon``, ``Kwathe``), so no
  name of the held-out generator (``facts_unseen``) can ever occur in training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ei", "ou", "ia")
SINGLE_ONSETS = tuple("bdfghjklmnprstvwyz") + ("", "")
INNER_ONSETS = tuple(o for o in SINGLE_ONSETS if o)
CODAS = ("", "", "", "", "n", "r", "l", "s", "m", "nd", "rt", "th", "x", "k")
CLUSTERS = ("br", "dr", "fr", "gr", "kr", "pr", "tr", "bl", "cl", "fl", "gl", "pl", "sl", "st", "sk", "sp", "sw",
            "kw", "qu", "zh", "ch", "sh", "th", "vr", "sn")


@dataclass(frozen=True)
class Inventory:
    first_onsets: tuple[str, ...]
    country_suffixes: tuple[str, ...]
    city_suffixes: tuple[str, ...]
    thing_suffixes: tuple[str, ...]


TRAIN = Inventory(SINGLE_ONSETS, ("ia", "land", "ania", "stan", "ary", "or", "ica"),
                  ("", "", "", "burg", "ton", "a", "os", "ville", "ham", "port"),
                  ("", "", "ex", "on", "ar", "ite", "o"))
UNSEEN = Inventory(CLUSTERS, ("ovia", "esh", "ador", "enia", "istan", "ona"),
                   ("", "", "", "holm", "grad", "field", "ento", "wick"),
                   ("", "", "ine", "ium", "el"))


def _syllable(rng: random.Random, onsets: tuple[str, ...]) -> str:
    return rng.choice(onsets) + rng.choice(VOWELS) + rng.choice(CODAS)


def word(rng: random.Random, inventory: Inventory = TRAIN, syllables: tuple[int, int] = (2, 3)) -> str:
    """A capitalised made-up word whose first onset comes from ``inventory``."""
    while True:
        parts = [_syllable(rng, inventory.first_onsets)]
        parts += [_syllable(rng, INNER_ONSETS) for _ in range(rng.randint(*syllables) - 1)]
        text = "".join(parts)
        if 3 <= len(text) <= 8 and (inventory is UNSEEN or text[:2] not in CLUSTERS):
            return text.capitalize()


def person(rng: random.Random, inventory: Inventory = TRAIN) -> str:
    first = word(rng, inventory)
    return f"{first} {word(rng, inventory)}" if rng.random() < 0.3 else first


def city(rng: random.Random, inventory: Inventory = TRAIN) -> str:
    name = word(rng, inventory, (1, 2)) + rng.choice(inventory.city_suffixes)
    return f"{rng.choice(('Port', 'San', 'New', 'Lake'))} {name}" if rng.random() < 0.1 else name


def country(rng: random.Random, inventory: Inventory = TRAIN) -> str:
    return word(rng, inventory, (1, 2)) + rng.choice(inventory.country_suffixes)


def thing(rng: random.Random, inventory: Inventory = TRAIN) -> str:
    return word(rng, inventory, (1, 2)) + rng.choice(inventory.thing_suffixes)
