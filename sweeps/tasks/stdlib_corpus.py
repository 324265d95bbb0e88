"""Real English sentences available offline on every machine that runs Python: the
documentation strings of the standard library, read from its source with `ast` (nothing is
imported, so no module's import side effects run), and, as a second source, the reference
manual's text that `pydoc` ships."""

import ast
import functools
import re
import sysconfig
from pathlib import Path

_CODE_LIKE = re.compile(r"[<>{}\[\]=_|\\`@#$%^*~]|\(\)|::")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_SKIPPED_PARTS = {"test", "tests", "idlelib", "site-packages", "lib2to3"}


def _sentences(text: str) -> list[str]:
    """The prose sentences of a text, paragraph by paragraph."""
    found = []
    for paragraph in text.split("\n\n"):
        joined = " ".join(paragraph.split())
        found += [s for s in _SENTENCE_END.split(joined) if prose_sentence(s)]
    return found


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        d for node in ast.walk(tree) if isinstance(node, kinds) if (d := ast.get_docstring(node))
    ]


def prose_sentence(text: str, min_words: int = 8, max_words: int = 40) -> bool:
    """A sentence of prose, not code: capitalised, ended, of a sensible length, and free of
    the characters code and markup use."""
    words = text.split()
    return (
        min_words <= len(words) <= max_words
        and text[0].isupper()
        and text[-1] in ".!?"
        and not _CODE_LIKE.search(text)
    )


@functools.cache
def stdlib_sentences() -> tuple[str, ...]:
    """Distinct prose sentences from the standard library's docstrings, sorted (parsed once
    a process: every trial asks for its latency batch)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    sentences: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        if _SKIPPED_PARTS & set(path.relative_to(root).parts):
            continue
        for doc in _docstrings(path):
            sentences.update(_sentences(doc))
    return tuple(sorted(sentences))


@functools.cache
def manual_sentences() -> tuple[str, ...]:
    """Distinct prose sentences of another source: the Python reference manual's topics
    as `pydoc` shows them (`pydoc_data.topics`, generated from the manual, not from the
    docstrings), less any that a docstring also holds; sorted."""
    from pydoc_data.topics import topics

    docstrings = set(stdlib_sentences())
    found = {s for text in topics.values() for s in _sentences(text)}
    return tuple(sorted(found - docstrings))
