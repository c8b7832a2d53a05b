"""Attribute-aware negative prompts (thesis 4.10): vocabulary, competing values, de-duplication, raw mode."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from faceedit.core.prompts import BASE_NEGATIVE, COMPETING_VALUES, NEGATIVE_VOCABULARY, negative_prompt
from faceedit.core.taxonomy import ATTRIBUTES


def _terms(negative: str) -> list[str]:
    return [t.strip() for t in negative.split(",")]


def test_every_attribute_has_a_vocabulary_and_conflicts_name_real_attributes() -> None:
    assert set(NEGATIVE_VOCABULARY) == set(ATTRIBUTES)
    assert set(COMPETING_VALUES) <= set(ATTRIBUTES)
    for groups in COMPETING_VALUES.values():
        for group in groups:
            words = [word for family in group for word in family]
            assert len(words) == len(set(words)), group  # a word in two families would contradict itself


def test_dark_irises_push_light_eye_colours_away() -> None:
    negative = negative_prompt("eyes", "pitch-black irises")
    assert {"blue eyes", "green eyes", "grey eyes"} <= set(_terms(negative))
    # brown, dark and black are one value: asking for one never makes the others negative.
    assert "brown eyes" not in negative and "dark eyes" not in negative
    assert negative.endswith(BASE_NEGATIVE)
    assert {"cross-eyed", "asymmetric pupils"} <= set(_terms(negative))


def test_a_value_group_the_prompt_does_not_touch_adds_nothing() -> None:
    texture_only = _terms(negative_prompt("hair", "curly hair"))
    assert {"straight hair", "wavy hair"} <= set(texture_only)
    assert not {"black hair", "blonde hair", "short hair"} & set(texture_only)
    colour = _terms(negative_prompt("hair", "curly auburn hair"))
    assert {"black hair", "brown hair", "blonde hair", "grey hair"} <= set(colour)
    assert "red hair" not in colour  # auburn is a red


def test_callers_negative_comes_first_and_duplicates_are_dropped() -> None:
    negative = negative_prompt("lips", "matte dusty-rose lipstick", "Blurry, shiny, SMEARED LIPSTICK")
    terms = [t.lower() for t in _terms(negative)]
    assert terms[:3] == ["blurry", "shiny", "smeared lipstick"]
    assert terms.count("blurry") == 1 and terms.count("smeared lipstick") == 1
    assert "glossy lips" in terms and "matte lips" not in terms
    assert "red lips" in terms and "pink lips" not in terms  # rose is a pink
    assert "lipstick on teeth" in terms


def test_terms_the_prompt_asks_for_are_never_negative() -> None:
    assert "hat" not in _terms(negative_prompt("hair", "a hat over curly hair"))
    assert "blurry" not in _terms(negative_prompt("skin", "blurry soft-focus skin", "blurry"))
    assert "closed eyes" not in _terms(negative_prompt("eyes", "eyes closed, calm"))


def test_unknown_or_empty_attribute_gets_the_base_negative() -> None:
    assert negative_prompt("", "a tattoo") == BASE_NEGATIVE
    assert negative_prompt("tattoo", "a tattoo", "ink blots") == f"ink blots, {BASE_NEGATIVE}"


def test_raw_mode_uses_only_the_callers_negative() -> None:
    assert negative_prompt("eyes", "blue eyes", " only this ", raw=True) == "only this"
    assert negative_prompt("eyes", "blue eyes", raw=True) == ""


_WORDS = sorted(
    {w for text in (*NEGATIVE_VOCABULARY.values(), BASE_NEGATIVE) for w in re.findall(r"[a-z]+", text)}
    | {w for groups in COMPETING_VALUES.values() for g in groups for f in g for w in f}
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(ATTRIBUTES)),
    st.lists(st.sampled_from([*_WORDS, "eyes", "hair", "lips", "eyebrows"]), max_size=8),
    st.lists(st.sampled_from(_WORDS), max_size=4),
)
def test_never_a_duplicate_and_never_what_the_prompt_asks(attribute: str, prompt: list[str], caller: list[str]) -> None:
    prompt_text = " ".join(prompt)
    terms = _terms(negative_prompt(attribute, prompt_text, ", ".join(caller)))
    folded = [t.lower() for t in terms]
    assert len(folded) == len(set(folded)) and all(folded)
    prompt_words = set(prompt)
    assert not any(set(re.findall(r"[a-z]+", t)) <= prompt_words for t in folded)
