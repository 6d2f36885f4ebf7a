"""Names that look alike: a person enrolled as "Оbama" (Cyrillic О) is a second person who
looks the same in every list. The skeleton maps the Cyrillic and Greek letters that look like
Latin ones, drops accents and case; two names with one skeleton are flagged, not refused."""
import unicodedata
from typing import Iterable, List

_LOOKALIKES = dict(zip(
    u"АВЕЗКМНОРСТУХЅІЈаеорсуxхѕіјԁɡΑΒΕΖΗΙΚΜΝΟΡΤΥΧονιρτ",
    u"ABE3KMHOPCTYXSIJaeopcyxxsijdgABEZHIKMNOPTYXovipt"))


def skeleton(name):
    # type: (str) -> str
    text = u"".join(_LOOKALIKES.get(c, c) for c in unicodedata.normalize("NFKD", name))
    text = u"".join(c for c in text if not unicodedata.combining(c))
    return u" ".join(text.casefold().split())


def confusable_with(name, existing):
    # type: (str, Iterable[str]) -> List[str]
    """The existing names other than `name` that look the same as it."""
    key = skeleton(name)
    return sorted(n for n in existing if n != name and skeleton(n) == key)
