"""Attribute-aware negative prompts (thesis 4.10): SDXL's priors override a prompt ("pitch-black irises" comes
out blue), so each attribute carries a vocabulary of what to push away from, plus the competing values of
whatever the prompt asks for."""

from __future__ import annotations

import re

BASE_NEGATIVE = "distorted, artefact, unnatural, blurry, low quality, disfigured, malformed"

NEGATIVE_VOCABULARY: dict[str, str] = {
    "hair": "bald patches, wig seams, hat, helmet, unnatural hairline, hair merging into skin",
    "lips": "smeared lipstick, lipstick on teeth, cracked lips, extra teeth, asymmetric mouth",
    "skin": "plastic skin, waxy skin, blotches, over-smoothed skin, makeup artefacts, uneven tone",
    "eyes": "cross-eyed, asymmetric pupils, mismatched eyes, extra pupils, glowing eyes, closed eyes",
    "eyebrows": "unibrow, patchy eyebrows, eyebrows merging with hair, asymmetric eyebrows",
    "glasses": "broken frames, warped lenses, frames merging into skin, asymmetric glasses",
    "earrings": "floating jewellery, deformed ears, mismatched earrings",
    "necklace": "floating jewellery, broken chain, necklace merging into skin",
    "hat": "floating hat, hat merging into hair, deformed head",
    "clothing": "torn fabric, extra arms, merged garments, text, logo",
    "nose": "crooked nose, double nostrils, asymmetric nostrils",
    "ears": "deformed ears, extra ears, asymmetric ears",
    "neck": "elongated neck, double chin artefacts, neck seams",
    "mouth": "extra teeth, deformed teeth, asymmetric mouth",
}

# Competing values per attribute: groups (colour, texture, ...) of families of words that mean the same value.
# When a prompt names a family, the other families of its group become negatives, named by their first word
# ("dark brown eyes" -> "blue eyes, green eyes, grey eyes, ..."); a group the prompt does not touch adds nothing.
COMPETING_VALUES: dict[str, tuple[tuple[tuple[str, ...], ...], ...]] = {
    "eyes": (
        (
            ("brown", "dark", "black", "chocolate"),
            ("blue",),
            ("green", "emerald"),
            ("grey", "gray", "silver"),
            ("hazel",),
            ("amber", "golden"),
        ),
    ),
    "hair": (
        (
            ("black", "jet", "raven"),
            ("brown", "brunette", "chestnut"),
            ("blonde", "blond", "golden", "platinum"),
            ("red", "auburn", "ginger", "copper"),
            ("grey", "gray", "silver", "white"),
            ("pink",),
            ("purple", "violet", "lavender"),
            ("blue", "teal"),
            ("green",),
        ),
        (("curly", "coily", "kinky"), ("straight", "sleek"), ("wavy",)),
        (("short", "cropped"), ("long",)),
    ),
    "eyebrows": (
        (("thick", "bushy", "full"), ("thin", "sparse", "pencil")),
        (("dark", "black", "brown"), ("light", "blonde", "blond"), ("grey", "gray", "white")),
    ),
    "lips": (
        (
            ("red", "crimson", "scarlet", "cherry"),
            ("pink", "rose"),
            ("nude", "beige"),
            ("purple", "plum", "berry", "violet"),
            ("coral", "orange", "peach"),
            ("black",),
        ),
        (("matte",), ("glossy", "shiny", "gloss")),
    ),
}


def _terms(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _conflicts(attribute: str, prompt_words: set[str]) -> list[str]:
    out = []
    for group in COMPETING_VALUES.get(attribute, ()):
        asked = [family for family in group if prompt_words & set(family)]
        if asked:
            out.extend(f"{family[0]} {attribute}" for family in group if family not in asked)
    return out


def negative_prompt(attribute: str, prompt: str, caller_negative: str = "", *, raw: bool = False) -> str:
    """The caller's negative prompt merged with the attribute's vocabulary, conflict terms and the base negative;
    de-duplicated case-insensitively, never repeating a word the prompt itself asks for."""
    if raw:
        return caller_negative.strip()
    key = attribute.strip().lower()
    prompt_words = _words(prompt)
    candidates = [
        *_terms(caller_negative),
        *_conflicts(key, prompt_words),
        *_terms(NEGATIVE_VOCABULARY.get(key, "")),
        *_terms(BASE_NEGATIVE),
    ]
    seen: set[str] = set()
    kept = []
    for term in candidates:
        folded = term.lower()
        if folded in seen:
            continue
        seen.add(folded)
        # A term the prompt asks for ("hat" in "a red hat") would pull against it.
        term_words = _words(folded)
        if term_words and term_words <= prompt_words:
            continue
        kept.append(term)
    return ", ".join(kept)
