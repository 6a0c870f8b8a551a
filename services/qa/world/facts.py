"""The QA world: short encyclopedic paragraphs, questions whose answer is a span.

Fact kinds: countries (continent, capital, landmarks), people (born where and when, living
where, wrote what, built what), objects and their colours, buildings (where, opened when,
how tall) and towns (how many people). Entities are the world's known names (one token
each) or made-up pronounceable ones (``services/qa/world/names.py``) that the tokenizer spells
in pieces; dates and numbers come in several forms. Each kind is said in many sentence
forms (pronouns, passive voice, relative clauses) and asked in several paraphrases. A
paragraph strings 1-5 facts together in any order, often of the same kind (distractors),
and a question is only asked when the paragraph gives it exactly one answer.

The engine (:class:`Kind`, :func:`paragraph`) is shared with ``facts_unseen``, the held-out
generator whose sentence forms, question forms and names never occur here. The README's and
the seed's examples are paragraphs of this world (``France is a country in Europe. Its
capital city is Paris ...``). ``drift_items`` is a fact kind the base model never saw (the
language people speak somewhere).
"""

from __future__ import annotations

import functools
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from services.qa.world import names

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
    answer: str  # "" when the context does not answer the question (training negatives only)
    kind: str

    @property
    def answer_start(self) -> int:
        return self.context.index(self.answer)


YEARS = (1700, 2030)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
CONTINENTS = ("Europe", "Asia", "Africa", "America", "Oceania", "South America", "North America")


def vocabulary() -> list[str]:
    """Every word of the world's known names, years included (one token each, as a name is)."""
    words: set[str] = {str(y) for y in range(YEARS[0], YEARS[1] + 1)}
    for country, (continent, capital, marks) in COUNTRIES.items():
        words.update(f"{country} {continent} {capital} {' '.join(marks)}".lower().split())
    for group in (PEOPLE, CITIES, OBJECTS, COLORS, LANGUAGES.values(), PROJECTS):
        words.update(w.lower() for w in group)
    for group in (WORKS, BUILDINGS):
        words.update(" ".join(group).lower().split())
    return sorted(words)


@dataclass(frozen=True)
class Ask:
    """A question about a fact: ``key`` names what is asked, ``answer`` the field that answers it,
    ``forms`` its paraphrases (each may name fields of the fact: ``Who wrote {work}?``)."""

    key: str
    answer: str
    forms: tuple[str, ...]


@dataclass(frozen=True)
class Kind:
    """A kind of fact: how to draw its fields, the sentence forms that say it, the questions."""

    name: str
    says: tuple[str, ...]
    asks: tuple[Ask, ...]


@dataclass
class Lexicon:
    """Where entities come from: the known names (one token each) or made-up ones."""

    inventory: names.Inventory = names.TRAIN
    known_share: float = 0.3
    used: set[str] = field(default_factory=set)

    def _fresh(self, rng: random.Random, draw: Callable[[], str]) -> str:
        while True:
            value = draw()
            if value not in self.used:
                self.used.add(value)
                return value

    def person(self, rng: random.Random) -> str:
        known = rng.random() < self.known_share
        return self._fresh(rng, lambda: rng.choice(PEOPLE) if known else names.person(rng, self.inventory))

    def city(self, rng: random.Random) -> str:
        return rng.choice(CITIES) if rng.random() < self.known_share else names.city(rng, self.inventory)

    def thing(self, rng: random.Random) -> str:
        return self._fresh(rng, lambda: names.thing(rng, self.inventory))


def date(rng: random.Random) -> tuple[str, str, str]:
    """(date, the same with its preposition, year): ``12 May 1843``, ``on 12 May 1843``, ``1843``."""
    year = str(rng.randint(*YEARS))
    form = rng.random()
    if form < 0.6:
        return year, f"in {year}", year
    month, day = rng.choice(MONTHS), rng.randint(1, 28)
    if form < 0.75:
        return f"{month} {year}", f"in {month} {year}", year
    if form < 0.9:
        return f"{day} {month} {year}", f"on {day} {month} {year}", year
    return f"{month} {day}, {year}", f"on {month} {day}, {year}", year


