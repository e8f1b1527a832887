"""Page furniture shared by the documents of one input: `rasid predict --documents` and `rasid evaluate
--documents` judge it over the whole input, however the rows are cut into chunks (tiny bundle)."""

from __future__ import annotations

import json

from serving import batch
from tests.conftest import write_jsonl
from tests.test_documents import FOOTER, MENU, site_page
from training.cli import main


def test_predict_documents_skips_the_lines_recurring_across_the_whole_input(trained_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "CHUNK_DOCUMENTS", 2)  # six pages in three calls: no chunk alone shows a recurrence
    source = write_jsonl(tmp_path / "pages.jsonl", [{"id": f"p{k}", "text": site_page(k)} for k in range(6)])
    out = tmp_path / "out.jsonl"
    assert (
        main(["predict", "--model", str(trained_bundle), "--input", str(source), "--output", str(out), "--documents"])
        == 0
    )
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6
    for line in lines:
        assert [(s["text"], s["reason"]) for s in line["skipped"]] == [(MENU, "recurring"), (FOOTER, "recurring")]
        assert len(line["paragraphs"]) == 2


def test_evaluate_documents_skips_the_recurring_lines_too(trained_bundle, tmp_path, capsys, monkeypatch):
    from serving import documents

    seen = []
    real = documents.analyze_documents
    monkeypatch.setattr(documents, "analyze_documents", lambda *a, **k: seen.append(result := real(*a, **k)) or result)
    data = write_jsonl(tmp_path / "pages.jsonl", [{"text": site_page(k), "topic": "economy"} for k in range(6)])
    assert main(["evaluate", "--model", str(trained_bundle), "--data", str(data), "--documents"]) == 0
    (results,) = seen
    assert all([s["reason"] for s in r["skipped"]] == ["recurring", "recurring"] for r in results)
