"""KnoBo textbook concepts: corpus loading, BM25/dense retrieval, grounded questions with
citations, yes/no/unknown prior, and import of KnoBo's published sets."""

import json

import numpy as np
import pytest

from cbm.bank import ConceptBank
from cbm.concepts import (
    BM25Retriever,
    DenseRetriever,
    generate_textbook_concepts,
    load_corpus,
    load_knobo_answers,
)
from cbm.concepts.files import read_lines
from cbm.concepts.textbook import parse_answer
from cbm.exceptions import DataError


def _write_pdf(path, text):
    """A one-page PDF with ``text``, written by hand (pypdf reads but does not lay out text)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))


def test_corpus_reads_txt_md_jsonl_into_passages(corpus_dir):
    passages = load_corpus(corpus_dir)
    docs = {p.doc for p in passages}
    assert docs == {"effusion.txt", "cardiomegaly.md", "notes.jsonl"}
    assert len({p.passage_id for p in passages}) == len(passages)
    assert any("air bronchograms" in p.text for p in passages)


def test_corpus_reads_pdf(tmp_path):
    _write_pdf(tmp_path / "atelectasis.pdf", "Atelectasis shows volume loss and a shifted fissure")
    passages = load_corpus(tmp_path)
    assert passages[0].doc == "atelectasis.pdf" and "volume loss" in passages[0].text


def test_corpus_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "bad.jsonl").write_text("not json\n")
    with pytest.raises(DataError, match="line 1 is not JSON"):
        load_corpus(tmp_path)


def test_bm25_finds_the_relevant_document(corpus_dir):
    hits = BM25Retriever(load_corpus(corpus_dir)).search("enlarged heart cardiomegaly", k=2)
    assert hits[0][0].doc == "cardiomegaly.md"


def test_dense_retrieval_with_any_text_encoder(corpus_dir, text_encoder):
    hits = DenseRetriever(load_corpus(corpus_dir), text_encoder).search("pleural effusion fluid", 1)
    assert hits[0][0].doc == "effusion.txt"


@pytest.mark.parametrize("text, answer", [("Yes.", "yes"), ("No, it is not", "no"),
                                           ("I cannot tell", "unknown"), ("UNKNOWN", "unknown")])
def test_parse_answer(text, answer):
    assert parse_answer(text) == answer


def test_generated_questions_keep_citations_and_prior(make_client, llm_server, corpus_dir):
    _, fake = llm_server

    def respond(prompt):
        if prompt.startswith("For an image"):  # answer prompt: yes only for the matching class
            cls = prompt.split('"')[1]
            key = {"pleural effusion": "fluid", "cardiomegaly": "heart"}[cls]
            return "yes" if key in prompt.split("question:")[1] else "no"
        return json.dumps(["Is there fluid in the pleural space?", "Is the heart enlarged?"])

    fake.responder = respond
    bank = generate_textbook_concepts(["pleural effusion", "cardiomegaly"], corpus_dir,
                                      make_client(), top_k=2)
    assert bank.names == ["Is there fluid in the pleural space?", "Is the heart enlarged?"]
    cites = bank.provenance[0].detail["citations"]
    assert {"doc", "passage_id", "text"} <= set(cites[0])
    assert "effusion.txt" in {c["doc"] for c in cites}
    np.testing.assert_array_equal(bank.prior, [[1, -1], [-1, 1]])
    prompts = [r["messages"][0]["content"] for r in fake.requests]
    question_prompt = next(p for p in prompts if 'about "pleural effusion"' in p)
    assert "costophrenic" in question_prompt  # the retrieved passage is in the prompt


def test_dense_retriever_needs_an_encoder(make_client, corpus_dir):
    with pytest.raises(ValueError, match="encode_text"):
        generate_textbook_concepts(["x"], corpus_dir, make_client(), retriever="dense")


def test_import_knobo_answers_gives_a_training_ready_bank(shared_data, tmp_path):
    path = shared_data / "concept-sets/knobo/xray_class2concept2answer.json"
    raw = json.loads(path.read_text())
    bank = load_knobo_answers(path)
    assert bank.classes == list(raw)
    assert bank.prior.shape == (len(raw), len(bank))
    assert set(np.unique(bank.prior)) <= {-1.0, 0.0, 1.0}
    k, q = "Pneumonia", "Is there pleural effusion?"
    assert bank.prior[bank.class_index(k), bank.index(q)] == {"yes": 1, "no": -1}[raw[k][q]]
    assert (bank.prior == 1).sum() == sum(a == "yes" for v in raw.values() for a in v.values())
    again = ConceptBank.load(bank.save(tmp_path / "b"))
    np.testing.assert_array_equal(again.prior, bank.prior)


def test_knobo_question_lists_parse(shared_data):
    questions = read_lines(shared_data / "concept-sets/knobo/xray_PubMed.txt")
    assert 150 < len(questions) <= 200
    assert all(q.endswith("?") and q == q.strip() for q in questions)


def test_bad_knobo_answer_is_named(tmp_path):
    p = tmp_path / "c2a.json"
    p.write_text(json.dumps({"cat": {"Is it furry?": "maybe"}}))
    with pytest.raises(DataError, match="'maybe'"):
        load_knobo_answers(p)