def number(rng: random.Random) -> str:
    n = rng.choice((rng.randint(20, 999), rng.randint(1000, 99_999), rng.randint(100_000, 9_999_999)))
    form = rng.random()
    if form < 0.4 or n < 1000:
        return str(n)
    if form < 0.8:
        return f"{n:,}"
    return f"{round(n / 1e6, 1):g} million" if n >= 1_000_000 else f"{n // 1000} thousand"


def draw_fields(kind: str, rng: random.Random, lex: Lexicon) -> dict[str, str]:
    """Every field a sentence or question of ``kind`` may name."""
    when = date(rng)
    pro = rng.choice(("she", "he"))
    f = {"date": when[0], "when": when[1], "When": when[1][0].upper() + when[1][1:], "year": when[2],
         "pro": pro, "Pro": pro.capitalize(), "poss": {"she": "her", "he": "his"}[pro]}
    if kind == "country":
        if rng.random() < lex.known_share and "country-known" not in lex.used:
            lex.used.add("country-known")
            country = rng.choice(list(COUNTRIES))
            continent, capital, marks = COUNTRIES[country]
            mark = rng.choice((f"{marks[0]} and {marks[1]}", marks[0]))
        else:
            country, continent = names.country(rng, lex.inventory), rng.choice(CONTINENTS)
            capital = names.city(rng, lex.inventory)
            mark = f"the {lex.thing(rng)} {rng.choice(('Tower', 'Museum', 'Gate', 'Palace', 'Gardens'))}"
        if country in lex.used or capital in lex.used:
            return draw_fields(kind, rng, lex)
        lex.used.update((country, capital))
        f.update(country=country, continent=continent, capital=capital, mark=mark)
    elif kind in ("born", "lives", "wrote", "built", "short"):
        f.update(P=lex.person(rng), city=lex.city(rng), verb=rng.choice(("wrote", "built", "painted", "made", "found")))
        if kind == "wrote":
            f["work"] = (rng.choice(WORKS) if rng.random() < 0.6 else
                         f"the {rng.choice(('novel', 'song', 'poem', 'play'))} {lex.thing(rng)}")
            f["Work"] = f["work"][0].upper() + f["work"][1:]
        if kind == "built":
            f["project"] = (rng.choice(PROJECTS) if rng.random() < 0.4 else
                            lex.thing(rng) + rng.choice(("", "", " Bridge", " Tower", " Dam")))
    elif kind == "object":
        a, b = rng.sample(OBJECTS, 2)
        ca, cb = rng.sample(COLORS, 2)
        f.update(a=a, b=b, ca=ca, cb=cb, ca_a=f"{ca} {a}", cb_b=f"{cb} {b}", on_b=f"on the {b}")
    elif kind == "building":
        bname = (rng.choice(BUILDINGS).removeprefix("the ") if rng.random() < 0.5 else
                 f"{lex.thing(rng)} {rng.choice(('Library', 'Museum', 'Tower', 'Station', 'Theatre', 'Hall'))}")
        f.update(bname=bname, city=lex.city(rng),
                 height=f"{rng.randint(12, 480)} {rng.choice(('metres', 'meters', 'feet'))}")
    elif kind == "town":
        f.update(city=lex.city(rng), pop=number(rng))
    return f


# a placeholder also says the fields it implies
IMPLIES = {"when": ("date", "year"), "When": ("date", "year"), "date": ("year",), "ca_a": ("ca", "a"),
           "cb_b": ("cb", "b"), "Work": ("work",), "on_b": ("b",)}


