"""LLM answers as real models write them: what is kept, what is dropped, and why."""

import json

import pytest

from cbm.concepts._answer_parser import MAX_CHARS, parse_concepts


def dropped(text):
    return [why for _, why in parse_concepts(text).dropped]


@pytest.mark.parametrize(("text", "kept"), [
    ('["red beak", "webbed feet"]', ["red beak", "webbed feet"]),
    ("- **red** beak\n- __webbed__ feet\n- *long* `neck`", ["red beak", "webbed feet", "long neck"]),
    ("**Red beak**\n**Webbed feet**", ["Red beak", "Webbed feet"]),
    ("1. four legs\n2) a long tail\n(3) pointed ears", ["four legs", "a long tail", "pointed ears"]),
    ("1 - four legs\n2 - a long tail\n3 \u2013 pointed ears", ["four legs", "a long tail", "pointed ears"]),
    ("\u2022 stripes\n\u2022 whiskers\n* fur\n+ paws", ["stripes", "whiskers", "fur", "paws"]),
    ("a) stripes\nb) whiskers", ["stripes", "whiskers"]),
    ("## Features\n- stripes", ["stripes"]),
    ("stripes\nwhiskers\nthree-legged stool", ["stripes", "whiskers", "three-legged stool"]),
    ('```json\n["red beak", "Red beak ", "long neck."]\n```', ["red beak", "long neck"]),
    ('{"concepts": ["stripes", "whiskers"]}', ["stripes", "whiskers"]),
    ("Is the heart enlarged?\nIs there fluid in the lungs?",
     ["Is the heart enlarged?", "Is there fluid in the lungs?"]),
])
def test_kept_concepts(text, kept):
    assert parse_concepts(text).concepts == kept


def test_a_closing_prose_sentence_and_a_preamble_are_dropped():
    p = parse_concepts("Sure! Here are some features of a zebra:\n1. black and white stripes\n"
                       "2. a short mane\nThese features make the zebra easy to recognise.")
    assert p.concepts == ["black and white stripes", "a short mane"]
    assert [why for _, why in p.dropped] == ["prose outside the list"] * 2


def test_prose_in_an_unbulleted_answer_is_dropped():
    p = parse_concepts("stripes\nwhiskers\nI hope this list helps you with the task.")
    assert p.concepts == ["stripes", "whiskers"] and dropped(
        "stripes\nI hope this list helps you with the task.") == ["prose outside the list"]


@pytest.mark.parametrize("refusal", [
    "I'm sorry, but I can't help with that.",
    "I\u2019m sorry, I cannot list features of that class.",
    "As an AI language model, I do not have the ability to see images.",
    "I cannot provide that.",
    "Unfortunately I am unable to answer.",
])
def test_refusals_yield_nothing_and_say_so(refusal):
    p = parse_concepts(refusal)
    assert p.concepts == [] and dropped(refusal) == ["refusal"]
    assert "1 refusal" in p.why_empty()
    assert parse_concepts(json.dumps([refusal, "stripes"])).concepts == ["stripes"]


@pytest.mark.parametrize("answer", ["Yes.", "No", "yes", '["Yes", "No."]'])
def test_yes_no_answers_are_not_concepts(answer):
    p = parse_concepts(answer)
    assert p.concepts == [] and set(dropped(answer)) == {"a yes/no answer, not a concept"}


def test_non_strings_in_a_json_list_are_dropped_with_their_type():
    p = parse_concepts('["stripes", {"name": "mane"}, 42, 3.5, null, true, ["x"]]')
    assert p.concepts == ["stripes"]
    assert dropped('[{"a": 1}, 42, null]') == ["not a string (dict)", "not a string (int)",
                                               "not a string (NoneType)"]


def test_over_long_items_are_dropped():
    huge = "- " + "very " * 20000 + "long\n- short one"
    p = parse_concepts(huge)
    assert p.concepts == ["short one"]
    assert p.dropped[0][1].startswith("too long (100,004 characters") and len(p.dropped[0][0]) <= 80
    assert parse_concepts(json.dumps(["x" * (MAX_CHARS + 1)])).concepts == []


def test_empty_and_null_answers_yield_nothing():
    for text in ("", None, "   \n", "[]", "{}"):
        p = parse_concepts(text)
        assert p.concepts == [] and p.why_empty()


def test_repeats_are_dropped_once_kept():
    assert dropped("- stripes\n- Stripes.\n- stripes") == ["repeat", "repeat"]
