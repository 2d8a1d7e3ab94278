"""LLM concept generation: prompt families, parsing of answers, class prior and provenance."""

import json

import numpy as np
import pytest

from cbm.concepts import generate_llm_concepts, list_prompts, load_prompt, parse_concept_list


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
