"""The QA world: short encyclopedic paragraphs from templates, questions whose answer is a span.

Entities: countries (with continent, capital and landmarks), people, cities, years,
objects and colours. A paragraph strings 2-4 facts together, with distractors of the same
type (two people, two years ...), so the question - who / what / when / where / which -
has to pick the span. The README's and the seed's examples are paragraphs of this world
(``France is a country in Europe. Its capital city is Paris ...``).

``DRIFT`` is a fact type the base model never saw (the language people speak somewhere).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COUNTRIES = {  # country: (continent, capital, landmarks)
    "France": ("Europe", "Paris", ("the Eiffel Tower", "Louvre Museum")),
    "Italy": ("Europe", "Rome", ("the Colosseum", "Vatican Museum")),
    "Spain": ("Europe", "Madrid", ("the Royal Palace", "Prado Museum")),
    "Germany": ("Europe", "Berlin", ("the Brandenburg Gate", "Pergamon Museum")),
    "England": ("Europe", "London", ("the Tower Bridge", "British Museum")),
    "Greece": ("Europe", "Athens", ("the Parthenon", "Acropolis Museum")),
    "Japan": ("Asia", "Tokyo", ("the Skytree", "National Museum")),
    "China": ("Asia", "Beijing", ("the Forbidden City", "Palace Museum")),
    "India": ("Asia", "Delhi", ("the Red Fort", "Lotus Temple")),
    "Egypt": ("Africa", "Cairo", ("the Pyramids", "Egyptian Museum")),
    "Kenya": ("Africa", "Nairobi", ("the National Park", "Karen Blixen Museum")),
    "Morocco": ("Africa", "Rabat", ("the Hassan Tower", "Kasbah Gardens")),
    "Canada": ("America", "Ottawa", ("the Parliament Hill", "War Museum")),
    "Mexico": ("America", "Mexico City", ("the Great Temple", "Anthropology Museum")),
    "Peru": ("America", "Lima", ("the Main Square", "Larco Museum")),
    "Australia": ("Oceania", "Canberra", ("the War Memorial", "National Gallery")),
}
LANGUAGES = {"France": "French", "Italy": "Italian", "Spain": "Spanish", "Germany": "German",
             "England": "English", "Greece": "Greek", "Japan": "Japanese", "China": "Chinese",
             "India": "Hindi", "Egypt": "Arabic", "Kenya": "Swahili", "Morocco": "Arabic",
             "Canada": "English", "Mexico": "Spanish", "Peru": "Spanish", "Australia": "English"}
PEOPLE = """Ada Alan Marie Grace Leo Nina Omar Yuki Ravi Lena Hugo Sofia Ivan Maya Tariq Elena Kofi Ines
Pablo Mei Jonas Amara Felix Clara Diego Hana Victor Lucia Samir Freya""".split()
CITIES = """Paris Rome Madrid Berlin London Athens Tokyo Beijing Delhi Cairo Nairobi Rabat Ottawa Lima
Canberra Lyon Milan Porto Munich Oxford Kyoto Osaka Mumbai Luxor Toronto Sydney Geneva Vienna Prague""".split()
OBJECTS = """chair table lamp cup bottle bag clock book vase hat ball box bicycle piano guitar kettle
mirror basket""".split()
COLORS = """red green blue yellow orange purple black white brown pink gray""".split()
WORKS = ("a novel", "a song", "a poem", "a play", "a letter", "a guide", "a report", "a story")
BUILDINGS = ("the bridge", "the museum", "the library", "the station", "the tower", "the school", "the market",
             "the theatre")
PROJECTS = ("Loopline", "Skyway", "Northwind", "Bluebird", "Ironleaf", "Moonbase", "Quickstep", "Redwood")


@dataclass(frozen=True)
class QAItem:
    question: str
    context: str
    answer: str
    kind: str

    @property
    def answer_start(self) -> int:
        return self.context.index(self.answer)


YEARS = (1700, 2030)


def vocabulary() -> list[str]:
    """Every word of the world, years included (a year is one token, as a name is)."""
    words: set[str] = {str(y) for y in range(YEARS[0], YEARS[1] + 1)}
    for country, (continent, capital, marks) in COUNTRIES.items():
        words.update(f"{country} {continent} {capital} {' '.join(marks)}".lower().split())
    for group in (PEOPLE, CITIES, OBJECTS, COLORS, LANGUAGES.values(), PROJECTS):
        words.update(w.lower() for w in group)
    for group in (WORKS, BUILDINGS):
        words.update(" ".join(group).lower().split())
    return sorted(words)


def _year(rng: random.Random) -> str:
    return str(rng.randint(*YEARS))


# Each fact: (sentence, [(question, answer), ...]); a paragraph draws a few and asks one question.
def _country_fact(rng: random.Random) -> tuple[str, list[tuple[str, str]], str]:
    country = rng.choice(list(COUNTRIES))
    continent, capital, marks = COUNTRIES[country]
    known = rng.choice([f", which is known for {marks[0]} and {marks[1]}", f", known for {marks[0]}", "", ""])
    text = rng.choice([f"{country} is a country in {continent}. Its capital city is {capital}{known}.",
                       f"{country} is a country in {continent}. The capital of {country} is {capital}{known}.",
                       f"The capital of {country} is {capital}{known}. {country} lies in {continent}."])
    qas = [(rng.choice([f"What is the capital of {country}?", f"Which city is the capital of {country}?",
                        f"What is the capital city of {country}?"]), capital),
           (rng.choice([f"Where is {country}?", f"Which continent is {country} in?", f"Where is {country} located?"]),
            continent)]
    return text, qas, country


def _person_fact(rng: random.Random, names: list[str]) -> tuple[str, list[tuple[str, str]]]:
    person, year, city = names.pop(), _year(rng), rng.choice(CITIES)
    form = rng.randrange(4)
    if form == 0:
        work = rng.choice(WORKS)
        return (f"{person} wrote {work} in {year}.",
                [(f"Who wrote {work}?", person), (f"When did {person} write {work}?", year),
                 (f"What did {person} write?", work)])
    if form == 1:
        return (f"{person} was born in {city} in {year}.",
                [(rng.choice([f"Where was {person} born?", f"In which city was {person} born?"]), city),
                 (rng.choice([f"When was {person} born?", f"In which year was {person} born?"]), year)])
    if form == 2:
        return (f"{person} lives in {city}.",
                [(rng.choice([f"Where does {person} live?", f"Which city does {person} live in?"]), city),
                 (f"Who lives in {city}?", person)])
    project = rng.choice(PROJECTS)
    return (f"{project} was built in {year} by {person}.",
            [(f"When was {project} built?", year), (f"Who built {project}?", person)])


def _object_fact(rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    a, b = rng.sample(OBJECTS, 2)
    ca, cb = rng.sample(COLORS, 2)
    if rng.random() < 0.5:
        return (f"The {ca} {a} stands next to a {cb} {b}.",
                [(f"What color is the {a}?", ca), (f"What color is the {b}?", cb),
                 (f"Which object is {ca}?", a), (f"What stands next to the {b}?", f"The {ca} {a}")])
    return (f"A {ca} {a} is on the {b}.",
            [(f"What is on the {b}?", f"A {ca} {a}"), (f"What color is the {a}?", ca),
             (f"Where is the {a}?", f"on the {b}")])


def _building_fact(rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    building, city, year = rng.choice(BUILDINGS), rng.choice(CITIES), _year(rng)
    name = building.removeprefix("the ")
    return (f"The {name} is in {city}, near the river. It opened in {year}.",
            [(f"Where is the {name}?", city), (f"When did the {name} open?", year),
             (f"When was the {name} opened?", year)])


def _short_fact(rng: random.Random, names: list[str]) -> tuple[str, list[tuple[str, str]]]:
    person = names.pop()
    verb = rng.choice(["wrote", "built", "painted", "made", "found"])
    return (f"{person} {verb} it.", [("Who?", person), (f"Who {verb} it?", person)])


def _unambiguous(context: str) -> bool:
    """No object, building or project named twice: every question then has one answer."""
    words = context.lower().replace(".", " ").replace(",", " ").split()
    return all(words.count(w.lower()) <= 1 for w in (*OBJECTS, *PROJECTS, *(b.split()[1] for b in BUILDINGS)))


def qa_item(rng: random.Random) -> QAItem:
    while True:
        item = _qa_item(rng)
        if _unambiguous(item.context) and item.context.count(item.answer) == 1:
            return item


def _qa_item(rng: random.Random) -> QAItem:
    names = rng.sample(PEOPLE, 6)
    facts: list[tuple[str, list[tuple[str, str]]]] = []
    if rng.random() < 0.08:
        facts.append(_short_fact(rng, names))
    else:
        for _ in range(rng.randint(2, 4)):
            pick = rng.random()
            if pick < 0.3 and not any("country in" in t or "capital of" in t for t, _ in facts):
                text, qas, _ = _country_fact(rng)
                facts.append((text, qas))
            elif pick < 0.6:
                facts.append(_person_fact(rng, names))
            elif pick < 0.85:
                facts.append(_object_fact(rng))
            else:
                facts.append(_building_fact(rng))
    context = " ".join(t for t, _ in facts)
    question, answer = rng.choice([qa for _, qas in facts for qa in qas])
    kind = question.split()[0].lower().rstrip("?")
    return QAItem(question, context, answer, kind)


def qa_items(seed: int, count: int) -> list[QAItem]:
    rng = random.Random(seed)
    out: list[QAItem] = []
    while len(out) < count:
        out.append(qa_item(rng))
    return out


def drift_items(seed: int, count: int) -> list[QAItem]:
    """Shifted traffic: the language people speak in a country, a fact type never trained."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        names = rng.sample(PEOPLE, 6)
        text, _, country = _country_fact(rng)
        language = LANGUAGES[country]
        parts = [text, f"People in {country} speak {language}.", _person_fact(rng, names)[0]]
        rng.shuffle(parts)
        question = rng.choice([f"What language do people in {country} speak?",
                               f"Which language is spoken in {country}?"])
        out.append(QAItem(question, " ".join(parts), language, "drift-language"))
    return out
