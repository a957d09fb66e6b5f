"""Container names: dockerd's validation rule and its random ``adjective_surname`` names."""

from __future__ import annotations

import random
import re

from ..errors import invalid

__all__ = ["RESTRICTED_NAME_CHARS", "random_name", "validate_name"]

RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_PATTERN = re.compile(rf"^{RESTRICTED_NAME_CHARS}+$")

_LEFT = (
    "admiring",
    "adoring",
    "affectionate",
    "amazing",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "confident",
    "cool",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elastic",
    "elegant",
    "epic",
    "exciting",
    "festive",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "happy",
    "hopeful",
    "infallible",
    "inspiring",
    "intelligent",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "nice",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "relaxed",
    "reverent",
    "romantic",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "stupefied",
    "suspicious",
    "sweet",
    "tender",
    "thirsty",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "vigorous",
    "wizardly",
    "wonderful",
    "youthful",
    "zealous",
    "zen",
)
_RIGHT = (
    "albattani",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bell",
    "bhabha",
    "borg",
    "bose",
    "brahmagupta",
    "carson",
    "cerf",
    "chandrasekhar",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "easley",
    "einstein",
    "elion",
    "euclid",
    "euler",
    "feistel",
    "fermat",
    "feynman",
    "galileo",
    "gauss",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hodgkin",
    "hopper",
    "hypatia",
    "jackson",
    "johnson",
    "kalam",
    "keller",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "mayer",
    "mccarthy",
    "meitner",
    "mirzakhani",
    "morse",
    "napier",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "perlman",
    "pike",
    "poincare",
    "ramanujan",
    "ritchie",
    "shannon",
    "sinoussi",
    "stonebraker",
    "swartz",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "villani",
    "wilson",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
)


def random_name(taken: set[str], rng: random.Random | None = None) -> str:
    """A free ``adjective_surname`` name (a numeric suffix after collisions, as moby's namesgenerator)."""
    rng = rng or random.Random()
    for attempt in range(64):
        name = f"{rng.choice(_LEFT)}_{rng.choice(_RIGHT)}"
        if attempt > 5:
            name += str(rng.randint(0, 9))
        if name not in taken:
            return name
    return f"container_{rng.getrandbits(32):08x}"


def validate_name(name: str) -> str:
    """Return the name without its leading slash or raise dockerd's 400."""
    bare = name.removeprefix("/")
    if not _PATTERN.match(bare):
        raise invalid(f"Invalid container name ({name}), only {RESTRICTED_NAME_CHARS} are allowed")
    return bare
