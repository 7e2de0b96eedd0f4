"""docs/performance.md's tables are what the committed results files say."""

from benchmarks import performance_doc


def test_every_table_of_the_performance_page_is_generated_from_its_results_file():
    text = performance_doc.PAGE.read_text()
    names = [match.group(2) for match in performance_doc.BLOCK.finditer(text)]
    assert set(names) == set(performance_doc.TABLES), "each table appears once in the page"
    assert performance_doc.render(text) == text, "run python benchmarks/performance_doc.py"


def test_a_changed_results_figure_changes_the_page(monkeypatch):
    text = performance_doc.PAGE.read_text()
    real = performance_doc.load

    def doubled(name):
        results = real(name)
        if name == "serving":
            results["results"]["saved_model"]["latency_batch1_ms_p50"] = 2.0
        return results

    monkeypatch.setattr(performance_doc, "load", doubled)
    rendered = performance_doc.render(text)
    assert "| `serving_default` in process, p50 for one window < 1 ms | 2.00 ms | not met |" in rendered
