"""The world's tokenizer: a BERT WordPiece vocabulary built locally, far larger than the answers.

Every world word (colours, shapes, numbers, the QA world's names) is one token, and so
are many common English colour and shape words the models were never trained to answer
(``pink``, ``star``, ``hexagon`` ...), numbers up to twenty and everyday words: a
fine-tune can teach a new answer without a new vocabulary. Anything else is spelled
with character pieces (``##x``), so no text is ever out of vocabulary.
"""

from __future__ import annotations

import string
from typing import Any

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

COLOR_WORDS = """red green blue yellow orange purple pink brown black white gray grey cyan magenta teal navy
gold silver beige violet indigo maroon turquoise lime olive crimson scarlet lavender tan cream""".split()
SHAPE_WORDS = """circle square triangle rectangle star diamond hexagon pentagon octagon oval ellipse heart cross
ring arrow crescent cube sphere cone cylinder line dot spiral""".split()
NUMBER_WORDS = """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty""".split()
COMMON_WORDS = """
a an the is are was were be been being of in on at to for from by with and or not no yes this that these
those it its there here what which who whom whose where when why how many much kind type sort color colour
shape shapes size item items object objects thing things picture image photo scene see you can do does did
any some all each every count number left right top bottom middle center big small large little tiny huge
next near behind under above below between inside outside stands standing sits lies known famous capital
city town country river lake mountain island museum tower bridge castle church market school library
station park garden street house table chair lamp cup bottle bag shoe shoes car bicycle book clock phone
key hat ball box vase painting piano guitar dog cat bird horse person man woman boy girl team year born
built founded wrote painted invented discovered opened lives lived works worked moved visited made gave
he she they his her their first last new old one called named also famous home people language speak
""".split()


def world_words() -> list[str]:
    """Words of the QA world's entity lists (imported lazily: the lists live with their world)."""
    from services.qa.world import facts

    return facts.vocabulary()


def letter_pairs() -> list[str]:
    """Every two-letter piece, word-initial (``qu``) and inside a word (``##im``): a word the
    vocabulary does not hold is then spelled in about half as many pieces as with letters alone."""
    pairs = [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase]
    pairs += [a + b for a in string.digits for b in string.digits]
    return pairs + ["##" + p for p in pairs]


def build_vocab(pairs: bool = False) -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIALS + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    seen = set(vocab)
    words = [*COLOR_WORDS, *SHAPE_WORDS, *NUMBER_WORDS, *COMMON_WORDS, *world_words()]
    for word in words + (letter_pairs() if pairs else []):
        word = word.lower()
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def build_world_tokenizer(model_max_length: int = 512, pairs: bool = False) -> Any:
    """A ``BertTokenizerFast`` over :func:`build_vocab` (lowercasing, BERT pre-tokenisation);
    ``pairs`` adds the two-letter pieces (the QA model's tokenizer: it copies made-up names)."""
    from services.common.tiny_tokenizer import wordpiece_tokenizer

    return wordpiece_tokenizer(build_vocab(pairs), model_max_length)
