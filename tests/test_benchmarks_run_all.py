from benchmarks.run_all import _merge_sections

TEXT = """# geodiv benchmarks

- Command: full run

## geo

geo rows

## scale

old scale rows
"""


def test_only_replaces_its_sections_and_keeps_the_others():
    out = _merge_sections(TEXT, {"scale": ["## scale", "", "new scale rows", ""], "gpu": ["## gpu", "", "gpu rows"]})
    text = "\n".join(out)
    assert "- Command: full run" in text and "geo rows" in text
    assert "new scale rows" in text and "old scale rows" not in text
    assert text.index("## geo") < text.index("## scale") < text.index("## gpu")  # new sections appended
    assert text.count("## scale") == 1
