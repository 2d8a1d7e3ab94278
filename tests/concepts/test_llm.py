"""LLM concept generation: prompt families, parsing of answers, class prior and provenance."""

import json

import numpy as np
import pytest

from cbm.concepts import (
    LLMError,
    generate_llm_concepts,
    list_prompts,
    load_prompt,
    parse_concept_list,
)


@pytest.mark.parametrize("text, expected", [
    ('["red beak", "webbed feet"]', ["red beak", "webbed feet"]),
    ('Sure:\n```json\n["red beak", "Red beak ", "long neck."]\n```', ["red beak", "long neck"]),
    ('{"concepts": ["stripes", "whiskers"]}', ["stripes", "whiskers"]),
    ("Here are some features:\n1. four legs\n2) a long tail\n- pointed ears\n* fur",
     ["four legs", "a long tail", "pointed ears", "fur"]),
    ("", []),
])
def test_parse_concept_list(text, expected):
    assert parse_concept_list(text) == expected


def test_shipped_families_and_custom_template_file(tmp_path):
    assert {"labo_color", "lfcbm_superclass", "knobo_questions"} <= set(list_prompts())
    assert "{class_name}" in load_prompt("lfcbm_around")
    own = tmp_path / "mine.txt"
    own.write_text("Name parts of {class_name} as JSON.")
    assert load_prompt(own).startswith("Name parts")
    with pytest.raises(KeyError, match="labo_color"):
        load_prompt("labo_colour")


def test_labo_bank_has_class_prior_and_raw_answers(make_client, llm_server):
    _, fake = llm_server

    def answer(prompt):
        cls = "cat" if "cat" in prompt else "dog"
        return json.dumps([f"{cls} whiskers", "four legs"])

    fake.responder = answer
    bank = generate_llm_concepts(["cat", "dog"], make_client(), family="labo")
    assert len(fake.requests) == 2 * 5  # five LaBo templates per class
    assert set(bank.names) == {"cat whiskers", "dog whiskers", "four legs"}
    assert bank.classes == ["cat", "dog"] and bank.prior.shape == (2, 3)
    legs = bank.index("four legs")
    np.testing.assert_array_equal(bank.prior[:, legs], [1, 1])
    np.testing.assert_array_equal(bank.prior[:, bank.index("cat whiskers")], [1, 0])
    prov = bank.provenance[bank.index("dog whiskers")]
    assert prov.source == "llm" and prov.model == "test-model"
    assert prov.detail["classes"] == ["dog"]
    assert prov.detail["answers"][0]["raw_answer"].startswith("[")
    assert "sk-test-secret" not in json.dumps(bank.to_dict())
    assert bank.metadata["usage"]["requests"] == 10


def test_lfcbm_family_and_malformed_answers(make_client, llm_server):
    _, fake = llm_server
    fake.script(["malformed"] * 3)
    bank = generate_llm_concepts(["zebra"], make_client(), family="lfcbm")
    assert bank.names == ["striped", "furry"]
    assert set(bank.provenance[0].detail["templates"]) == {
        "lfcbm_important", "lfcbm_superclass", "lfcbm_around"}


def test_unknown_family_names_choices(make_client):
    with pytest.raises(KeyError, match="labo"):
        generate_llm_concepts(["cat"], make_client(), family="lab0")


# -- answers as real models write them, over real HTTP -----------------------------------------------
REAL_ANSWERS = {
    "markdown bold": ("Here are the features:\n- **black and white stripes**\n- **a short mane**",
                      ["black and white stripes", "a short mane"]),
    "3 - numbering": ("1 - black and white stripes\n2 - a short mane\n3 - hooves",
                      ["black and white stripes", "a short mane", "hooves"]),
    "closing prose": ('["black and white stripes", "a short mane"]\n\nThese features are distinctive.',
                      ["black and white stripes", "a short mane"]),
    "prose after a list": ("1. stripes\n2. a mane\nI hope this helps you identify a zebra!",
                           ["stripes", "a mane"]),
    "dicts and numbers": ('["stripes", {"feature": "mane"}, 7, "hooves"]', ["stripes", "hooves"]),
    "100,000-character bullet": ("- stripes\n- " + "x" * 100_000 + "\n- hooves", ["stripes", "hooves"]),
}


@pytest.mark.parametrize("kind", list(REAL_ANSWERS))
def test_real_answer_formats_become_clean_concepts(make_client, llm_server, kind):
    _, fake = llm_server
    text, kept = REAL_ANSWERS[kind]
    fake.responder = lambda prompt: text
    bank = generate_llm_concepts(["zebra"], make_client(), family=["lfcbm_important"])
    assert bank.names == kept
    if kind not in ("markdown bold", "3 - numbering"):
        assert bank.metadata["dropped"] and bank.metadata["dropped"][0]["class"] == "zebra"


@pytest.mark.parametrize(("answer", "why"), [
    ("Yes.", "yes/no answer"),
    ("I'm sorry, but I can't help with that request.", "refusal"),
    ("As an AI, I cannot see images.", "refusal"),
    ('[{"feature": "mane"}, 3]', "not a string"),
])
def test_an_answer_that_yields_nothing_is_an_error_and_never_cached(make_client, llm_server, answer, why):
    _, fake = llm_server
    fake.responder = lambda prompt: answer
    client = make_client()
    with pytest.raises(LLMError, match=rf"unusable answer .*yields no concepts \(.*{why}.*not cached"):
        generate_llm_concepts(["zebra"], client, family=["lfcbm_important"])
    fake.responder = lambda prompt: '["stripes"]'  # the server is fixed: the rerun asks again
    bank = generate_llm_concepts(["zebra"], make_client(), family=["lfcbm_important"])
    assert bank.names == ["stripes"] and len(fake.requests) == 2


@pytest.mark.parametrize("mode", ["empty", "null", "no_choices"])
def test_empty_answers_are_errors_never_cached(make_client, llm_server, mode):
    _, fake = llm_server
    fake.script([mode])
    with pytest.raises(LLMError, match="empty content|no choices"):
        generate_llm_concepts(["zebra"], make_client(), family=["lfcbm_important"])
    bank = generate_llm_concepts(["zebra"], make_client(), family=["lfcbm_important"])
    assert bank.names == ["concept one", "concept two"] and len(fake.requests) == 2


def test_an_empty_answer_cached_by_an_older_version_is_fetched_again(make_client, llm_server):
    _, fake = llm_server
    client = make_client()
    client.chat("List concepts of a zebra")
    entry = next(client.cache_dir.rglob("*.json"))
    entry.write_text(json.dumps({"text": "", "prompt_tokens": 1, "completion_tokens": 0}))
    assert not make_client().chat("List concepts of a zebra").cached and len(fake.requests) == 2
