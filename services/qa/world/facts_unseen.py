"""The held-out QA generator that tests generalisation: the facts world's kinds of facts, said
in sentence forms and asked in question forms that ``facts`` never uses, about people, places
and things whose names come from ``names.UNSEEN`` (every one starts with a consonant cluster,
which no training name does). It shares the engine (how a paragraph is assembled and which
questions have one answer) and the entity kinds, nothing of the wording.

``make models`` scores the QA model on ``unseen_items(UNSEEN_SEED, ...)`` next to its
in-generator held-out score (``scripts/qa_generalisation.py`` prints the detail).
"""

from __future__ import annotations

import re

from services.qa.world import names
from services.qa.world.facts import Kind, Lexicon, QAItem, _asks, items

UNSEEN_SEED = 26_026

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("country", (
        "{capital}, the capital of {country}, is a city in {continent}.",
        "The country of {country} is found in {continent}; {capital} is its capital.",
        "{country} is a nation in {continent} whose capital is {capital}.",
        "Located in {continent}, {country} has {capital} as its capital.",
        "{country}'s capital is {capital}, a city famous for {mark}.",
    ), _asks(
        ("capital", "capital", ("What is {country}'s capital?", "Which city serves as the capital of {country}?",
                                "Name the capital of {country}.")),
        ("continent", "continent", ("In what continent is {country}?", "Which continent is {country} found in?")),
        ("country-of", "country", ("Which nation has its capital in {capital}?",)),
        ("known", "mark", ("What is {capital} famous for?",)),
    )),
    Kind("born", (
        "{P} came into the world {when} in {city}.",
        "{city} is the birthplace of {P}.",
        "{P}'s birthplace is {city}; {pro} was born there {when}.",
        "{When}, {P} was born in the town of {city}.",
    ), _asks(
        ("born-where", "city", ("What is the birthplace of {P}?", "In what city was {P} born?")),
        ("born-when", "date", ("What is the birth date of {P}?",)),
        ("born-year", "year", ("In what year was {P} born?",)),
        ("born-who", "P", ("Whose birthplace is {city}?",)),
    )),
    Kind("lives", (
        "{P} makes {poss} home in {city}.",
        "These days {P} lives in the city of {city}.",
        "{city} has been home to {P} since {year}.",
        "{P} settled in {city} {when}.",
    ), _asks(
        ("lives-where", "city", ("Where does {P} live now?", "What city is {P}'s home?")),
        ("lives-who", "P", ("Who has a home in {city}?",)),
        ("moved-when", "year", ("When did {P} settle in {city}?",)),
    )),
    Kind("wrote", (
        "{When} {P} finished writing {work}.",
        "{P} is the author of {work}, written {when}.",
        "It was {P} who wrote {work}.",
        "{Work}, written by {P} {when}, is still read today.",
    ), _asks(
        ("wrote-who", "P", ("Who is the writer of {work}?", "Which person wrote {work}?")),
        ("wrote-year", "year", ("In what year did {P} write {work}?",)),
        ("wrote-what", "work", ("What is {P} the author of?",)),
    )),
    Kind("built", (
        "{P} was the builder of {project}, finished {when}.",
        "{project} was constructed by {P} {when}.",
        "The engineer {P} built {project} {when}.",
    ), _asks(
        ("built-who", "P", ("Who constructed {project}?", "Which person built {project}?")),
        ("built-year", "year", ("In what year was {project} constructed?",)),
        ("built-when", "date", ("When was {project} finished?",)),
        ("built-what", "project", ("What did {P} construct?",)),
    )),
    Kind("object", (
        "Next to the {cb_b} stands a {ca_a}.",
        "You can see a {ca_a} beside the {b}.",
        "The {a}, which is {ca}, is beside the {cb_b}.",
    ), _asks(
        ("color", "ca", ("Which color does the {a} have?", "What is the colour of the {a}?")),
        ("color", "cb", ("What is the colour of the {b}?",)),
        ("next-to", "ca_a", ("What is beside the {b}?",)),
    )),
    Kind("building", (
        "Built in {city}, the {bname} first opened its doors {when}.",
        "The {bname} rises {height} above {city}.",
        "Visitors to {city} can see the {bname}, opened {when}.",
    ), _asks(
        ("where-building", "city", ("In what city is the {bname}?", "Where can visitors see the {bname}?")),
        ("open-when", "date", ("When did the {bname} first open?",)),
        ("tall", "height", ("How high is the {bname}?",)),
    )),
    Kind("town", (
        "The town of {city} is home to {pop} people.",
        "{pop} people call {city} home.",
    ), _asks(
        ("pop", "pop", ("How many people is {city} home to?", "What is the number of people living in {city}?")),
    )),
)}
WEIGHTS = {"country": 0.18, "born": 0.14, "lives": 0.12, "wrote": 0.14, "built": 0.12, "object": 0.12,
           "building": 0.12, "town": 0.06}


def question_pattern() -> re.Pattern[str]:
    """Matches every question this generator can ask (a test checks training never asks one)."""
    forms = [q for kind in KINDS.values() for ask in kind.asks for q in ask.forms]
    return re.compile("|".join("(?:" + re.sub(r"\\\{[A-Za-z_]+\\\}", ".+", re.escape(f)) + ")" for f in forms))


def unseen_lexicon() -> Lexicon:
    return Lexicon(inventory=names.UNSEEN, known_share=0.0)


def unseen_items(seed: int = UNSEEN_SEED, count: int = 400) -> list[QAItem]:
    """``count`` answerable items in unseen forms about unseen names, a pure function of ``seed``."""
    return items(seed, count, KINDS, unseen_lexicon, WEIGHTS)


# paragraphs about things the facts world has no words for, with questions about them: the model
# should be sure of no span (written by hand, never trained on; the integration test has others)
OFF_WORLD = (
    ("How do bees make honey?", "Bees collect nectar from flowers and store it in wax cells, where it thickens."),
    ("Why do we sleep?", "Sleep lets the brain clear waste and store memories from the day."),
    ("What causes thunder?", "Lightning heats the air so quickly that it expands with a loud crack."),
    ("How is bread made?", "Flour, water and yeast are mixed, left to rise, and baked in a hot oven."),
    ("What does a router do?", "A router forwards packets between networks using a table of addresses."),
    ("Why is the sky blue?", "Air scatters short wavelengths of sunlight more strongly than long ones."),
    ("How do magnets work?", "Aligned electron spins inside iron produce a field that attracts other metals."),
    ("What is inflation?", "Inflation is the general rise of prices that lowers what money can buy."),
    ("How do vaccines protect us?", "They train the immune system to recognise a germ before a real infection."),
    ("What makes a good goalkeeper?", "Quick reflexes, good positioning and calm nerves under pressure."),
    ("Why do cats purr?", "Cats purr when content, and sometimes when hurt, to soothe themselves."),
    ("How does a battery store energy?", "Chemical reactions between two electrodes move electrons through a wire."),
)


def off_world_items() -> list[QAItem]:
    return [QAItem(question, context, "", "none") for question, context in OFF_WORLD]
