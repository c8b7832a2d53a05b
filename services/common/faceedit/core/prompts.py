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

# When a prompt names one of these values for an attribute, the others of the group become negatives.
COMPETING_VALUES: dict[str, tuple[tuple[str, ...], ...]] = {
    "eyes": (("brown", "dark", "black", "blue", "green", "grey", "gray", "hazel", "amber"),),
    "hair": (
        ("black", "brown", "blonde", "blond", "red", "auburn", "ginger", "grey", "gray", "white", "silver"),
        ("purple", "pink", "blue", "green"),
        ("curly", "straight", "wavy"),
    ),
    "eyebrows": (("thick", "thin"), ("dark", "light", "blonde", "black", "brown")),
    "lips": (("red", "pink", "nude", "rose", "purple", "black", "coral", "plum"), ("matte", "glossy")),
}


def _terms(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _conflicts(attribute: str, prompt: str) -> list[str]:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    out = []
    for group in COMPETING_VALUES.get(attribute, ()):
        asked = words & set(group)
        if asked:
            out.extend(f"{value} {attribute}" for value in group if value not in asked)
    return out


def negative_prompt(attribute: str, prompt: str, caller_negative: str = "", *, raw: bool = False) -> str:
    """The caller's negative prompt merged with the attribute's vocabulary, conflict terms and the base negative;
    de-duplicated case-insensitively, never repeating a word the prompt itself asks for."""
    if raw:
        return caller_negative.strip()
    key = attribute.strip().lower()
    candidates = [
        *_terms(caller_negative),
        *_conflicts(key, prompt),
        *_terms(NEGATIVE_VOCABULARY.get(key, "")),
        *_terms(BASE_NEGATIVE),
    ]
    prompt_words = set(re.findall(r"[a-z]+", prompt.lower()))
    seen: set[str] = set()
    kept = []
    for term in candidates:
        folded = term.lower()
        if folded in seen:
            continue
        seen.add(folded)
        term_words = set(re.findall(r"[a-z]+", folded))
        # A vocabulary term the caller asked for ("hat" in "a red hat") would fight the prompt.
        if term_words and term_words <= prompt_words:
            continue
        kept.append(term)
    return ", ".join(kept)