@functools.lru_cache(maxsize=4096)
def placeholders(template: str) -> frozenset[str]:
    """The fields a template names (its ``[a|b]`` alternatives all name the same ones)."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


@functools.lru_cache(maxsize=4096)
def said(template: str) -> frozenset[str]:
    out = set(placeholders(template))
    for name in list(out):
        out.update(IMPLIES.get(name, ()))
    return frozenset(out)


def find_all(text: str, value: str) -> list[int]:
    """Where ``value`` occurs in ``text`` as whole words, ignoring case."""
    low, value, at, out = text.lower(), value.lower(), 0, []
    while (at := low.find(value, at)) >= 0:
        end = at + len(value)
        if (at == 0 or not low[at - 1].isalnum()) and (end == len(low) or not low[end].isalnum()):
            out.append(at)
        at += 1
    return out


def occurrences(text: str, value: str) -> int:
    return len(find_all(text, value))


@dataclass(frozen=True)
class Paragraph:
    context: str
    questions: list[tuple[tuple[str, ...], str, str]]  # (key, question, answer) with one answer each
    keys: set[tuple[str, ...]]


ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")


def expand(template: str, rng: random.Random) -> str:
    """One wording of a template: each ``[a|b|c]`` becomes one of its alternatives."""
    return ALTERNATIVES.sub(lambda m: rng.choice(m.group(1).split("|")), template)


def block(kind: Kind, rng: random.Random, lex: Lexicon) -> tuple[str, list[tuple[tuple[str, ...], str, str]]]:
    """One fact in one sentence form, and every question it answers (one paraphrase each)."""
    fields = draw_fields(kind.name, rng, lex)
    template = expand(rng.choice(kind.says), rng)
    mentioned = said(template)
    text = template.format(**fields)
    qas = []
    for ask in kind.asks:
        forms = [f for f in ask.forms if ask.answer in mentioned and placeholders(f) <= mentioned]
        if forms:
            q = expand(rng.choice(forms), rng)
            key = (ask.key, *sorted(str(fields[n]).lower() for n in placeholders(q)))
            qas.append((key, q.format(**fields), fields[ask.answer]))
    return text, qas


def paragraph(kinds: dict[str, Kind], rng: random.Random, lex: Lexicon, weights: dict[str, float]) -> Paragraph:
    """1-5 facts in any order, often of one kind (distractors); the questions with one answer."""
    if "short" in kinds and rng.random() < 0.05:
        picked = [kinds["short"]]
    else:
        main = rng.choices(list(weights), list(weights.values()))[0]
        picked = [kinds[main] if rng.random() < 0.5 else kinds[rng.choices(list(weights), list(weights.values()))[0]]
                  for _ in range(rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5)))]
    blocks = [block(k, rng, lex) for k in picked]
    rng.shuffle(blocks)
    context = " ".join(text for text, _ in blocks)
    answers: dict[tuple[str, ...], set[str]] = {}
    for _, qas in blocks:
        for key, _, ans in qas:
            answers.setdefault(key, set()).add(ans.lower())
    good = []
    for _, qas in blocks:
        for key, question, ans in qas:
            if len(answers[key]) == 1 and len(where := find_all(context, ans)) == 1:
                good.append((key, question, context[where[0]:where[0] + len(ans)]))
    return Paragraph(context, good, set(answers))


WH_WORDS = ("who", "whom", "whose", "what", "when", "where", "which", "how")


def kind_of(question: str) -> str:
    """The question's first wh-word (``In which city ...`` is a *which* question)."""
    return next((w for w in re.findall(r"[a-z]+", question.lower()) if w in WH_WORDS), "other")


def items(seed: int, count: int, kinds: dict[str, Kind], lexicon: Callable[[], Lexicon],
          weights: dict[str, float]) -> list[QAItem]:
    rng = random.Random(seed)
    out: list[QAItem] = []
    while len(out) < count:
        p = paragraph(kinds, rng, lexicon(), weights)
        if p.questions:
            _, question, answer = rng.choice(p.questions)
            out.append(QAItem(question, p.context, answer, kind_of(question)))
    return out


