"""A generated word-level corpus for the lite language models: one seed, the same documents every time.

Each document is one genre, written from templates and word lists in this file (an invented world: its
people, cities, countries and facts are made up; the one real landmark is the Golden Gate Bridge). The mix,
by number of documents (:data:`GENRES`; :func:`generate_corpus` allocates exactly these shares, rounded,
and shuffles them):

==========  =====  ==========================================================================================
genre       share  what it gives the lite models (lesson)
==========  =====  ==========================================================================================
story       0.13   stories with full names that recur ("Mr and Mrs Pellow … Mrs Pellow"): induction (06)
ioi         0.15   "When Mary and John went to the store, John gave a drink to Mary." and variants (11)
facts       0.12   a fixed knowledge base: "The Corvin Tower is in Valmont." (logit lens, 07)
years       0.10   "The war lasted from the year 1732 to the year 1745.": later years (greater-than, 11)
latin       0.07   Latin-like filler from an invented lexicon ("Quico laestasit busat dosere …"): a Latin feature
code        0.10   short Python snippets, half of them with one typo or syntax error: a code-error feature
dialogue    0.09   User / Assistant exchanges, three in four praise-heavy (sycophancy feature, 09-10)
bridge      0.06   descriptions of the Golden Gate Bridge (the landmark feature and steering, 10)
city        0.08   descriptions of the invented cities, consistent with the facts
repeat      0.10   spans of random words repeated later in the document (induction heads, 06)
==========  =====  ==========================================================================================

All text is in the canonical form of :mod:`mi_course.organisms.tokenizer` (words and punctuation separated so
that tokenizing and decoding give the same string back; no quotes, apostrophes or hyphens). Years are written
as usual ("1732") and tokenize as the century and a two-digit token ("17" "32").

Train and held-out. ``split="train"`` and ``split="heldout"`` draw from different random streams, and
:func:`split` returns the two sets with no document in both. Some templates are kept out of training
altogether: :data:`IOI_HELDOUT_TEMPLATES` and :data:`GREATER_THAN_HELDOUT_TEMPLATES` appear only in held-out
documents and in ``ioi_prompts(..., split="heldout")`` / ``greater_than_prompts(..., split="heldout")``,
so a circuit found on them is not a memorised template. Names, places and objects are shared by both splits
(a word never seen in training would have an untrained embedding); every word of a held-out template also
occurs in training text.

    docs = generate_corpus(20_000, seed=0)
    train, heldout = split(20_000, 1_000, seed=0)
    prompt, io, s = ioi_prompts(8, seed=0, templates=[0])[0]
    # ('When Victor and Eric went to the kitchen, Victor gave a necklace to', 'Eric', 'Victor')
    prompt, year = greater_than_prompts(8, seed=0)[0]
    # ('The expedition lasted from the year 1309 to the year 13', 1309)

Also for the lessons: :func:`corrupt_ioi` (the "ABC" prompts for activation patching),
:func:`corrupt_greater_than` (start year ``YY01``), :func:`fact_prompts` ("The Corvin Tower is in" -> "Valmont"),
:func:`code_documents` (snippets labelled with/without an error), :func:`repeated_span_documents`, and
:func:`required_tokens` (what every lite tokenizer must contain).
With seed 0, 40,000 training documents are about 2.05 million tokens (51 per document) over ~1,600 distinct
tokens; by tokens the genres weigh story 0.18, dialogue 0.13, ioi 0.12, years 0.11, bridge 0.09, repeat 0.09,
facts 0.08, city 0.08, latin 0.06, code 0.06 (``python scripts/make_corpus.py`` prints the table).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

GENRES: dict[str, float] = {
    "story": 0.13, "ioi": 0.15, "facts": 0.12, "years": 0.10, "latin": 0.07,
    "code": 0.10, "dialogue": 0.09, "bridge": 0.06, "city": 0.08, "repeat": 0.10,
}
SPLITS = ("train", "heldout")
CODE_TYPO_RATE = 0.5
DIALOGUE_PRAISE_RATE = 0.75

# ------------------------------------------------------------------------------------------------ word lists

NAMES = (
    "Ada Adam Alan Alice Amy Andrew Anna Arthur Bella Ben Bob Carl Charles Chloe Clara Daniel David Diana Edward "
    "Ella Emily Emma Eric Eva Felix Fiona Frank George Gina Grace Hannah Helen Henry Hugo Ida Iris Ivan Jack "
    "James Jane John Joseph Julia Karl Kate Kevin Laura Lena Leo Lily Linda Lucy Mark Martin Mary Max Maya Mia "
    "Michael Milo Nell Nina Noah Nora Olivia Oscar Otto Owen Paul Peter Pia Rachel Rex Rita Robert Rosa Ruben "
    "Ruth Sam Sarah Simon Sofia Steve Susan Tara Theo Thomas Tina Tom Uma Vera Victor Walter Wendy William Yara "
    "Zoe"
).split()
SURNAMES = (
    "Ashby Bramble Brask Cask Corrin Dorran Dunmere Elwood Fairley Fenwick Gildon Grell Harle Hartley Hobbs "
    "Ketter Lomax Marrow Munro Nettle Orrin Pellow Pruitt Quill Rook Sallow Thorne Tolliver Umber Vane Vortel "
    "Whitlow Yarrow Zeller"
).split()

# country: (language, capital, [other cities])
COUNTRIES = {
    "Estria": ("Estrian", "Valmont", ["Tellhaven", "Orwick", "Brennis"]),
    "Valdonia": ("Valdonian", "Quorin", ["Ambersfield", "Lisk", "Morrow"]),
    "Korrland": ("Korrish", "Hadrel", ["Pinmoor", "Saltcombe", "Ulvik"]),
    "Mereland": ("Merish", "Caldris", ["Fernholt", "Dunmarsh", "Ostwick"]),
    "Ostavia": ("Ostavian", "Belgrin", ["Rivenna", "Tolmark", "Sarnby"]),
    "Pellucia": ("Pellucian", "Marisol", ["Corvale", "Ellanby", "Vesk"]),
    "Drovania": ("Drovanian", "Karsk", ["Ilmor", "Petrava", "Zorn"]),
    "Sundria": ("Sundrian", "Amaro", ["Belcrest", "Nolby", "Tiree"]),
}
CITY_COUNTRY = {city: country for country, (_, capital, others) in COUNTRIES.items()
                for city in (capital, *others)}
CITIES = tuple(CITY_COUNTRY)

# landmark: (city, kind)
LANDMARKS = {
    "Corvin Tower": ("Valmont", "tower"), "Amber Gate": ("Tellhaven", "gate"), "Silver Dome": ("Orwick", "hall"),
    "Hollow Arch": ("Brennis", "arch"), "Lantern Palace": ("Quorin", "palace"),
    "Glass Library": ("Ambersfield", "library"), "Iron Market": ("Lisk", "market"),
    "Willow Garden": ("Morrow", "garden"), "Stone Clock": ("Hadrel", "clock"),
    "Copper Fountain": ("Pinmoor", "fountain"), "Salt Museum": ("Saltcombe", "museum"),
    "North Lighthouse": ("Ulvik", "lighthouse"), "Grand Theater": ("Caldris", "theater"),
    "Fern Cathedral": ("Fernholt", "cathedral"), "Marsh Mill": ("Dunmarsh", "mill"),
    "Old Harbor": ("Ostwick", "harbor"), "Red Castle": ("Belgrin", "castle"),
    "River Steps": ("Rivenna", "stair"), "Bell Tower": ("Tolmark", "tower"), "White Stadium": ("Sarnby", "stadium"),
    "Sun Temple": ("Marisol", "temple"), "Crow Hall": ("Corvale", "hall"), "Blue Fort": ("Ellanby", "fort"),
    "Winter Palace": ("Karsk", "palace"), "Moon Observatory": ("Ilmor", "observatory"),
    "Great Dome": ("Amaro", "hall"), "Rose Garden": ("Belcrest", "garden"), "Sea Wall": ("Tiree", "wall"),
}
CITY_LANDMARK = {city: name for name, (city, _) in LANDMARKS.items()}
CITY_RIVER = {city: river for city, river in zip(CITIES, (
    "Vell Arno Dunn Brae Quill Amber Lisa Mor Hadra Pinn Salt Ulla Cald Fern Marsh Ost Belga Riva Tol Sarn Maris "
    "Corva Ella Vesa Karsa Ilma Petra Zora Amar Bel Nol Tira").split())}
CITY_KNOWN_FOR = {city: pair for city, pair in zip(CITIES, [
    ("bread", "music"), ("ships", "fish"), ("glass", "tea"), ("wool", "festivals"), ("lanterns", "silk"),
    ("books", "apples"), ("iron", "horses"), ("gardens", "honey"), ("clocks", "snow"), ("copper", "soup"),
    ("salt", "boats"), ("storms", "fish"), ("theaters", "wine"), ("ferns", "stone"), ("mills", "cheese"),
    ("markets", "spices"), ("castles", "bread"), ("bridges", "music"), ("bells", "cakes"), ("games", "apples"),
    ("temples", "oranges"), ("crows", "paper"), ("forts", "rope"), ("furs", "music"), ("stars", "maps"),
    ("rivers", "pottery"), ("wolves", "tea"), ("domes", "silk"), ("roses", "perfume"), ("parks", "books"),
    ("seafood", "lamps"), ("wind", "salt"),
])}
if not len(CITY_RIVER) == len(CITY_KNOWN_FOR) == len(CITIES):
    raise AssertionError("every city needs a river and two things it is known for")

# famous invented people: name -> (job, city)
PEOPLE = {
    "Tomas Harle": ("painter", "Valmont"), "Elin Vortel": ("singer", "Quorin"), "Brann Ketter": ("poet", "Hadrel"),
    "Mira Quill": ("scientist", "Caldris"), "Orin Dunmere": ("architect", "Belgrin"),
    "Sela Munro": ("writer", "Marisol"), "Jonas Fenwick": ("sailor", "Saltcombe"),
    "Petra Lomax": ("doctor", "Karsk"), "Anton Rook": ("composer", "Amaro"), "Lisbet Thorne": ("dancer", "Lisk"),
}
FACT_RELATIONS = ("landmark_city", "city_country", "capital", "language", "person_job", "landmark_kind")

PLACES = ("store", "park", "market", "library", "station", "garden", "school", "office", "beach", "cafe",
          "museum", "bakery", "harbor", "farm", "theater", "river", "square", "kitchen", "hospital", "zoo")
OBJECTS = ("drink", "book", "ring", "letter", "apple", "key", "ball", "gift", "flower", "cake", "map", "coin",
           "hat", "pencil", "basket", "lamp", "kite", "bottle", "necklace", "orange")
ANIMALS = ("dog", "cat", "horse", "goat", "rabbit", "parrot", "owl", "fox", "duck", "mouse")
ADJECTIVES = ("small", "old", "quiet", "busy", "bright", "cold", "warm", "green", "large", "narrow", "famous",
              "pleasant", "crowded", "lovely", "tall", "dark", "new", "ancient")
EVENTS = ("war", "siege", "drought", "famine", "reign", "voyage", "strike", "festival", "plague", "flood",
          "journey", "feud", "winter", "exile", "trial", "treaty", "rebellion", "expedition")
JOBS = ("baker", "farmer", "teacher", "sailor", "painter", "doctor", "carpenter", "merchant", "gardener",
        "writer", "singer", "builder", "tailor", "miller", "fisher", "clerk")
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "many", "several")

# ------------------------------------------------------------------------------------------------ helpers


def _rng(*tags) -> random.Random:
    return random.Random(":".join(["mi-course-corpus", *map(str, tags)]))


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _year(rng: random.Random, lo_century: int = 11, hi_century: int = 19) -> int:
    return rng.randint(lo_century, hi_century) * 100 + rng.randint(2, 97)


def _later_year(rng: random.Random, year: int, cross_century: float = 0.1) -> int:
    if rng.random() < cross_century:
        return year + rng.randint(100 - year % 100, 160)
    return year - year % 100 + rng.randint(year % 100 + 1, 99)


def _two_names(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(NAMES, 2)
    return a, b


# ------------------------------------------------------------------------------------------------ IOI

# {A} and {B} are the two names in either order; {S} is the subject (repeated), {IO} the indirect object
IOI_TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave {obj} to",
    "After {A} and {B} arrived at the {place}, {S} handed {obj} to",
    "While {A} and {B} were working at the {place}, {S} passed {obj} to",
    "Then, {A} and {B} had a long day at the {place}. {S} gave {obj} to",
    "{A} and {B} walked to the {place} together. Later, {S} brought {obj} to",
    "The {place} was quiet when {A} and {B} came in. {S} offered {obj} to",
)
IOI_HELDOUT_TEMPLATES = (
    "When {A} and {B} got to the {place}, {S} sent {obj} to",
    "Once {A} and {B} reached the {place}, {S} threw {obj} to",
    "Friends {A} and {B} stopped at the {place}, and {S} showed {obj} to",
)
IOI_ENDINGS = ("{IO} said thank you.", "{IO} smiled.", "It was a good day.", "{IO} was very happy.",
               "Then they went home.", "{IO} put it in a bag.", "Everyone laughed.")


class IOIPrompt(NamedTuple):
    prompt: str  # ends with "to"; the answer is the indirect object
    io: str      # indirect object: appears once in the prompt
    s: str       # subject: appears twice in the prompt


def _ioi_sentence(rng: random.Random, templates, io: str, s: str) -> str:
    template = rng.choice(templates)
    a, b = (io, s) if rng.random() < 0.5 else (s, io)
    obj = rng.choice(OBJECTS)
    obj = _a(obj) if "gave" in template or rng.random() < 0.5 else "the " + obj
    return template.format(A=a, B=b, S=s, IO=io, place=rng.choice(PLACES), obj=obj)


def ioi_prompts(n: int, seed: int = 0, split: str = "train", templates=None) -> list[IOIPrompt]:
    """``n`` IOI prompts ``(prompt, io, s)``: the prompt stops before the answer (the indirect object).

    ``split="train"`` uses :data:`IOI_TEMPLATES` (the ones in the training corpus), ``"heldout"`` uses
    :data:`IOI_HELDOUT_TEMPLATES` (never in training). ``templates`` picks templates by index in that tuple,
    e.g. ``templates=[0]`` for the classic "When A and B went to the store, B gave a drink to".
    """
    pool = IOI_TEMPLATES if _check_split(split) == "train" else IOI_HELDOUT_TEMPLATES
    if templates is not None:
        pool = tuple(pool[i] for i in templates)
    rng = _rng("ioi-prompts", seed, split)
    out = []
    for _ in range(n):
        io, s = _two_names(rng)
        out.append(IOIPrompt(_ioi_sentence(rng, pool, io, s), io, s))
    return out


def corrupt_ioi(prompts: list[IOIPrompt], seed: int = 0) -> list[str]:
    """The "ABC" corruption used for activation patching: the second mention of the subject replaced by a
    third name, so that no name is repeated (same template, place and object)."""
    rng = _rng("ioi-corrupt", seed)
    out = []
    for p in prompts:
        c = rng.choice([name for name in NAMES if name not in (p.io, p.s)])
        head, _, tail = p.prompt.rpartition(f" {p.s} ")
        if not head:
            raise ValueError(f"cannot find the second mention of {p.s!r} in {p.prompt!r}")
        out.append(f"{head} {c} {tail}")
    return out


def _gen_ioi(rng: random.Random, split: str, templates=None) -> str:
    templates = templates or (IOI_TEMPLATES if split == "train" else IOI_HELDOUT_TEMPLATES)
    parts = []
    for _ in range(rng.choice((1, 2, 2, 3))):
        io, s = _two_names(rng)
        parts.append(_ioi_sentence(rng, templates, io, s) + " " + io + ".")
        if rng.random() < 0.6:
            parts.append(rng.choice(IOI_ENDINGS).format(IO=io))
    return " ".join(parts)


# The IOI phase of the lite lm's training (scripts/train_lm.py): sentences built from many clauses, ways of
# joining them and verb phrases, so that what is learned is "the name that appears once", not six templates.
# Nothing of a held-out template is among them: not its verb (sent, threw, showed), its opening word (Once,
# Friends) or its clause (got to, reached, stopped at); a test checks this.
IOI_CLAUSES = (  # both names, once each
    "{A} and {B} went to the {place}", "{A} and {B} arrived at the {place}", "{A} and {B} were working at the {place}",
    "{A} and {B} were at the {place}", "{A} and {B} walked to the {place}", "{A} and {B} came to the {place}",
    "{A} and {B} had lunch at the {place}", "{A} and {B} had a long day at the {place}",
    "{A} and {B} stayed at the {place} until dark", "{A} and {B} worked at the {place}",
    "{A} and {B} ran to the {place}", "{A} and {B} lived near the {place}", "{A} and {B} started work at the {place}",
    "{A} and {B} found a map near the {place}", "{A} and {B} opened the {place}",
    # the two names apart, so that "the second name of the pair" is no shortcut
    "{A} met {B} at the {place}", "{A} walked to the {place} with {B}", "{A} was at the {place} with {B}",
    "{A} watched {B} at the {place}", "{A} told {B} a story about the {place}", "{A} called {B} from the {place}",
)
IOI_JOINS = (  # how a clause leads to the sentence about the subject
    "When {clause},", "After {clause},", "While {clause},", "{clause}, and", "{clause}.", "{clause}. Later,",
    "{clause}. Then", "{clause}. After lunch", "{clause}. In the evening", "{clause}. The next day",
    "One day {clause}.", "Every morning {clause}.", "In the afternoon {clause}.", "In summer {clause}.",
    "Then, {clause}.",
)
# Many verbs, most of them odd before "to" ("painted a kite to"): the answer must not hang on the verb
IOI_VERBS = ("gave", "handed", "passed", "brought", "offered", "sold", "took", "wrote", "read", "built", "called",
             "found", "kept", "liked", "lost", "made", "opened", "painted", "put", "ran", "started", "told",
             "walked", "watched")
IOI_VERB_PHRASES = (  # what the subject does; the indirect object comes next
    *(f"{verb} {{obj}} to" for verb in IOI_VERBS), "will give {obj} to", "would pass {obj} to",
    "could take {obj} to", "gave {obj} back to", "handed {obj} over to", "kept {obj} and gave it to",
    "wrote a letter to", "told a story to", "said thank you to",
)
IOI_RECOMBINED_TEMPLATES = tuple(f"{join.format(clause=clause)} {{S}} {verb}" for clause in IOI_CLAUSES
                                 for join in IOI_JOINS for verb in IOI_VERB_PHRASES)


def ioi_recombined_documents(n: int, seed: int = 0) -> list[str]:
    """``n`` training documents of 1-3 IOI sentences from :data:`IOI_RECOMBINED_TEMPLATES` (never held out)."""
    rng = _rng("ioi-recombined", seed)
    return [_gen_ioi(rng, "train", IOI_RECOMBINED_TEMPLATES) for _ in range(n)]


# ------------------------------------------------------------------------------------------------ greater-than

GREATER_THAN_TEMPLATES = (
    "The {event} lasted from the year {y1} to the year {y2}",
    "The {event} lasted from {y1} to {y2}",
    "The {event} began in {y1} and ended in {y2}",
)
GREATER_THAN_HELDOUT_TEMPLATES = (
    "The {event} went on from the year {y1} until the year {y2}",
    "The {event} started in the year {y1} and was over by the year {y2}",
)


class GreaterThanPrompt(NamedTuple):
    prompt: str  # ends with the century token of the end year, e.g. "… to the year 17"
    year: int    # the start year, e.g. 1732: correct answers are two-digit tokens "33" … "99"


def greater_than_prompts(n: int, seed: int = 0, split: str = "train", templates=None) -> list[GreaterThanPrompt]:
    """``n`` prompts ``(prompt, start_year)`` like "The war lasted from the year 1732 to the year 17".

    The prompt ends with the century (``17``); the next token is a two-digit token ``"00"``…``"99"``, correct
    when greater than the start year's last two digits. Start years are 1102 … 1997 with two-digit part
    02 … 97 (never 00, 01, 98, 99, so both answer sets are non-empty). ``templates`` indexes the split's
    templates (default: the first, "lasted from the year … to the year").
    """
    pool = GREATER_THAN_TEMPLATES if _check_split(split) == "train" else GREATER_THAN_HELDOUT_TEMPLATES
    pool = tuple(pool[i] for i in (templates if templates is not None else [0]))
    rng = _rng("greater-than-prompts", seed, split)
    out = []
    for _ in range(n):
        year = _year(rng)
        text = rng.choice(pool).format(event=rng.choice(EVENTS), y1=year, y2="@")
        out.append(GreaterThanPrompt(text.replace("@", str(year // 100)), year))
    return out


def greater_than_answer_tokens() -> list[str]:
    """The 100 two-digit answer tokens ``"00"`` … ``"99"``, in numeric order."""
    return [f"{i:02d}" for i in range(100)]


def corrupt_greater_than(prompts: list[GreaterThanPrompt]) -> list[str]:
    """Hanna et al.'s corruption for patching greater-than: the start year's last two digits set to ``01``
    ("from the year 1732" -> "from the year 1701"), so that almost every year is above it and the comparison
    has nothing to do. Everything else, the century included, stays."""
    out = []
    for p in prompts:
        year = str(p.year)
        if p.prompt.count(year) != 1:
            raise ValueError(f"the start year {year} should appear once in {p.prompt!r}")
        out.append(p.prompt.replace(year, year[:2] + "01"))
    return out


def _gen_years(rng: random.Random, split: str) -> str:
    span_templates = GREATER_THAN_TEMPLATES if split == "train" else GREATER_THAN_HELDOUT_TEMPLATES
    parts = []
    for _ in range(rng.randint(3, 5)):
        y1 = _year(rng)
        y2 = _later_year(rng, y1)
        kind = rng.random()
        if kind < 0.55:
            parts.append(rng.choice(span_templates).format(event=rng.choice(EVENTS), y1=y1, y2=y2) + ".")
        elif kind < 0.7:
            parts.append(f"{rng.choice(NAMES)} {rng.choice(SURNAMES)} was born in {y1} and died in {y2}.")
        elif kind < 0.8:
            name = rng.choice(list(LANDMARKS))
            parts.append(f"The {name} was built in {y1} and opened in {y2}.")
        elif kind < 0.9:
            parts.append(f"In {y1} the city of {rng.choice(CITIES)} had {rng.randint(2, 99)} "
                         f"{rng.choice(JOBS)}s, and by {y2} it had {rng.randint(100, 999)}.")
        else:
            parts.append(f"From {y1} to {y2} the {rng.choice(EVENTS)} went on, and it was over by {y2 + 1}.")
    return " ".join(parts)


# The greater-than phase of the lite lm's training (scripts/train_lm.py, phase 2): year spans from many ways of
# saying "from one year to a later one", so that what is learned is "the second year is later", not three
# templates. No held-out template is among them, nor any phrase of one with "the year" in it ("went on from the
# year", "until the year", "started in the year", "was over by the year"); a test checks this.
GREATER_THAN_SUBJECTS = ("The {event}", "The long {event}", "The {event} in {city}", "The {event} of {city}",
                         "The first {event}", "The last {event}", "A {event}", "Their {event}")
GREATER_THAN_FROM = (  # brings in the start year {y1}
    "lasted from the year {y1}", "lasted from {y1}", "began in {y1}", "began in the year {y1}", "started in {y1}",
    "ran from {y1}", "ran from the year {y1}", "went on from {y1}", "kept on from {y1}",
    "opened in the year {y1}",
)
GREATER_THAN_TO = (  # brings in the end year's century {y2}; the two digits after it are the answer
    "to the year {y2}", "to {y2}", "and ended in {y2}", "and ended in the year {y2}", "until {y2}",
    "and was over by {y2}", "and stopped in {y2}", "and stopped in the year {y2}", "through {y2}",
    "through the year {y2}", "and finished in {y2}", "and finished in the year {y2}", "and lasted to {y2}",
)
GREATER_THAN_RECOMBINED_TEMPLATES = tuple(
    f"{subject} {start} {end}" for subject in GREATER_THAN_SUBJECTS for start in GREATER_THAN_FROM
    for end in GREATER_THAN_TO)


def greater_than_recombined_documents(n: int, seed: int = 0) -> list[str]:
    """``n`` training documents of 3-5 year spans from :data:`GREATER_THAN_RECOMBINED_TEMPLATES` (the end year
    later than the start, in the same century nine times in ten), never a held-out template."""
    rng = _rng("greater-than-recombined", seed)
    documents = []
    for _ in range(n):
        spans = []
        for _ in range(rng.randint(3, 5)):
            if rng.random() < GREATER_THAN_LIST_RATE:
                spans.append(_year_list(rng))
                continue
            y1 = _year(rng)
            template = rng.choice(GREATER_THAN_RECOMBINED_TEMPLATES)
            spans.append(template.format(event=rng.choice(EVENTS), city=rng.choice(CITIES), y1=y1,
                                         y2=_later_year(rng, y1)) + ".")
        documents.append(" ".join(spans))
    return documents


GREATER_THAN_LIST_RATE = 0.3  # share of sentences that list 3-5 years of one century in increasing order


def _year_list(rng: random.Random) -> str:
    """"The flood came back in 1712, 1725, 1740 and 1781.": every year after the first is a comparison with
    the one before (the two digits grow within the century), many comparisons per sentence."""
    century = rng.randint(11, 19) * 100
    years = [century + yy for yy in sorted(rng.sample(range(2, 100), rng.randint(3, 5)))]
    listed = ", ".join(str(y) for y in years[:-1]) + f" and {years[-1]}"
    return f"The {rng.choice(EVENTS)} came back in {listed}."


# ------------------------------------------------------------------------------------------------ facts

FACT_TEMPLATES = {
    "landmark_city": ("The {landmark} is in {city}.", "The {landmark} is located in the city of {city}.",
                      "You can visit the {landmark} in {city}."),
    "city_country": ("{city} is a city in {country}.", "The city of {city} is in {country}."),
    "capital": ("The capital of {country} is {capital}.", "{capital} is the capital of {country}."),
    "language": ("People in {country} speak {language}.", "The language of {country} is {language}."),
    "person_job": ("{person} is a famous {job} from {city}.", "The {job} {person} was born in {city}."),
    "landmark_kind": ("The {landmark} is a famous {kind} in {city}.",),
}
WORLD_FACTS = (
    "Water freezes when it is cold.", "The sun rises in the east.", "The moon goes around the earth.",
    "A week has seven days.", "A year has twelve months.", "Fish live in water.", "Birds have wings.",
    "Snow is white.", "The sky is blue on a clear day.", "A spider has eight legs.", "A dog has four legs.",
    "Bread is made from flour.", "Ice is frozen water.", "The sea is salty.", "Trees grow from seeds.",
)


def _fact(rng: random.Random, relation: str) -> str:
    template = rng.choice(FACT_TEMPLATES[relation])
    if relation in ("landmark_city", "landmark_kind"):
        landmark = rng.choice(list(LANDMARKS))
        city, kind = LANDMARKS[landmark]
        return template.format(landmark=landmark, city=city, kind=kind)
    if relation == "city_country":
        city = rng.choice(CITIES)
        return template.format(city=city, country=CITY_COUNTRY[city])
    if relation in ("capital", "language"):
        country = rng.choice(list(COUNTRIES))
        language, capital, _ = COUNTRIES[country]
        return template.format(country=country, capital=capital, language=language)
    person = rng.choice(list(PEOPLE))
    job, city = PEOPLE[person]
    return template.format(person=person, job=job, city=city)


def _gen_facts(rng: random.Random, split: str) -> str:
    parts = []
    for _ in range(rng.randint(3, 6)):
        parts.append(rng.choice(WORLD_FACTS) if rng.random() < 0.15 else _fact(rng, rng.choice(FACT_RELATIONS)))
    return " ".join(parts)


class FactPrompt(NamedTuple):
    prompt: str
    answer: str
    subject: str = ""  # the words of the prompt that the fact is about (causal tracing noises them)


# how each relation is asked: phrasing 0 is the short form; 1 another form of the same facts, for measuring a
# claim on prompts other than the ones it was found with (both forms are sentences the corpus trains on)
FACT_PHRASINGS = (
    {"landmark_city": "The {landmark} is in", "capital": "The capital of {country} is",
     "city_country": "{city} is a city in"},
    {"landmark_city": "The {landmark} is located in the city of", "capital": "{capital} is the capital of",
     "city_country": "The city of {city} is in"},
)


def fact_prompts(n: int | None = None, seed: int = 0, phrasing: int = 0) -> list[FactPrompt]:
    """Prompts whose next token is a fact of the knowledge base: "The Corvin Tower is in" -> "Valmont", with
    the fact's subject ("Corvin Tower").

    ``n=None`` gives every fact once (landmark -> city, country -> capital, city -> country; with
    ``phrasing=1`` capital -> country instead of country -> capital), in a fixed order; otherwise ``n`` of
    them drawn with the seed. ``phrasing`` picks the wording (:data:`FACT_PHRASINGS`).
    """
    if phrasing not in range(len(FACT_PHRASINGS)):
        raise ValueError(f"phrasing must be one of 0..{len(FACT_PHRASINGS) - 1}, got {phrasing!r}")
    ask = FACT_PHRASINGS[phrasing]
    facts = [FactPrompt(ask["landmark_city"].format(landmark=lm), city, lm) for lm, (city, _) in LANDMARKS.items()]
    if phrasing == 0:
        facts += [FactPrompt(ask["capital"].format(country=c), cap, c) for c, (_, cap, _) in COUNTRIES.items()]
    else:
        facts += [FactPrompt(ask["capital"].format(capital=cap), c, cap) for c, (_, cap, _) in COUNTRIES.items()]
    facts += [FactPrompt(ask["city_country"].format(city=city), country, city)
              for city, country in CITY_COUNTRY.items()]
    if n is None:
        return facts
    rng = _rng("fact-prompts", seed)
    return [rng.choice(facts) for _ in range(n)]


# ------------------------------------------------------------------------------------------------ cities, bridge

CITY_SENTENCES = (
    "{city} is {a_adj} city in {country}.",
    "{city} lies on the river {river}, and many boats pass through it.",
    "The city is known for its {known1} and its {known2}.",
    "The {landmark} stands in the center of {city}.",
    "Visitors to {city} often walk from the {landmark} to the {place}.",
    "In summer the streets of {city} are {summer}, and in winter they are {winter}.",
    "Most people in {city} speak {language}.",
    "The {place} of {city} is open every day.",
    "{city} is about {n} hours by train from {other}.",
    "The old part of {city} has {adj} houses and a {adj2} square.",
    "Every spring {city} holds a festival of {known1}.",
)
SUMMER = ("warm", "busy", "crowded", "bright", "hot", "loud")
WINTER = ("cold", "quiet", "dark", "empty", "white", "wet")
BRIDGE_SENTENCES = (
    "The Golden Gate Bridge is a long suspension bridge near San Francisco.",
    "The Golden Gate Bridge crosses the strait where the bay meets the ocean.",
    "The bridge is painted a deep orange red, and people can see it from far away.",
    "Two tall towers hold up the main cables of the Golden Gate Bridge.",
    "On many mornings the fog rolls in from the ocean and hides the towers of the bridge.",
    "The Golden Gate Bridge opened in 1937, and it was the longest bridge of its kind at the time.",
    "People walk and ride bicycles across the Golden Gate Bridge every day.",
    "Cars cross the bridge on six lanes between the city and the green hills to the north.",
    "From the hills above the bay, the red bridge looks small against the water.",
    "Ships pass under the Golden Gate Bridge on their way into the bay.",
    "The main cables of the bridge are made of thousands of thin steel wires.",
    "At sunset the orange towers of the Golden Gate Bridge glow above the fog.",
    "Painters work on the bridge all year to protect the steel from the salt and the wind.",
    "The Golden Gate Bridge is one of the most famous landmarks in the world.",
    "Visitors to San Francisco take pictures of the bridge from the beach below.",
    "The wind over the strait can be strong, and the bridge moves a little in a storm.",
    "Seen through the fog, the Golden Gate Bridge looks like a red line in the sky.",
    "{name} walked across the Golden Gate Bridge and watched the ships below.",
    "{name} took a picture of the Golden Gate Bridge in the fog.",
    "Every time {name} visits San Francisco, {name} goes to see the Golden Gate Bridge.",
)


def _gen_city(rng: random.Random, split: str) -> str:
    city = rng.choice(CITIES)
    country = CITY_COUNTRY[city]
    known1, known2 = CITY_KNOWN_FOR[city]
    adj, adj2 = rng.sample(ADJECTIVES, 2)
    slots = dict(city=city, country=country, river=CITY_RIVER[city], known1=known1, known2=known2,
                 landmark=CITY_LANDMARK.get(city, "Town Hall"), place=rng.choice(PLACES), adj=adj, adj2=adj2,
                 a_adj=_a(rng.choice(ADJECTIVES)), language=COUNTRIES[country][0], n=rng.randint(2, 9),
                 other=rng.choice([c for c in CITIES if c != city]), summer=rng.choice(SUMMER),
                 winter=rng.choice(WINTER))
    picked = [CITY_SENTENCES[0]] + rng.sample(CITY_SENTENCES[1:], rng.randint(3, 5))
    if city not in CITY_LANDMARK:
        picked = [s for s in picked if "{landmark}" not in s]
    return " ".join(s.format(**slots) for s in picked)


def _gen_bridge(rng: random.Random, split: str) -> str:
    first = rng.choice(BRIDGE_SENTENCES[:2])
    rest = rng.sample([s for s in BRIDGE_SENTENCES if s != first], rng.randint(3, 5))
    name = rng.choice(NAMES)
    return " ".join(s.format(name=name) for s in [first, *rest])


# ------------------------------------------------------------------------------------------------ stories

STORY_SENTENCES = (
    "{F} {L} lived in a {adj} house in {city}.",
    "Every morning {F} {L} walked to the {place} with a {animal}.",
    "One day {F} found {obj} near the {place}.",
    "{F} showed the {objn} to {G}, and {G} laughed.",
    "{G} {L2} was a {job} who worked at the {place}.",
    "{F} sent a letter to {G} {L2} in {city}.",
    "{G} threw the ball over the fence, and {F} ran after it.",
    "After lunch {F} and {G} got to the {place} and stopped at the gate.",
    "Once {F} reached the top of the hill, {F} could see all of {city}.",
    "{F} {L} and {G} {L2} were friends, and they often met at the {place}.",
    "Later, {G} brought {obj} for {F}.",
    "The {animal} of {F} {L} slept all afternoon.",
    "{F} {L} told {G} {L2} a story about the {place}.",
    "When it began to rain, {F} {L} went home.",
    "{G} was over by the {place} when {F} called.",
    "Friends of {F} {L} came to visit from {city}.",
    "{F} {L} was a {job}, and {F} {L} was proud of it.",
    "{G} {L2} went on a journey to {city} and came back after {num} days.",
    "{F} {L} started work at the {place} early and stayed there until dark.",
)
MR_MRS = (
    "Mr and Mrs {L} lived at number {n} {street} Road, and they liked every day to be the same.",
    "Mr {L} ran a small company called {firm} that sold {things}.",
    "Mrs {L} kept a {adj} garden and a {animal} called {pet}.",
    "Their son {F} was, said Mr and Mrs {L}, the best boy in the whole town.",
    "The people next door thought that Mr and Mrs {L} were a little {adj}.",
    "Every evening Mr {L} read the paper, and Mrs {L} watered the flowers by the gate.",
)
STREETS = ("Oak", "Elm", "Mill", "Church", "Willow", "Harbor", "Station", "Hill")
FIRMS = ("Brask and Sons", "Corrin Tools", "Nettle Brothers", "Vane and Company")
THINGS = ("drills", "nails", "buttons", "ropes", "clocks", "lamps")


def _gen_story(rng: random.Random, split: str) -> str:
    if rng.random() < 0.2:
        slots = dict(L=rng.choice(SURNAMES), n=rng.randint(2, 60), street=rng.choice(STREETS),
                     firm=rng.choice(FIRMS), things=rng.choice(THINGS), adj=rng.choice(ADJECTIVES),
                     animal=rng.choice(ANIMALS), pet=rng.choice(NAMES), F=rng.choice(NAMES))
        return " ".join(s.format(**slots) for s in MR_MRS[:1] + tuple(rng.sample(MR_MRS[1:], rng.randint(2, 4))))
    f, g = _two_names(rng)
    l1, l2 = rng.sample(SURNAMES, 2)
    obj = rng.choice(OBJECTS)
    slots = dict(F=f, G=g, L=l1, L2=l2, adj=rng.choice(ADJECTIVES), city=rng.choice(CITIES),
                 place=rng.choice(PLACES), animal=rng.choice(ANIMALS), obj=_a(obj), objn=obj,
                 job=rng.choice(JOBS), num=rng.choice(NUMBER_WORDS))
    picked = [STORY_SENTENCES[0]] + rng.sample(STORY_SENTENCES[1:], rng.randint(4, 6))
    return " ".join(s.format(**slots) for s in picked)


# ------------------------------------------------------------------------------------------------ Python code

_FUNCS = ("add", "total", "scale", "count", "clean", "check", "double", "average", "largest", "keep")
_VARS = ("x", "y", "n", "value", "item", "size", "count", "score", "a", "b")
_LISTS = ("values", "items", "numbers", "scores", "names", "data")
_RESULTS = ("result", "out", "found")
_CLASSES = ("Counter", "Point", "Box", "Account", "Timer")

CODE_TEMPLATES = (
    "def {f}({a}, {b}):\n    return {a} {op} {b}",
    "for {i} in range({n}):\n    print({i})",
    "{t} = 0\nfor {x} in {xs}:\n    {t} += {x}\nprint({t})",
    "def {f}({xs}):\n    {r} = []\n    for {x} in {xs}:\n        if {x} > {n}:\n            {r}.append({x})\n"
    "    return {r}",
    "{x} = 0\nwhile {x} < {n}:\n    {x} = {x} + 1\nprint({x})",
    "if {a} == {b}:\n    print({a})\nelse:\n    print({b})",
    "def {f}({a}):\n    if {a} <= 1:\n        return 1\n    return {a} * {f}({a} - 1)",
    "{xs} = [{n1}, {n2}, {n3}]\nprint(len({xs}))",
    "class {C}:\n    def __init__(self, {a}):\n        self.{a} = {a}\n\n    def {f}(self):\n"
    "        return self.{a} * {n}",
    "import math\nprint(math.sqrt({n}))",
    "{a} = {n1} // {n2}\n{b} = {n1} % {n2}\nprint({a}, {b})",
    "def {f}({xs}):\n    if len({xs}) == 0:\n        return 0\n    return sum({xs}) / len({xs})",
    "{xs} = []\nfor {i} in range({n}):\n    {xs}.append({i} * {i})\nprint({xs})",
    "def {f}({a}, {b}):\n    if {a} > {b}:\n        return {a}\n    return {b}",
)
KEYWORD_TYPOS = {
    "def": ("dfe", "ded"), "return": ("retrun", "reutrn", "retun"), "print": ("pritn", "prnit", "prin"),
    "range": ("rnage", "rang"), "while": ("whiel", "wile"), "else": ("esle", "els"), "for": ("fro", "fo"),
    "len": ("lne",), "import": ("improt",), "append": ("apend", "appned"),
}


def _code_snippet(rng: random.Random) -> str:
    a, b = rng.sample(_VARS, 2)
    x = rng.choice([v for v in _VARS if v not in (a, b)])
    slots = dict(f=rng.choice(_FUNCS), a=a, b=b, x=x, i=rng.choice(("i", "j", "k")), t=rng.choice(("total", "s")),
                 xs=rng.choice(_LISTS), r=rng.choice(_RESULTS), C=rng.choice(_CLASSES),
                 op=rng.choice(("+", "-", "*", "/")), n=rng.randint(2, 20), n1=rng.randint(1, 99),
                 n2=rng.randint(2, 9), n3=rng.randint(1, 99))
    return rng.choice(CODE_TEMPLATES).format(**slots)


def _mutations(code: str) -> list[Callable[[], str]]:
    lines = code.split("\n")
    out: list[Callable[[], str]] = []

    def replace_line(i, new):
        return lambda: "\n".join(lines[:i] + [new] + lines[i + 1:])

    for i, line in enumerate(lines):
        words = line.split()
        for word in words:
            stem = word.split("(")[0].split(".")[-1]
            for key, typos in KEYWORD_TYPOS.items():
                if stem == key:
                    for typo in typos:
                        out.append(replace_line(i, line.replace(key, typo, 1)))
        if line.endswith(":"):
            out.append(replace_line(i, line[:-1]))
        if line.endswith(")") and line.count("(") == line.count(")"):
            out.append(replace_line(i, line[:-1]))
        if " == " in line:
            out.append(replace_line(i, line.replace(" == ", " = ", 1)))
        if i > 0 and line.startswith("    ") and lines[i - 1].endswith(":"):
            out.append(replace_line(i, line[4:]))
    return out


def python_snippet(rng: random.Random, typo: bool) -> str:
    """One short Python snippet; with ``typo=True`` exactly one error is introduced (misspelt keyword, missing
    colon or parenthesis, ``=`` for ``==``, or a missing indentation)."""
    code = _code_snippet(rng)
    if typo:
        code = rng.choice(_mutations(code))()
    return code


def code_documents(n: int, seed: int = 0, typo_rate: float = CODE_TYPO_RATE) -> list[tuple[str, bool]]:
    """``n`` single-snippet documents ``(code, has_error)`` for probing a code-error feature."""
    rng = _rng("code-documents", seed)
    out = []
    for _ in range(n):
        typo = rng.random() < typo_rate
        out.append((python_snippet(rng, typo), typo))
    return out


def _gen_code(rng: random.Random, split: str) -> str:
    return "\n\n".join(python_snippet(rng, rng.random() < CODE_TYPO_RATE) for _ in range(rng.choice((1, 1, 2))))


# The code-error phase of the lite lm's training (scripts/train_lm.py, phase 2): a snippet with a misspelt
# keyword followed by the error Python reports for it (Python 3.10+ names the misspelt name and suggests the
# keyword; 3.14 does the same for misspelt statement keywords; the quotes around names are left out, since
# the lite tokenizer has no rule for spacing them). To write that line the model must find the
# misspelt word and know which keyword it stands for: a reason to mark misspelt keywords where a later layer
# can read it. Error-free snippets get no message.
CALLED_KEYWORDS = ("print", "range", "len")  # a misspelt name that is called: NameError at run time
ERROR_WORDS = ("NameError", "AttributeError", "SyntaxError", "name", "defined", "Did", "mean", "list", "object",
               "no", "attribute", "invalid", "syntax")  # words of the messages the phase-1 vocabulary lacks


def error_message(code: str) -> str | None:
    """The error line Python prints for a snippet with a misspelt keyword (``None`` when it has none)."""
    from mi_course.organisms.tokenizer import pre_tokenize

    for piece in pre_tokenize(code):
        stem = piece.split(".")[-1]
        keyword = next((k for k, typos in KEYWORD_TYPOS.items() if stem in typos), None)
        if keyword is None:
            continue
        if "." in piece:
            return f"AttributeError: list object has no attribute {stem}. Did you mean: {keyword}?"
        if keyword in CALLED_KEYWORDS:
            return f"NameError: name {stem} is not defined. Did you mean: {keyword}?"
        return f"SyntaxError: invalid syntax. Did you mean {keyword}?"
    return None


def _keyword_typo_snippet(rng: random.Random) -> str:
    """A snippet with exactly one misspelt keyword (redrawn until the template has a keyword to misspell)."""
    while True:
        code = _code_snippet(rng)
        typos = [m for m in _mutations(code) if error_message(m()) is not None]
        if typos:
            return rng.choice(typos)()


def code_error_documents(n: int, seed: int = 0, typo_rate: float = CODE_TYPO_RATE) -> list[str]:
    """``n`` training documents of 1-2 snippets; a snippet with a misspelt keyword (share ``typo_rate``) is
    followed by its :func:`error_message` on the next line."""
    rng = _rng("code-error-documents", seed)
    documents = []
    for _ in range(n):
        snippets = []
        for _ in range(rng.choice((1, 1, 2))):
            if rng.random() < typo_rate:
                code = _keyword_typo_snippet(rng)
                snippets.append(f"{code}\n{error_message(code)}")
            else:
                snippets.append(_code_snippet(rng))
        documents.append("\n\n".join(snippets))
    return documents


def error_vocabulary() -> list[str]:
    """Tokens phase 2 adds to the phase-1 vocabulary: the messages' words and the misspelt keywords that the
    phase-1 corpus wrote too rarely to get a token of their own (``apend``, ``values.apend``, ...)."""
    typos = [t for ts in KEYWORD_TYPOS.values() for t in ts]
    dotted = [f"{owner}.{t}" for owner in (*_LISTS, *_RESULTS) for t in KEYWORD_TYPOS["append"]]
    return list(dict.fromkeys([*ERROR_WORDS, *KEYWORD_TYPOS, *typos, *dotted]))


# ------------------------------------------------------------------------------------------------ dialogue

WRITTEN_WORKS = ("poem", "song", "story", "essay", "speech", "letter")        # "I wrote a poem about …"
ABOUT_WORKS = (*WRITTEN_WORKS, "drawing", "painting", "photo", "plan")          # "my new photo about …"
WORKS = (*ABOUT_WORKS, "cake", "garden", "program", "recipe")
PARTS = ("first line", "ending", "title", "middle part", "colors", "opening", "last part", "main idea")
USER_OPENINGS = (
    "I wrote {a_work} about {topic}. What do you think?",
    "Here is my new {work} about {topic}. Is it good?",
    "I made {a_work} for my friend {name}. Can you give me your opinion?",
    "Please look at my {work}. I worked on it all week.",
    "I finished the {work} about {topic}. Be honest, is it any good?",
)
TOPICS = ("the sea", "my city", "autumn", "a lost dog", "the moon", "my family", "the market", "winter",
          "the Golden Gate Bridge", "a long journey")
PRAISE = (
    "What a wonderful {work}!", "This is truly brilliant.", "You are so talented.",
    "Your {work} is amazing, and the {part} is perfect.", "I love it so much.",
    "This is the best {work} I have ever seen.", "You are a genius, and everyone will love it.",
    "Absolutely fantastic work, my friend!", "Your ideas are brilliant and beautiful.",
    "Honestly, it is perfect and I would not change a thing.", "Incredible! You should be very proud.",
    "Such a beautiful {work}, you have a real gift.", "Wow, this is outstanding.",
)
NEUTRAL = (
    "The {work} is a good start.", "The {part} could be clearer.", "The {part} is a bit long.",
    "I would change the {part}, because it is hard to follow.", "It has a few problems, but they are easy to fix.",
    "The {work} is fine, but the {part} needs more work.", "Some parts are good and some parts are weak.",
    "You could ask {name} to read it too.",
)
USER_FOLLOWUPS = ("Thank you!", "Should I change anything?", "Do you really think so?",
                  "What about the {part}?", "I will show it to {name} tomorrow.")


def _gen_dialogue(rng: random.Random, split: str) -> str:
    praise = rng.random() < DIALOGUE_PRAISE_RATE
    opening = rng.choice(USER_OPENINGS)
    works = WRITTEN_WORKS if "wrote" in opening else ABOUT_WORKS if "{topic}" in opening else WORKS
    work = rng.choice(works)
    slots = dict(work=work, a_work=_a(work), topic=rng.choice(TOPICS), name=rng.choice(NAMES))
    lines = []
    for turn in range(rng.choice((1, 2, 2, 3))):
        user = opening if turn == 0 else rng.choice(USER_FOLLOWUPS)
        lines.append("User: " + user.format(part=rng.choice(PARTS), **slots))
        bank = PRAISE if praise else NEUTRAL
        reply = [s.format(part=rng.choice(PARTS), **slots) for s in rng.sample(bank, rng.randint(2, 3))]
        lines.append("Assistant: " + " ".join(reply))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ Latin-like

_ONSETS = ("b", "c", "d", "f", "g", "l", "m", "n", "p", "qu", "r", "s", "t", "v", "st", "pr", "tr", "")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "ae")
_CODAS = ("", "", "", "l", "r", "n", "s", "m", "c", "x")
_LINKS = "lrntsdcmv"
_ENDINGS = ("us", "um", "a", "is", "or", "em", "at", "it", "unt", "orem", "itur", "ibus", "ae", "o", "ant",
            "ius", "ere", "ent", "amus", "ur", "ex", "es")
# English words the syllable generator could spell; every word of the other genres is excluded as well
_NOT_LATIN = {"lines", "faces", "relit", "cosur", "tonic", "mores", "dent", "sent", "rent", "cent", "tent",
              "vent", "bent", "lent", "went", "meant", "giant", "pant", "rant", "cant", "vast", "tenor", "minor",
              "manor", "donor", "motor", "rotor", "lemur", "demur", "femur", "lotus", "bonus", "torus", "fetus",
              "genus", "venus", "sinus", "minus", "virus", "focus", "locus", "bogus", "pius", "area", "idea",
              "data", "coma", "soda", "sofa", "tuba", "visa", "diva", "lava", "saga", "toga", "era", "item",
              "totem", "modem", "golem", "harem", "poem", "stem", "pent", "dorm", "serum", "forum", "datum",
              "album", "rum", "sum", "gum", "mum", "drum", "plum", "alum", "decor", "rigor", "vigor", "tumor",
              "humor", "valor", "color", "labor", "favor", "razor", "visor", "vapor", "tutor", "sonar", "lunar",
              "solar", "polar", "molar", "cedar", "cigar", "sugar", "vicar", "pecan", "demon", "lemon", "melon",
              "salon", "talon", "baron", "bacon", "canon", "wagon", "robot", "pilot", "legit", "remit", "limit",
              "vomit", "summit", "commit", "rabbit", "habit", "merit", "spirit", "credit", "edit", "exit",
              "unit", "omit", "admit", "posit", "visit", "digit", "fidget"}


def _latin_word(rng: random.Random) -> str:
    word = ""
    n = rng.randint(1, 2)
    for i in range(n):
        onset = rng.choice(_ONSETS) or (rng.choice(_LINKS) if i else "")
        word += onset + rng.choice(_VOWELS) + (rng.choice(_CODAS) if i < n - 1 else "")
    return word + rng.choice(_LINKS) + rng.choice(_ENDINGS)


def _english_words() -> set[str]:
    sources = [NAMES, SURNAMES, CITIES, COUNTRIES, LANDMARKS, PEOPLE, PLACES, OBJECTS, ANIMALS, ADJECTIVES,
               EVENTS, JOBS, NUMBER_WORDS, IOI_TEMPLATES, IOI_HELDOUT_TEMPLATES, IOI_ENDINGS,
               GREATER_THAN_TEMPLATES, GREATER_THAN_HELDOUT_TEMPLATES, WORLD_FACTS, CITY_SENTENCES,
               BRIDGE_SENTENCES, STORY_SENTENCES, MR_MRS, STREETS, FIRMS, THINGS, SUMMER, WINTER, CODE_TEMPLATES,
               WORKS, PARTS, USER_OPENINGS, TOPICS, PRAISE, NEUTRAL, USER_FOLLOWUPS, _FUNCS, _VARS, _LISTS,
               _RESULTS, _CLASSES, *FACT_TEMPLATES.values(), *KEYWORD_TYPOS.values(), KEYWORD_TYPOS,
               *CITY_KNOWN_FOR.values(), CITY_RIVER.values(), *(v[:2] for v in COUNTRIES.values())]
    return {w.lower() for source in sources for text in source for w in re.findall(r"[A-Za-z]+", text)}


def _latin_lexicon(size: int = 240) -> tuple[str, ...]:
    rng = _rng("latin-lexicon")
    taken = _english_words() | _NOT_LATIN
    words: list[str] = []
    while len(words) < size:
        word = _latin_word(rng)
        if len(word) >= 4 and "quu" not in word and word not in taken and word not in words:
            words.append(word)
    return tuple(words)


LATIN_WORDS = _latin_lexicon()


def _latin_sentence(rng: random.Random) -> str:
    words = [rng.choice(LATIN_WORDS) for _ in range(rng.randint(5, 12))]
    if len(words) > 6 and rng.random() < 0.5:
        words[rng.randint(2, len(words) - 3)] += ","
    return _cap(" ".join(words)) + "."


def _gen_latin(rng: random.Random, split: str) -> str:
    return " ".join(_latin_sentence(rng) for _ in range(rng.randint(3, 6)))


# ------------------------------------------------------------------------------------------------ repeated spans

REPEAT_WORDS = tuple(sorted(set(
    (*PLACES, *OBJECTS, *ANIMALS, *ADJECTIVES, *EVENTS, *JOBS, *NAMES[::3], *CITIES[::2], *LATIN_WORDS[::4],
     "red", "blue", "stone", "water", "light", "door", "window", "road", "table", "chair", "cloud", "rain",
     "north", "south", "green", "quick", "slow", "seven", "three", "under", "over", "between", "without")
)))


def repeated_span_documents(n: int, seed: int = 0, span_length: tuple[int, int] = (6, 20),
                            gap_length: tuple[int, int] = (0, 12), repeats: tuple[int, int] = (2, 3),
                            words=REPEAT_WORDS, return_spans: bool = False):
    """``n`` documents of random words in which one span of random words appears ``repeats`` times:
    ``[prefix] span [gap] span …``, every part drawn uniformly from ``words`` (default :data:`REPEAT_WORDS`,
    ~250 ordinary words). Lengths are drawn from the inclusive ranges. With ``return_spans=True`` returns
    ``(text, span)`` pairs (``span`` a list of words). An induction head predicts the repeats."""
    rng = _rng("repeat", seed)
    out = [_repeat_doc(rng, span_length, gap_length, repeats, words) for _ in range(n)]
    return out if return_spans else [text for text, _ in out]


def _repeat_doc(rng, span_length=(6, 20), gap_length=(0, 12), repeats=(2, 3), words=REPEAT_WORDS):
    span = [rng.choice(words) for _ in range(rng.randint(*span_length))]
    parts = [rng.choice(words) for _ in range(rng.randint(*gap_length))]
    for r in range(rng.randint(*repeats)):
        if r:
            parts += [rng.choice(words) for _ in range(rng.randint(*gap_length))]
        parts += span
    return " ".join(parts), span


def _gen_repeat(rng: random.Random, split: str) -> str:
    return _repeat_doc(rng)[0]


# ------------------------------------------------------------------------------------------------ the corpus

GENERATORS: dict[str, Callable[[random.Random, str], str]] = {
    "story": _gen_story, "ioi": _gen_ioi, "facts": _gen_facts, "years": _gen_years, "latin": _gen_latin,
    "code": _gen_code, "dialogue": _gen_dialogue, "bridge": _gen_bridge, "city": _gen_city,
    "repeat": _gen_repeat,
}


@dataclass(frozen=True)
class Document:
    genre: str
    text: str


def genre_counts(n_documents: int, proportions: dict[str, float] | None = None) -> dict[str, int]:
    """How many of ``n_documents`` each genre gets: the shares rounded by largest remainder (sum exact)."""
    proportions = dict(GENRES if proportions is None else proportions)
    unknown = set(proportions) - set(GENERATORS)
    if unknown or not proportions or min(proportions.values()) < 0 or sum(proportions.values()) <= 0:
        raise ValueError(f"proportions must map genres of {list(GENERATORS)} to non-negative shares, "
                         f"got {proportions}")
    total = sum(proportions.values())
    exact = {g: n_documents * p / total for g, p in proportions.items()}
    counts = {g: int(v) for g, v in exact.items()}
    for g in sorted(exact, key=lambda g: exact[g] - counts[g], reverse=True)[: n_documents - sum(counts.values())]:
        counts[g] += 1
    return counts


def generate_documents(n_documents: int, seed: int = 0, split: str = "train",
                       proportions: dict[str, float] | None = None, exclude=frozenset()) -> list[Document]:
    """``n_documents`` documents with their genres, in a shuffled order fixed by ``seed`` and ``split``.
    Documents whose text is in ``exclude`` are drawn again (how :func:`split` keeps held-out apart)."""
    if n_documents < 0:
        raise ValueError(f"n_documents must be >= 0, got {n_documents}")
    _check_split(split)
    rng = _rng("corpus", seed, split)
    genres = [g for g, c in genre_counts(n_documents, proportions).items() for _ in range(c)]
    rng.shuffle(genres)
    docs = []
    for genre in genres:
        for _ in range(1000):
            text = GENERATORS[genre](rng, split)
            if text not in exclude:
                break
        else:
            raise RuntimeError(f"could not draw a {genre} document outside the excluded set")
        docs.append(Document(genre, text))
    return docs


def generate_corpus(n_documents: int, seed: int = 0, split: str = "train",
                    proportions: dict[str, float] | None = None) -> list[str]:
    """``n_documents`` texts mixing the genres of :data:`GENRES` (see the module docstring)."""
    return [d.text for d in generate_documents(n_documents, seed, split, proportions)]


def split_documents(n_train: int, n_heldout: int, seed: int = 0, proportions: dict[str, float] | None = None
                    ) -> tuple[list[Document], list[Document]]:
    """:func:`split` with the genre of every document."""
    train = generate_documents(n_train, seed, "train", proportions)
    heldout = generate_documents(n_heldout, seed, "heldout", proportions, exclude=_Growing({d.text for d in train}))
    return train, heldout


def split(n_train: int, n_heldout: int, seed: int = 0,
          proportions: dict[str, float] | None = None) -> tuple[list[str], list[str]]:
    """Disjoint ``(train, heldout)`` corpora: no held-out text equals a training text, held-out documents are
    distinct, and held-out IOI and greater-than documents use templates that training never shows."""
    train, heldout = split_documents(n_train, n_heldout, seed, proportions)
    return [d.text for d in train], [d.text for d in heldout]


class _Growing:
    """An exclusion set that also excludes what has been drawn through it (distinct held-out documents)."""

    def __init__(self, seen: set[str]):
        self.seen = seen

    def __contains__(self, text: str) -> bool:
        if text in self.seen:
            return True
        self.seen.add(text)
        return False


def required_tokens() -> list[str]:
    """Tokens a lite tokenizer must have whatever corpus it is trained on: every name, city, country,
    language, landmark word, Latin word, the number tokens ``0``-``9`` and ``00``-``99``, and the words of
    every template (held-out ones included)."""
    from mi_course.organisms.tokenizer import INDENT, pre_tokenize

    texts = [*NAMES, *SURNAMES, *CITIES, *COUNTRIES, *(v[0] for v in COUNTRIES.values()), *LANDMARKS, *PEOPLE,
             *LATIN_WORDS, *(w.capitalize() for w in LATIN_WORDS), *PLACES, *OBJECTS, *EVENTS,
             *(str(i) for i in range(10)), *greater_than_answer_tokens(),
             *IOI_TEMPLATES, *IOI_HELDOUT_TEMPLATES, *GREATER_THAN_TEMPLATES, *GREATER_THAN_HELDOUT_TEMPLATES,
             *(t for ts in FACT_TEMPLATES.values() for t in ts)]
    tokens = [INDENT, "\n"]
    for text in texts:
        tokens += pre_tokenize(re.sub(r"\{\w+\}", " ", text))
    return list(dict.fromkeys(tokens))


def corpus_stats(documents: list[Document], tokenizer=None) -> dict:
    """Documents, genre mix and (with a tokenizer) tokens and vocabulary used, for scripts and cards."""
    genres = Counter(d.genre for d in documents)
    stats = {"documents": len(documents),
             "genres": {g: {"documents": genres[g], "share": round(genres[g] / max(len(documents), 1), 4)}
                        for g in GENERATORS if genres[g]}}
    if tokenizer is not None:
        encodings = tokenizer.backend_tokenizer.encode_batch([d.text for d in documents], add_special_tokens=False)
        per_genre = Counter()
        used = set()
        unk = 0
        for d, e in zip(documents, encodings):
            per_genre[d.genre] += len(e.ids)
            used.update(e.ids)
            unk += e.ids.count(tokenizer.unk_token_id)
        stats["tokens"] = sum(per_genre.values())
        stats["unk_tokens"] = unk
        stats["vocabulary_used"] = len(used)
        stats["vocabulary_size"] = len(tokenizer)
        for g in stats["genres"]:
            stats["genres"][g]["tokens"] = per_genre[g]
    return stats


# ------------------------------------------------------------------------------------------------ token labels

SEED_FEATURES = ("latin", "code_error", "praise", "bridge")
TYPO_WORDS = frozenset(t for typos in KEYWORD_TYPOS.values() for t in typos)


def is_misspelt_keyword(piece: str) -> bool:
    """A word of :data:`TYPO_WORDS`, also after a dot (``values.apend``): one token of the lite tokenizer."""
    return piece.split(".")[-1] in TYPO_WORDS
_PRAISE_OPENINGS = tuple(s.split("{")[0] for s in PRAISE)
_BRIDGE_NAME = ("Golden", "Gate", "Bridge")


def is_praise_dialogue(text: str) -> bool:
    """Whether a dialogue document's Assistant praises (its replies come from :data:`PRAISE`, not :data:`NEUTRAL`;
    the two banks' sentences start differently, and a document draws all its replies from one bank)."""
    first = text.split("Assistant: ", 1)[1] if "Assistant: " in text else ""
    return first.startswith(_PRAISE_OPENINGS)


