"""A BERT WordPiece tokenizer built locally, so tiny models need no hub download.

Characters and ``##``-continuations cover any lowercase ASCII text; a short word list
keeps common words as single tokens. Deterministic: the same vocab every build.
"""

from __future__ import annotations

import string
from typing import Any

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """
a an the is are was were be of in on at to for from by with and or not no yes this that these those
what which who whom whose where when why how many much color colour shape size item object
red blue green yellow black white orange purple pink brown gray grey
shoe shoes sneakers chair table lamp bag cup bottle car dog cat person
capital city country paris france europe tower museum river known its it
one two three four five six seven eight nine ten square circle triangle stripe stripes
""".split()


def build_vocab() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIALS + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    seen = set(vocab)
    for word in WORDS:
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def build_bert_tokenizer(model_max_length: int = 512) -> Any:
    """A ``BertTokenizerFast`` with a locally built WordPiece model."""
    return wordpiece_tokenizer(build_vocab(), model_max_length)


def wordpiece_tokenizer(tokens: list[str], model_max_length: int = 512) -> Any:
    """A ``BertTokenizerFast`` over a WordPiece vocabulary (lowercasing, BERT pre-tokenisation),
    built locally: nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {tok: i for i, tok in enumerate(tokens)}
    core = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    core.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", model_max_length=model_max_length)