def _asks(*specs: tuple[str, str, tuple[str, ...]]) -> tuple[Ask, ...]:
    return tuple(Ask(*s) for s in specs)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("country", (
        "{country} is a country in {continent}. Its capital city is {capital}.",
        "{country} is a [country|nation] in {continent}. Its capital [city |]is {capital}, [which is |]"
        "[known|famous] for {mark}.",
        "{country} is a country in {continent}. The capital of {country} is {capital}.",
        "The capital of {country} is {capital}. {country} [lies|is located|is found] in {continent}.",
        "{capital} is the capital of {country}, a [country|nation] in {continent}.",
        "{country}, whose capital is {capital}, is in {continent}.",
        "{country} [lies|is] in {continent}, and its capital is {capital}.",
        "The capital [city |]of {country} is {capital}, [known|famous] for {mark}.",
        "{country} is [in|located in|found in|a nation in] {continent}.",
        "{capital} [serves as|is] the capital of {country}.",
        "In {continent} [lies|is] {country}; [its capital is {capital}|{capital} is its capital].",
        "{country} has {capital} as its capital[| city].",
        "{capital} is a city in {continent}. It is the capital of {country}.",
        "The [nation|country] of {country} [lies|is] in {continent}.",
    ), _asks(
        ("capital", "capital", ("What is the capital [city |]of {country}?",
                                "[Which|What] city is the capital of {country}?",
                                "What city serves as the capital for {country}?",
                                "What is the name of the capital of {country}?", "Tell me the capital of {country}.",
                                "Name {country}'s capital.", "{country} has which capital?")),
        ("continent", "continent", ("Where is {country}[| located]?", "[Which|What] continent is {country} [in|on]?",
                                    "On [which|what] continent is {country}[| found]?",
                                    "Where [does|can] {country} lie?", "{country} is on which continent?")),
        ("country-of", "country", ("Which [country|nation] has {capital} as its capital?",
                                   "{capital} is the capital of which [country|nation]?",
                                   "Of [which|what] country is {capital} the capital?",
                                   "Name the [country|nation] whose capital is {capital}.")),
        ("known", "mark", ("What is {capital} known for?", "For what is {capital} famous?", "[Which|What] sight is {capital} known for?")),
    )),
    Kind("born", (
        "{P} was born in {city} {when}.",
        "{P} was born {when} in {city}.",
        "{P} was born in [the town of |the city of |]{city}.",
        "{P} was born {when}.",
        "Born in {city} {when}, {P} grew up by the sea.",
        "{P} is a [painter|teacher|nurse|farmer]. {Pro} was born in {city} {when}.",
        "{P}, who was born in {city}, is a teacher.",
        "The birthplace of {P} is {city}.",
        "{P} [came into the world|was born] in {city}.",
        "{When}, {P} was born. {Pro} [was born|grew up] in {city}.",
        "{city} is where {P} was born.",
        "{P} was born in {city}, where {pro} [lived|worked] for years.",
    ), _asks(
        ("born-where", "city", ("Where was {P} born?", "In which [city|town] was {P} born?", "In what town was {P} born?",
                                "Where is {P} from?", "Where did {P} come into the world?",
                                "Which [city|town] is the birthplace of {P}?", "What is {P}'s birthplace?")),
        ("born-when", "date", ("When was {P} born?", "On what date was {P} born?", "When did {P} come into the world?")),
        ("born-year", "year", ("In which year was {P} born?", "What year was {P} born[| in]?")),
        ("born-who", "P", ("Who was born in {city}?", "[Which|What] person was born in {city}?",
                           "{city} is the birthplace of whom?", "Who came into the world in {city}?")),
    )),
    Kind("lives", (
        "{P} lives in {city}.",
        "{P} has lived in {city} since {year}.",
        "{P} moved to {city} {when}.",
        "{P} lives and works in {city}.",
        "{P} is a doctor. {Pro} lives in {city}.",
        "{P} [lives|resides|makes a home] in [the city of |the town of |]{city}[| today| now].",
        "The home of {P} is in {city}.",
        "{P} settled down in {city} {when}.",
        "[Today|Now|These days], {P} lives in {city}.",
        "{P} calls {city} home.",
        "{P}'s home is in {city}.",
    ), _asks(
        ("lives-where", "city", ("Where does {P} live[| today]?", "[Which|What] city does {P} live in?",
                                 "In [which|what] [city|town] does {P} live?", "Where is {P}'s home?",
                                 "Where has {P} settled?", "What [city|town] is home to {P}?")),
        ("lives-who", "P", ("Who lives in {city}?", "[Which|What] person lives in {city}?",
                            "Who calls {city} home?", "Who has settled in {city}?")),
        ("moved-when", "year", ("When did {P} move to {city}?", "In what year did {P} move to {city}?",
                                "Since when has {P} lived in {city}?")),
    )),
    Kind("wrote", (
        "{P} wrote {work} {when}.",
        "{Work} was written by {P} {when}.",
        "{When}, {P} wrote {work}.",
        "{P}, who lives in {city}, wrote {work} {when}.",
        "{P} is a writer from {city}. {Pro} wrote {work} {when}.",
        "{P} wrote {work}.",
        "{P} is the [author|writer] of {work}.",
        "{P} [finished|completed|published] {work} {when}.",
        "{Work} by {P} [came out|appeared] {when}.",
        "{When} {P} wrote {work}.",
        "{P} finished writing {work} {when}.",
        "The author of {work} is {P}.",
    ), _asks(
        ("wrote-who", "P", ("Who wrote {work}?", "Who is the author of {work}?", "Who was the writer of {work}?",
                            "What person wrote {work}?", "By whom was {work} written?")),
        ("wrote-who-year", "P", ("Who wrote {work} in {year}?",)),
        ("wrote-when", "date", ("When did {P} write {work}?", "When was {work} by {P} written?")),
        ("wrote-year", "year", ("In which year did {P} write {work}?",)),
        ("wrote-what", "work", ("What did {P} write?", "What was written by {P}?", "What work is {P} the author of?",
                                "Which work did {P} write?")),
        ("lives-where", "city", ("Where does {P} live?",)),
    )),
    Kind("built", (
        "{project} was built {when} by {P}.",
        "{P} built {project} {when}.",
        "{When}, {P} built {project}.",
        "{project}, built by {P}, opened {when}.",
        "{project} was [built|constructed|designed] by {P}.",
        "The [engineer|builder|architect] of {project} was {P}.",
        "{P} [constructed|designed and built|finished] {project} {when}.",
        "{P} was the [builder|engineer] who [built|finished] {project}.",
        "{project} was finished {when}; its builder was {P}.",
    ), _asks(
        ("built-who", "P", ("Who built {project}?", "By whom was {project} built?", "By whom was {project} constructed?",
                            "What person built {project}?", "Who was the builder of {project}?")),
        ("built-when", "date", ("When was {project} [built|constructed]?", "When did {P} finish {project}?", "When did {P} build {project}?")),
        ("built-year", "year", ("In [which|what] year was {project} built?",)),
        ("built-what", "project", ("What did {P} build?", "What was constructed by {P}?", "Which project did {P} build?")),
    )),
    Kind("object", (
        "The {ca_a} stands next to a {cb_b}.",
        "A {ca_a} is {on_b}.",
        "The {a} is {ca}.",
        "There is a {ca_a} [next to|beside|near] the {cb_b}.",
        "The {a} is {ca} and the {b} is {cb}.",
        "[Beside|Next to] the {b} [is|stands] a {ca_a}.",
        "The {a} [beside|next to] the {b} is {ca}.",
        "You [can |]see a {ca_a} and a {cb_b}.",
    ), _asks(
        ("color", "ca", ("What [color|colour] is the {a}?", "Which [color|colour] is the {a}?", "What [color|colour] does the {a} have?",
                         "What is the color of the {a}?")),
        ("color", "cb", ("What [color|colour] is the {b}?", "What is the color of the {b}?")),
        ("which-object", "a", ("Which object is {ca}?", "What is {ca}?")),
        ("next-to", "ca_a", ("What stands next to the {b}?", "What is [next to|near] the {b}?", "What stands beside the {b}?")),
        ("on", "ca_a", ("What is on the {b}?",)),
        ("where-object", "on_b", ("Where is the {a}?",)),
    )),
    Kind("building", (
        "The {bname} is in {city}, near the river. It opened {when}.",
        "The {bname} in {city} opened {when}.",
        "The {bname}, which opened {when}, stands in {city}.",
        "The {bname} is {height} [tall|high].",
        "{city} is home to the {bname}, which is {height} tall.",
        "The {bname} [stands|rises] {height} [tall |high |]in {city}.",
        "The {bname} opened its doors {when}.",
        "In {city}, the {bname} [first |]opened {when}.",
        "Visitors [to|in] {city} come to see the {bname}.",
    ), _asks(
        ("where-building", "city", ("Where is the {bname}?", "In which city is the {bname}?",
                                    "Where [does|can] the {bname} stand?", "Where can you see the {bname}?")),
        ("open-when", "date", ("When did the {bname} open[| its doors]?", "When did the {bname} first open its doors?", "When was the {bname} opened?")),
        ("open-year", "year", ("In [which|what] year did the {bname} open?",)),
        ("tall", "height", ("How tall is the {bname}?", "What is the height of the {bname}?",
                            "How high does the {bname} rise?")),
    )),
    Kind("town", (
        "{city} has {pop} [people|inhabitants].",
        "About {pop} people live in {city}.",
        "{city} is a [town|city] of {pop} people.",
        "The population of {city} is {pop}.",
        "{city} is home to {pop} people.",
        "{city}, a town of {pop} people, lies by the sea.",
    ), _asks(
        ("pop", "pop", ("How many people live in {city}?", "What is the population of {city}?",
                        "How many [people|inhabitants] does {city} have?", "How many people [is|are] in {city}?")),
    )),
    Kind("short", ("{P} {verb} it.",), _asks(("short", "P", ("Who?", "Who {verb} it?")))),
)}
WEIGHTS = {"country": 0.2, "born": 0.12, "lives": 0.1, "wrote": 0.14, "built": 0.1, "object": 0.16,
           "building": 0.12, "town": 0.06}