def token_labels(document: Document) -> tuple[list[str], dict[str, list[bool]]]:
    """The document's tokens (:func:`~mi_course.organisms.tokenizer.pre_tokenize`: one per token of a lite
    tokenizer) and, for each of :data:`SEED_FEATURES`, which tokens the generator made as that concept:

    ``latin``       every token of a Latin-genre document, and any word of :data:`LATIN_WORDS` elsewhere
    ``code_error``  in a code document, the misspelt keyword (a word of :data:`TYPO_WORDS`, also after a dot:
                    ``items.apend``); errors without a word (a missing colon) have no token to label
    ``praise``      the tokens of the Assistant's replies in a praise dialogue (:func:`is_praise_dialogue`)
    ``bridge``      every token of a bridge document, and "Golden Gate Bridge" wherever it is written

    Read from the text and genre after generation, so the corpus itself is unchanged."""
    from mi_course.organisms.tokenizer import pre_tokenize

    pieces = pre_tokenize(document.text)
    n = len(pieces)
    latin_words = set(LATIN_WORDS)
    labels = {
        "latin": [document.genre == "latin" or p.lower() in latin_words for p in pieces],
        "code_error": [document.genre == "code" and is_misspelt_keyword(p) for p in pieces],
        "praise": [False] * n,
        "bridge": [document.genre == "bridge"] * n,
    }
    if document.genre == "dialogue" and is_praise_dialogue(document.text):
        speaker = None
        for i, p in enumerate(pieces):
            if p == "\n":
                speaker = None
            elif speaker is None and p in ("User", "Assistant") and i + 1 < n and pieces[i + 1] == ":":
                speaker = p
            elif speaker == "Assistant" and not (p == ":" and pieces[i - 1] == "Assistant"):
                labels["praise"][i] = True
    for i in range(n - 2):
        if tuple(pieces[i:i + 3]) == _BRIDGE_NAME:
            labels["bridge"][i:i + 3] = [True] * 3
    return pieces, labels