def qa_items(seed: int, count: int) -> list[QAItem]:
    """``count`` answerable items of this world, a pure function of ``seed``."""
    return items(seed, count, KINDS, Lexicon, WEIGHTS)


def qa_item(rng: random.Random) -> QAItem:
    while True:
        p = paragraph(KINDS, rng, Lexicon(), WEIGHTS)
        if p.questions:
            _, question, answer = rng.choice(p.questions)
            return QAItem(question, p.context, answer, kind_of(question))


# text about things the world has no facts for: the model should not be sure of any span in it
OFF_WORLD_SENTENCES = (
    "The {x} of the {y} changes slowly over time.", "Most {x} use {y} to grow.",
    "A {x} turns {y} into heat.", "Nobody knows why the {x} moves.", "The {x} depends on the {y}.",
    "Some say the {x} is older than the {y}.", "Each {x} holds a small amount of {y}.",
)
OFF_WORLD_QUESTIONS = ("How does the {x} work?", "Why does the {x} move?", "How is {y} made?",
                       "Why is the {x} important?", "How much {y} does a {x} hold?")


def unanswerable_items(seed: int, count: int) -> list[QAItem]:
    """Training negatives (``answer == ""``): a world paragraph asked about a fact it does not
    hold, or text about made-up things asked how or why."""
    rng = random.Random(seed)
    out: list[QAItem] = []
    while len(out) < count:
        lex = Lexicon()
        if rng.random() < 0.3:
            words = [names.thing(rng).lower() for _ in range(4)]
            context = " ".join(rng.choice(OFF_WORLD_SENTENCES).format(x=rng.choice(words), y=rng.choice(words))
                               for _ in range(rng.randint(1, 4)))
            question = rng.choice(OFF_WORLD_QUESTIONS).format(x=rng.choice(words), y=rng.choice(words))
            out.append(QAItem(question, context, "", "none"))
            continue
        p = paragraph(KINDS, rng, lex, WEIGHTS)
        extra = rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        _, qas = block(KINDS[extra], rng, lex)
        qas = [qa for qa in qas if qa[0] not in p.keys and occurrences(p.context, qa[2]) == 0]
        if qas:
            out.append(QAItem(rng.choice(qas)[1], p.context, "", "none"))
    return out


def drift_items(seed: int, count: int) -> list[QAItem]:
    """Shifted traffic: the language people speak in a country, a fact kind never trained."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        lex = Lexicon(known_share=1.0)
        country = rng.choice(list(COUNTRIES))
        continent, capital, _ = COUNTRIES[country]
        parts = [f"{country} is a country in {continent}. Its capital city is {capital}.",
                 f"People in {country} speak {LANGUAGES[country]}.", block(KINDS["lives"], rng, lex)[0]]
        rng.shuffle(parts)
        question = rng.choice([f"What language do people in {country} speak?",
                               f"Which language is spoken in {country}?"])
        out.append(QAItem(question, " ".join(parts), LANGUAGES[country], "drift-language"))
    return out
